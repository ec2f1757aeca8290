"""Generate and Cancel stay in reach at any window size down to 1024x640, and the notes that
grew the panel (a restored seed) or were cut off (the status line) take one line, whole on hover."""

import pytest
from PySide6.QtWidgets import QApplication

LONG = ("The model could not be loaded from /home/artist/models/newcomer-model-v2.safetensors (looked in "
        "/home/artist/models/newcomer); without it the picture comes out different. Choose another.")


def _fully_visible(widget) -> bool:
    return widget.isVisible() and widget.visibleRegion().boundingRect() == widget.rect()


@pytest.mark.parametrize("size", [(1024, 640), (1024, 700), (1280, 820)])
def test_generate_and_cancel_stay_in_view_after_a_seed_restore(qtbot, make_window, size):
    window = make_window()
    window.resize(*size)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == size, timeout=2000)
    panel = window.panel
    panel.random_seed.setChecked(False)
    panel.seed.setValue(123456789)
    panel.show_restored_seed()
    QApplication.processEvents()
    assert _fully_visible(panel.generate_button) and _fully_visible(panel.cancel_button)
    # The note is one line; the whole sentence is on hover.
    hint = panel.seed_hint
    assert hint.isVisible() and hint.height() < 2 * hint.fontMetrics().height()
    assert "Tick Random" in hint.text()
    if hint.elided:
        assert hint.toolTip() == hint.text()


def test_a_long_status_line_ends_in_an_ellipsis_and_shows_whole_on_hover(qtbot, make_window):
    window = make_window()
    window.resize(1024, 640)
    qtbot.waitUntil(lambda: window.width() == 1024 and window.status_label.text().startswith("Ready"), timeout=5000)
    window.say(LONG)
    QApplication.processEvents()
    label = window.status_label
    assert label.text() == LONG
    assert label.elided and label.toolTip() == LONG
    window.say("Ready.")
    assert not label.elided and label.toolTip() == ""


def test_the_step_scrubber_fits_a_1024_pixel_window(qtbot, make_window):
    window = make_window()
    window.resize(1024, 640)
    qtbot.waitUntil(lambda: window.width() == 1024, timeout=2000)
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    QApplication.processEvents()
    assert window.minimumSizeHint().width() <= 1024 and window.width() == 1024
    for widget in (window.scrubber.compare, window.scrubber.save_button, window.panel.generate_button):
        assert _fully_visible(widget)


@pytest.mark.parametrize("size", [(1024, 640), (1280, 820)])
def test_undo_redo_and_the_view_actions_are_on_the_toolbar_not_behind_its_overflow(qtbot, make_window, size):
    window = make_window()
    window.resize(*size)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == size, timeout=2000)
    QApplication.processEvents()
    bar = window.canvas_toolbar
    for action in (bar.undo_action, bar.redo_action, bar.fit_action, bar.actual_size_action, bar.brush_action):
        button = bar.widgetForAction(action)
        assert button.isVisible() and bar.rect().contains(button.geometry()), action.text()
