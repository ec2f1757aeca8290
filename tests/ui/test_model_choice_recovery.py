"""The Model list always offers the bundled model and never keeps a model that failed to load;
Generate says why a run failed, and a load failure's banner goes once a good model loads."""

from PySide6.QtCore import Qt

from studio.core.errors import ErrorKind, StudioError
from studio.core.generation.settings import Settings
from studio.core.storage.paths import demo_model_dir


def _paths(combo):
    return [combo.itemData(i, Qt.ItemDataRole.UserRole) for i in range(combo.count())]


def test_the_demo_model_stays_in_the_list_after_another_is_chosen(qtbot, make_window):
    window = make_window(Settings(model=str(demo_model_dir()), width=64, height=64, steps=2))
    qtbot.waitUntil(lambda: window.model_status.ready, timeout=5000)
    window.model_status.set_model("/models/other")
    qtbot.waitUntil(lambda: window.model_status.ready, timeout=5000)
    combo = window.model_combo
    assert combo.currentText() == "other"
    demo = _paths(combo).index(str(demo_model_dir()))
    assert combo.itemText(demo).startswith("Demo model")


def test_a_model_that_fails_to_load_is_not_left_selected(qtbot, make_window, script):
    window = make_window()  # /models/fake loads
    qtbot.waitUntil(lambda: window.model_status.ready, timeout=5000)
    script.load_error = StudioError(ErrorKind.BAD_MODEL, "broken.safetensors is damaged.", "Download it again.")
    window.model_status.set_model("/models/broken.safetensors")
    qtbot.waitUntil(window.banner.isVisible, timeout=5000)
    assert window.settings.model == "/models/fake" and window.model_combo.currentText() == "fake"
    assert "broken.safetensors could not be loaded" in window.status_label.text()
    script.load_error = None
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    assert script.requests[-1].model == "/models/fake"


def test_generate_says_why_it_failed(qtbot, make_window, script):
    window = make_window()
    script.fail_at_step = 1  # the fake's out-of-memory error
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    assert window.status_label.text() == "Generation failed: The device ran out of memory."
    assert window.job_view.jobs.errors == {}  # forgotten once said


def test_a_good_load_clears_an_earlier_load_failure(qtbot, make_window, script):
    script.load_error = StudioError(ErrorKind.BAD_MODEL, "broken.safetensors is damaged.", "Download it again.")
    window = make_window(Settings(model="/models/broken.safetensors", width=64, height=64, steps=2))
    qtbot.waitUntil(window.banner.isVisible, timeout=5000)
    script.load_error = None
    window.device_combo.setCurrentText("cpu")  # loads the same model again, which works now
    qtbot.waitUntil(lambda: window.model_status.ready, timeout=5000)
    assert not window.banner.isVisible() and window.status_label.text().startswith("Ready")
