"""Restoring an Image to image or Inpaint entry brings back its mode, input image and mask, so
Generate makes the same run again; "Both" does not promise that."""

import numpy as np


def _inpaint_run(qtbot, window):
    window.panel.set_mode("inpaint")
    source = np.zeros((64, 64, 3), np.uint8)
    source[:, :32] = (200, 10, 10)
    window.canvas.set_document(source)
    window.canvas.mask[16:48, 16:48] = 255
    window.panel.prompt.setPlainText("a window in the wall")
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    return source, window.canvas.mask.copy()


def test_restore_all_on_an_inpaint_entry_brings_back_mode_input_and_mask(qtbot, make_window, script):
    window = make_window()
    source, mask = _inpaint_run(qtbot, window)
    first = script.requests[-1]
    window.panel.set_mode("txt2img")
    window.canvas.set_document(np.full((64, 64, 3), 9, np.uint8), mask=np.zeros((64, 64), np.uint8))
    panel = window.recall.history_panel
    qtbot.waitUntil(lambda: panel.model.rowCount() == 1, timeout=3000)
    assert panel.select_path(window.job_view.last_image_path)
    panel.restore_all_action.trigger()
    assert window.panel.current_mode() == "inpaint"
    assert np.array_equal(window.canvas.document, source) and np.array_equal(window.canvas.mask, mask)
    assert "input image and mask are back" in window.status_label.text()
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    again = script.requests[-1]
    assert (again.mode, again.prompt, again.seed, again.strength) == (first.mode, first.prompt, first.seed, first.strength)


def test_both_restore_and_use_as_input_does_not_promise_the_same_image(qtbot, make_window):
    window = make_window()
    _inpaint_run(qtbot, window)
    path = str(window.job_view.last_image_path)
    window.recall.ask_drop_action = lambda name: "both"
    window.recall.restore_from_image(path)
    assert "makes it again" not in window.status_label.text()
    window.recall.ask_drop_action = lambda name: "settings"
    window.recall.restore_from_image(path)
    assert "and its input image; Generate makes it again" in window.status_label.text()
