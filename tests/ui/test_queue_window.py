"""The window on the application layer (issue 12): the Queue dock, the restored-jobs bar, the
step scrubber, images written off the critical path, and the layout kept across starts.
Real window, real engine thread, the fake engine."""

import threading

import numpy as np
from PIL import Image
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QApplication, QListView

from studio.core.generation.request import GenerationRequest
from studio.core.generation.settings import Settings, load_settings
from studio.core.storage.job_queue import JobQueue, JobStatus
from studio.core.storage.output_folder import KeepingWriter
from studio.core.storage.outputs import read_request


def _prompts(window):
    return [window.controller.job(job_id).request.prompt for job_id in window.queue_panel.row_ids()]


def _statuses(window):
    return [window.controller.job(job_id).status for job_id in window.queue_panel.row_ids()]


def _queue(window, qtbot, script, *prompts):
    """Start a job held before its first step, then queue the others behind it."""
    script.hold = threading.Event()
    for prompt in prompts:
        window.panel.prompt.setPlainText(prompt)
        window.job_view.generate()
    qtbot.waitUntil(script.held.is_set, timeout=5000)


def _release(window, qtbot, script, jobs: int):
    ended = []
    window.job_view.jobEnded.connect(ended.append)
    script.hold.set()
    qtbot.waitUntil(lambda: len(ended) >= jobs, timeout=10000)
    return ended


def test_generate_while_a_job_runs_queues_the_next_and_cancel_takes_one(qtbot, make_window, script):
    window = make_window()
    view = window.findChild(QListView, "queueView")
    assert view is window.queue_panel.view and window.queue_dock.objectName() == "queueDock"
    _queue(window, qtbot, script, "first", "second")
    assert window.queue_panel.row_count() == 2  # visible at once, in order
    rows = [view.visualRect(view.model().index(row, 0)) for row in (0, 1)]
    assert rows[1].top() > rows[0].top()  # laid out, not just held
    assert _prompts(window) == ["first", "second"]
    assert _statuses(window) == [JobStatus.RUNNING, JobStatus.PENDING]
    assert "Queued" in window.queue_panel.row_text(1) and "Running" in window.queue_panel.row_text(0)
    window.queue_panel.select(window.queue_panel.row_ids()[1])
    qtbot.mouseClick(window.queue_panel.cancel_button, Qt.MouseButton.LeftButton)
    assert _statuses(window)[1] is JobStatus.CANCELLED and "Cancelled" in window.queue_panel.row_text(1)
    _release(window, qtbot, script, 1)  # the cancelled one ended at its cancel
    assert [r.prompt for r in script.requests] == ["first"]  # the cancelled one never ran
    assert _statuses(window) == [JobStatus.DONE, JobStatus.CANCELLED]
    blank = window.queue_panel.model.placeholder().cacheKey()
    qtbot.waitUntil(lambda: window.queue_panel.row_icon(0).cacheKey() != blank, timeout=3000)  # its image's thumbnail
    assert window.queue_panel.row_icon(0).pixmap(48, 48).width() > 0


def test_ctrl_shift_enter_queues_ahead_of_the_waiting_jobs(qtbot, make_window, script):
    window = make_window()
    _queue(window, qtbot, script, "first", "second")
    window.panel.prompt.setPlainText("urgent")
    with qtbot.waitActive(window):
        window.activateWindow()
    window.panel.prompt.setFocus()
    qtbot.keyClick(window.panel.prompt, Qt.Key.Key_Return,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert _prompts(window) == ["first", "urgent", "second"]
    assert window.panel.prompt.toPlainText() == "urgent"  # no newline typed into the prompt
    assert "next, ahead of the others" in window.status_label.text()
    menu = window.queue_panel
    menu.select(window.queue_panel.row_ids()[2])
    assert [a.text() for a in menu.context_menu().actions()][0] == "Run next"
    menu.run_selected_next()
    assert _prompts(window) == ["first", "second", "urgent"]
    _release(window, qtbot, script, 3)
    assert [job.request.prompt for job in window.controller.queue.jobs] == ["first", "second", "urgent"]


def test_pause_lets_the_running_job_finish_and_resume_starts_the_next(qtbot, make_window, script):
    window = make_window()
    _queue(window, qtbot, script, "one", "two")
    qtbot.mouseClick(window.queue_panel.pause_button, Qt.MouseButton.LeftButton)
    assert window.controller.paused and window.queue_panel.pause_button.text() == "Resume"
    _release(window, qtbot, script, 1)
    qtbot.wait(100)
    assert [r.prompt for r in script.requests] == ["one"] and _statuses(window)[1] is JobStatus.PENDING
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        qtbot.mouseClick(window.queue_panel.pause_button, Qt.MouseButton.LeftButton)
    assert [r.prompt for r in script.requests] == ["one", "two"]
    assert window.queue_panel.pause_button.text() == "Pause"


def test_duplicate_runs_the_same_request_again(qtbot, make_window, script):
    window = make_window()
    window.panel.prompt.setPlainText("twice")
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    window.queue_panel.select(window.queue_panel.row_ids()[0])
    assert [a.text() for a in window.queue_panel.context_menu().actions() if a.text()][:4] == \
        ["Run next", "Cancel", "Duplicate", "Remove"]
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        qtbot.mouseClick(window.queue_panel.duplicate_button, Qt.MouseButton.LeftButton)
    assert len(script.requests) == 2 and script.requests[0] == script.requests[1]
    assert window.queue_panel.row_count() == 2
    window.queue_panel.select(window.queue_panel.row_ids()[0])
    qtbot.mouseClick(window.queue_panel.clear_button, Qt.MouseButton.LeftButton)
    assert window.queue_panel.row_count() == 0


def test_dragging_a_job_up_runs_it_sooner(qtbot, make_window, script):
    window = make_window()
    _queue(window, qtbot, script, "a", "b", "c")
    model = window.queue_panel.view.model()
    assert model.moveRow(QModelIndex(), 2, QModelIndex(), 1)  # what an internal drag-and-drop does
    qtbot.waitUntil(lambda: [job.request.prompt for job in window.controller.queue.run_order()] == ["c", "b"],
                    timeout=2000)
    assert _prompts(window) == ["a", "c", "b"]
    _release(window, qtbot, script, 3)
    assert [r.prompt for r in script.requests] == ["a", "c", "b"]


def _leave_a_queued_job(prompt: str) -> None:
    queue, _ = JobQueue.load()
    queue.add(GenerationRequest(prompt=prompt, model="/models/fake", width=64, height=64, steps=2, seed=3))


def test_jobs_left_from_last_time_are_offered_and_run(qtbot, make_window, script):
    _leave_a_queued_job("left over")
    window = make_window()
    bar = window.restored_bar
    assert bar.isVisible() and "1 queued job from last time" in bar.label.text()
    assert "From last time" in window.queue_panel.row_text(0)
    qtbot.wait(100)
    assert script.requests == []  # held until the artist says
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        qtbot.mouseClick(bar.run_button, Qt.MouseButton.LeftButton)
    assert [r.prompt for r in script.requests] == ["left over"] and not bar.isVisible()


def test_jobs_left_from_last_time_can_be_discarded(qtbot, make_window, script):
    _leave_a_queued_job("not wanted")
    window = make_window()
    qtbot.mouseClick(window.restored_bar.discard_button, Qt.MouseButton.LeftButton)
    assert window.queue_panel.row_count() == 0 and not window.restored_bar.isVisible()
    qtbot.wait(100)
    assert script.requests == [] and JobQueue.load()[0].jobs == []


def _pixel(window, x=1, y=1):
    return window.canvas.current_pixmap().toImage().pixelColor(x, y)


def test_the_step_scrubber_shows_every_step_and_saves_one(qtbot, make_window, script, tmp_path):
    script.step_seconds = 0.1  # a step as long as a real one: the window sees each preview
    window = make_window()  # 4 steps; the fake's step n preview is grey 255*n/4
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    assert "ms/step" in window.status_label.text() and "% of the step" in window.status_label.text()
    slider = window.scrubber.slider
    assert slider.objectName() == "stepSlider" and window.scrubber.isVisible()
    assert (slider.minimum(), slider.maximum(), slider.value()) == (1, 4, 4)
    assert _pixel(window).red() == 200 and window.canvas.showing == "result"  # the end is the final image
    run = window.job_view.previews.get(window.scrubber.job_id)
    assert sorted(run.frames) == [1, 2, 3, 4] and all(f.shape == (8, 8, 3) for f in run.frames.values())
    slider.setValue(2)
    assert _pixel(window).red() == 127 and "Step 2/4" in window.scrubber.label.text()
    window.scrubber.compare.setChecked(True)
    image = window.canvas.current_pixmap().toImage()
    assert image.width() == 64 * 2 + 4  # the step beside the final image
    assert image.pixelColor(10, 10).red() == 127 and image.pixelColor(64 + 4 + 10, 10).red() == 200
    window.scrubber.compare.setChecked(False)
    assert window.scrubber.save_step_as(str(tmp_path / "step2.png"))
    saved = np.asarray(Image.open(tmp_path / "step2.png"))
    assert saved.shape == (64, 64, 3) and saved[10, 10].tolist() == [127, 127, 127]
    slider.setValue(4)
    assert window.canvas.showing == "result" and window.canvas.result_path == window.job_view.last_image_path


def test_the_scrubber_keeps_every_step_when_the_window_falls_behind(qtbot, make_window, script):
    """The GUI thread busy for the whole run (a long paint, a slow disk): the steps that arrived
    meanwhile all reach the scrubber; the canvas draws only the newest of them."""
    import time

    script.step_seconds = 0.02
    window = make_window(Settings(model="/models/fake", random_seed=False, seed=5, width=64, height=64, steps=12))
    drawn = []
    original = window.canvas.show_pixels
    window.canvas.show_pixels = lambda pixels, *a, **k: (drawn.append(k.get("what")), original(pixels, *a, **k))
    script.hold = threading.Event()
    script.hold_at_step = 1
    window.job_view.generate()
    qtbot.waitUntil(script.held.is_set, timeout=5000)
    script.hold.set()
    time.sleep(1.0)  # the engine runs all 12 steps (0.24 s) while this thread takes no events
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        pass
    run = window.job_view.previews.get(window.scrubber.job_id)
    assert sorted(run.frames) == list(range(1, 13)), "a step the window was too busy to show is still kept"
    assert window.scrubber.slider.maximum() == 12
    assert drawn.count(None) <= 2, "steps that arrived together are drawn once, not one by one"


def test_the_running_job_shows_its_progress_and_newest_preview_in_the_queue(qtbot, make_window, script, monkeypatch):
    monkeypatch.setattr("studio.ui.queue_panel.ROW_UPDATE_SECONDS", 0.0)  # every step (the app: 4 a second)
    window = make_window()  # 4 steps
    script.hold, script.hold_at_step = threading.Event(), 3  # steps 1 and 2 reported, then held
    window.job_view.generate()
    qtbot.waitUntil(script.held.is_set, timeout=5000)
    panel = window.queue_panel
    qtbot.waitUntil(lambda: "Running 50%" in panel.row_text(0), timeout=5000)
    icon = panel.row_icon(0).pixmap(48, 48).toImage()
    assert icon.pixelColor(24, 24).red() == 127  # the fake's step-2 preview: grey 255 * 2 / 4
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        script.hold.set()
    assert panel.row_text(0).splitlines()[1].startswith("Done ·")


def test_double_clicking_a_finished_job_shows_its_image(qtbot, make_window, script):
    window = make_window()
    for prompt in ("one", "two"):
        window.panel.prompt.setPlainText(prompt)
        with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
            window.job_view.generate()
    first = window.controller.job(window.queue_panel.row_ids()[0])
    assert str(window.canvas.result_path) != first.paths[-1]
    view = window.queue_panel.view
    rect = view.visualRect(view.model().index(0, 0))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # as a person's first click
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: str(window.canvas.result_path) == first.paths[-1], timeout=3000)
    assert window.canvas.showing == "result"


def test_the_scrubber_keeps_the_last_three_runs(qtbot, make_window, script):
    window = make_window()
    for _ in range(4):
        with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
            window.job_view.generate()
    ids = window.queue_panel.row_ids()
    assert ids[0] not in window.job_view.previews and all(job_id in window.job_view.previews for job_id in ids[1:])
    window.recall.view_result(window.controller.job(ids[1]).paths[-1])  # a double click on its row
    assert window.scrubber.job_id == ids[1]  # a job in memory: the steps of the image on the canvas
    window.recall.view_result(window.controller.job(ids[0]).paths[-1])
    assert window.scrubber.job_id is None and not window.scrubber.isVisible()


def test_the_image_is_shown_before_it_is_saved_and_marked_saved_after(qtbot, make_window, script):
    window = make_window()
    gate = threading.Event()
    writer = window.controller.writer
    real_save = writer.outputs.save
    writer.outputs.save = lambda image, request: (gate.wait(5), real_save(image, request))[1]
    ended = []
    window.job_view.jobEnded.connect(ended.append)
    window.job_view.generate()
    qtbot.waitUntil(lambda: window.canvas.showing == "unsaved", timeout=5000)
    assert _pixel(window).red() == 200  # on screen while the writer waits
    qtbot.waitUntil(lambda: not window.job_view.running, timeout=5000)
    assert ended == [] and window.job_view.last_image_path is None  # not "saved" before it is on disk
    gate.set()
    qtbot.waitUntil(lambda: ended == ["finished"], timeout=5000)
    assert window.job_view.last_image_path.exists() and f"Saved {window.job_view.last_image_path}" in window.status_label.text()
    assert window.history.history.search("")[0].path == str(window.job_view.last_image_path)


def test_a_failed_write_through_the_controller_keeps_the_image_with_save_as(qtbot, make_window, script, tmp_path):
    window = make_window()
    blocked = tmp_path / "blocked"
    blocked.write_bytes(b"")  # a file where the folder should be: the write fails after the start check
    window.controller.writer.outputs = KeepingWriter(blocked)
    window.panel.prompt.setPlainText("a red square")
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000) as ended:
        window.job_view.generate()
    assert ended.args == ["failed"]
    assert window.canvas.showing == "result" and window.canvas.result[0, 0].tolist() == [200, 30, 30]
    assert "could not be saved" in window.banner.label.text() and window.banner.button("Save as…") is not None
    kept = tmp_path / "kept.png"
    assert window.outputs.save_unsaved_as(str(kept))
    assert read_request(kept).prompt == "a red square" and not window.banner.isVisible()


def test_the_queue_dock_and_the_brush_come_back_at_the_next_start(qtbot, make_window):
    window = make_window()
    window.queue_dock.hide()
    window.canvas.set_brush(hardness=0.3, opacity=0.6)
    window.canvas.set_mask_color("#00ff00", chosen=True)
    window.close()
    saved = load_settings(window.state.path)[0]
    assert saved.window_state and saved.mask_color == "#00ff00"
    assert (saved.brush_hardness, saved.brush_opacity) == (0.3, 0.6)  # in settings.json, beside the mask colour
    again = make_window(saved)
    QApplication.processEvents()
    assert not again.queue_dock.isVisible() and again.recall.dock.isVisible()
    assert (again.canvas.brush.hardness, again.canvas.brush.opacity) == (0.3, 0.6)
    assert again.canvas_toolbar.hardness_spin.value() == 30


def test_closing_writes_the_images_already_made(qtbot, make_window, script):
    window = make_window(Settings(model="/models/fake", random_seed=False, seed=5, width=64, height=64, steps=2))
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    window.close()
    assert window.controller.writer.pending == 0 and window.job_view.last_image_path.exists()
