"""A PySide6/CPython pair that leaks references to None aborts the app after a few hundred
generations (PySide6 6.12.0 on Python < 3.12: every void call drops None's refcount by one).
Any future broken pair must fail here, not in an artist's evening."""

import sys

from PySide6.QtWidgets import QLabel, QProgressBar


def test_void_qt_calls_do_not_drop_references_to_none(qtbot):
    label, bar = QLabel(), QProgressBar()
    qtbot.addWidget(label)
    qtbot.addWidget(bar)
    bar.setRange(0, 100)
    before = sys.getrefcount(None)
    for i in range(10_000):
        label.setText("step")  # void setters: the calls the window makes on every step
        bar.setValue(i % 100)
    after = sys.getrefcount(None)
    # Python 3.12+ reports a huge constant for the immortal None; older ones a real count
    # that other threads may move by a little either way, but never by 20,000.
    assert after >= before - 100, f"None lost {before - after} references in 20,000 Qt calls"
