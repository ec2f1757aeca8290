import json
import threading

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from studio.core.errors import ErrorKind, StudioError
from studio.core.generation.settings import Settings

NAMED = (
    "promptEdit negativePromptEdit guidanceSpin stepsSpin seedSpin widthSpin heightSpin "
    "samplerCombo generateButton cancelButton canvasView progressBar"
).split()


def _wait_idle(qtbot, window, timeout=5000):
    qtbot.waitUntil(lambda: not window.job_view.running, timeout=timeout)


def test_controls_have_object_and_accessible_names(make_window):
    window = make_window()
    for name in NAMED:
        widget = window.findChild(QWidget, name)
        assert widget is not None, name
        assert widget.accessibleName(), name


def test_generate_runs_in_engine_thread_and_shows_result(qtbot, make_window, script):
    window = make_window()
    qtbot.keyClicks(window.panel.prompt, "a red circle")
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        qtbot.mouseClick(window.panel.generate_button, Qt.MouseButton.LeftButton)
    assert script.requests[0].prompt == "a red circle"
    assert script.thread_ids and threading.main_thread().ident not in script.thread_ids  # never the GUI thread
    assert window.canvas.current_pixmap().toImage().pixelColor(10, 10).red() == 200
    assert window.job_view.last_image_path.exists()
    assert window.panel.generate_button.isEnabled() and not window.panel.cancel_button.isEnabled()
    assert "Done" in window.status_label.text()


def test_ctrl_enter_generates_and_escape_cancels(qtbot, make_window, script):
    script.step_seconds = 0.05
    window = make_window(Settings(model="/m", steps=100, width=64, height=64))
    with qtbot.waitActive(window):
        window.activateWindow()
    window.panel.prompt.setFocus()
    qtbot.keyClick(window.panel.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert window.job_view.running, window.banner.label.text()
    assert "\n" not in window.panel.prompt.toPlainText()
    qtbot.waitUntil(lambda: window.progress.value() >= 2, timeout=5000)
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=2000):
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert window.progress.value() < 100
    assert "Cancelled" in window.status_label.text()
    script.step_seconds = 0.0
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        qtbot.mouseClick(window.panel.generate_button, Qt.MouseButton.LeftButton)


def test_random_seed_is_shown_and_recorded(qtbot, make_window, script):
    window = make_window(Settings(model="/m", random_seed=True, width=64, height=64, steps=2))
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    seed = script.requests[0].seed
    assert window.panel.last_seed.text() == f"Seed used: {seed}"


def test_previews_newest_frame_wins(qtbot, make_window, script):
    window = make_window()
    worker = window.controller.backend.worker
    import numpy as np

    from studio.core.events import StepProgress

    script.hold = threading.Event()  # the job runs (held before its first step) while steps are sent
    window.job_view.generate()
    qtbot.waitUntil(script.held.is_set, timeout=5000)
    job_id = window.controller.running_job
    notified = []
    # Direct: the worker's thread is held, so a queued call to the lambda would never run.
    worker.stepReady.connect(lambda: notified.append(1), Qt.ConnectionType.DirectConnection)

    def engine_thread():  # outruns the GUI, which is not processing events meanwhile
        for step in range(1, 51):
            worker._dispatch(StepProgress(0, step, 50, np.full((8, 8, 3), step, np.uint8), 0.01, job_id=job_id))

    try:
        thread = threading.Thread(target=engine_thread)
        thread.start()
        thread.join()
        qtbot.wait(50)
        assert len(notified) == 1
        assert window.progress.value() == 50  # the GUI jumped straight to the newest step
        assert window.canvas.current_pixmap().toImage().pixelColor(1, 1).red() == 50
    finally:
        with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
            script.hold.set()


def test_failure_shows_message_and_next_job_works(qtbot, make_window, script):
    script.fail_at_step = 2
    window = make_window()
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    assert window.banner.isVisible() and "ran out of memory" in window.banner.label.text()
    assert window.panel.generate_button.isEnabled()
    script.fail_at_step = None
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    assert not window.banner.isVisible()


def test_invalid_size_is_refused_before_the_engine(qtbot, make_window, script):
    window = make_window()
    window.panel.width_spin.setValue(100)  # typed values are snapped on editingFinished only
    window.job_view.generate()
    assert "multiple of 8" in window.banner.label.text()
    assert script.requests == [] and not window.job_view.running


def test_no_model_says_how_to_choose_one(qtbot, make_window, script, monkeypatch):
    monkeypatch.setattr("studio.core.generation.settings.effective_model", lambda s: s.model)
    monkeypatch.setattr("studio.application.generation_state.effective_model", lambda s: s.model)
    window = make_window(Settings(model=""))
    assert window.model_combo.currentIndex() == -1 and window.model_combo.currentText() == ""  # the placeholder
    assert "Choose file or folder" in window.canvas._message.toPlainText()
    window.job_view.generate()
    assert "No model chosen" in window.banner.label.text()
    assert script.loads == []


def test_model_load_failure_is_shown_and_app_keeps_running(qtbot, make_window, script):
    script.load_error = StudioError(ErrorKind.BAD_MODEL, "Could not load the model in x.", "It may be damaged.")
    window = make_window()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=5000)
    assert "Could not load" in window.banner.label.text()
    script.load_error = None
    window.model_status.set_model("/models/other")
    qtbot.waitUntil(lambda: window.model_status.ready, timeout=5000)
    assert script.loads[-1][0] == "/models/other"


def test_settings_are_remembered(qtbot, make_window, tmp_path):
    window = make_window()
    window.panel.prompt.setPlainText("remember me")
    window.panel.sampler.setCurrentText("DDIM")
    window.model_status.set_model("/models/chosen")
    qtbot.waitUntil(lambda: window.state.remembered_model == "/models/chosen", timeout=5000)  # remembered once loaded
    window.close()
    saved = json.loads((tmp_path / "settings.json").read_text())
    assert saved["prompt"] == "remember me" and saved["sampler"] == "DDIM" and saved["model"] == "/models/chosen"


def test_a_full_disk_while_saving_the_input_image_is_said_and_nothing_runs(qtbot, make_window, monkeypatch):
    import errno

    window = make_window()
    window.image_input.set_input_image(np.full((64, 64, 3), 90, np.uint8), "Open")  # Image to image now

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("studio.ui.image_input.save_input", full)
    assert window.job_view.generate() is None
    assert "input image could not be saved" in window.banner.label.text() and "No space left" in window.banner.label.text()
    assert not window.job_view.running and window.controller.queue.jobs == []


def test_help_opens_the_log_folder(make_window, monkeypatch, studio_home):
    from PySide6.QtGui import QDesktopServices

    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    window = make_window()
    (action,) = [a for a in window.help_menu.actions() if a.text() == "Open log folder"]
    action.trigger()
    assert opened == [str(studio_home / "logs")] and (studio_home / "logs").is_dir()
