"""The thread-leak check in tests/conftest.py finds what it must: a non-daemon Python thread
and a QThread still running, and not a daemon thread or threads that were there before."""

from __future__ import annotations

import threading

from PySide6.QtCore import QThread

from tests.conftest import _running_qthread_ids, _running_threads


def test_a_running_non_daemon_thread_is_reported_and_a_daemon_is_not():
    before = {t.ident for t in threading.enumerate()}
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, name="leaky-worker")
    daemon = threading.Thread(target=stop.wait, name="quiet-daemon", daemon=True)
    worker.start()
    daemon.start()
    try:
        leaked = _running_threads(before, _running_qthread_ids())
        assert leaked == ["Python thread 'leaky-worker'"]
        assert _running_threads({t.ident for t in threading.enumerate()}, set()) == []
    finally:
        stop.set()
        worker.join(5)
        daemon.join(5)


def test_a_running_qthread_is_reported(qapp):
    before = {t.ident for t in threading.enumerate()}
    thread = QThread()
    thread.setObjectName("leaky-qthread")
    qt_before = _running_qthread_ids()
    thread.start()  # runs its event loop until quit()
    try:
        assert "QThread 'leaky-qthread'" in _running_threads(before, qt_before)
    finally:
        thread.quit()
        assert thread.wait(5000)
    assert _running_threads(before, qt_before) == []
