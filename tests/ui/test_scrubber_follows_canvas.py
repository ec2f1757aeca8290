"""The step scrubber belongs to the image on the canvas: another image (from History, "Use as
input", an undo) hides it or brings that image's own steps, and a run that starts next hides
the previous run's steps."""

import threading

import numpy as np
from PIL import Image


def _generate(qtbot, window, prompt):
    window.panel.prompt.setPlainText(prompt)
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    return window.queue_panel.row_ids()[-1]


def test_an_image_opened_from_history_hides_the_last_runs_steps(qtbot, make_window, tmp_path):
    window = make_window()
    _generate(qtbot, window, "one")
    assert window.scrubber.isVisible()
    other = tmp_path / "other.png"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(other)
    window.recall.view_result(str(other))  # History's double click
    assert not window.scrubber.isVisible() and window.scrubber.job_id is None
    window.scrubber.slider.setValue(1)  # nothing replaces the opened image
    assert window.canvas.current_pixmap().toImage().pixelColor(5, 5).green() == 200


def test_use_as_input_and_undo_keep_the_scrubber_with_the_canvas(qtbot, make_window):
    window = make_window()
    first = _generate(qtbot, window, "one")
    second = _generate(qtbot, window, "two")
    assert window.scrubber.job_id == second
    window.scrubber.slider.setValue(2)
    assert window.canvas.use_result_as_input()
    assert not window.scrubber.isVisible()
    window.canvas.undo()  # back to the second result: its steps, at the final image
    assert window.scrubber.job_id == second and window.scrubber.label.text() == "Final image"
    window.canvas.undo()  # the first result
    assert window.scrubber.job_id == first
    window.canvas.undo()  # nothing generated on the canvas
    assert not window.scrubber.isVisible()


def test_the_next_queued_job_hides_the_previous_runs_steps(qtbot, make_window, script):
    window = make_window()
    script.hold, script.hold_at_step = threading.Event(), 2
    window.job_view.generate()
    window.job_view.generate()  # waits; the queue starts it by itself
    qtbot.waitUntil(script.held.is_set, timeout=5000)
    first, script.hold = script.hold, threading.Event()
    hold = script.hold
    script.held.clear()
    first.set()  # the first finishes; the second starts and is held at step 2 again
    qtbot.waitUntil(lambda: len(script.requests) == 2 and script.held.is_set(), timeout=5000)
    qtbot.wait(100)  # the first job's image written and shown meanwhile
    assert window.controller.running_job is not None
    assert not window.scrubber.isVisible()
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        hold.set()
    qtbot.waitUntil(lambda: window.controller.running_job is None, timeout=5000)
    qtbot.waitUntil(window.scrubber.isVisible, timeout=2000)
    assert window.scrubber.job_id == window.queue_panel.row_ids()[-1]
    assert np.array_equal(window.job_view.previews.get(window.scrubber.job_id).final, window.canvas.result)
