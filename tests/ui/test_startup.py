"""Startup: only a model that loaded is remembered; a vanished one falls back to the demo model;
images named on the command line open as a drop would; the app has its icon."""

import json

import numpy as np
import pytest
from PIL import Image

from studio.core.errors import ErrorKind, StudioError
from studio.core.generation.settings import Settings, save_settings
from studio.core.storage.paths import demo_model_dir, settings_file
from tests.fakes import FakeEngine


@pytest.fixture
def start_app(qtbot, tmp_path, script):
    """studio.launch's own startup (settings, --model, fallback) on the fake engine."""
    from studio.backends.local.worker import EngineThread
    from studio.launch import build_main_window

    threads = []

    def start(model=None):
        engine = EngineThread(lambda emit: FakeEngine(emit, script, tmp_path / "outputs"))
        engine.start()
        threads.append(engine)
        window = build_main_window(engine, model=model)
        qtbot.addWidget(window)
        window.start()
        return window

    yield start
    for engine in threads:
        assert engine.stop(20000)


def _saved_model() -> str:
    return json.loads(settings_file().read_text())["model"]


def test_a_model_given_on_the_command_line_that_fails_is_not_remembered(qtbot, start_app, script, tmp_path):
    good = tmp_path / "good-model"
    good.mkdir()
    save_settings(Settings(model=str(good)), settings_file())
    script.load_error = StudioError(ErrorKind.MODEL_NOT_FOUND, "No model found at /nope.")
    window = start_app(model="/nope")
    qtbot.waitUntil(window.banner.isVisible, timeout=5000)
    assert window.settings.model == "/nope"  # used for this run...
    window.panel.prompt.setPlainText("a red circle")
    window.close()
    saved = json.loads(settings_file().read_text())
    assert saved["model"] == str(good) and saved["prompt"] == "a red circle"  # ...but not written


def test_a_model_is_remembered_once_it_has_loaded(qtbot, start_app, tmp_path):
    chosen = tmp_path / "chosen-model"
    chosen.mkdir()
    save_settings(Settings(model=""), settings_file())
    window = start_app(model=str(chosen))
    qtbot.waitUntil(lambda: window.model_status.ready, timeout=5000)
    assert _saved_model() == str(chosen)  # saved on ModelLoaded, before any close


def test_a_bad_folder_chosen_in_the_window_is_not_remembered(qtbot, make_window, script, tmp_path):
    window = make_window()  # model /models/fake, loads fine
    qtbot.waitUntil(lambda: window.model_status.ready, timeout=5000)
    script.load_error = StudioError(ErrorKind.BAD_MODEL, "/home/me/Pictures has no model_index.json.")
    window.model_status.set_model("/home/me/Pictures")
    qtbot.waitUntil(window.banner.isVisible, timeout=5000)
    window.close()
    assert json.loads((tmp_path / "settings.json").read_text())["model"] == "/models/fake"


def test_a_vanished_remembered_model_falls_back_to_the_demo_with_a_message(qtbot, start_app, tmp_path, script):
    gone = tmp_path / "deleted-model"
    save_settings(Settings(model=str(gone), width=512, height=512), settings_file())
    window = start_app()
    assert window.banner.isVisible()
    assert f"no longer at {gone}" in window.banner.label.text() and "demo model" in window.banner.label.text()
    qtbot.waitUntil(lambda: window.model_status.ready, timeout=5000)
    assert script.loads[0][0] == str(demo_model_dir())
    assert window.panel.width_spin.value() == 64  # the demo model's own defaults, not 512
    assert _saved_model() == ""  # the demo model, now that it loaded


def test_images_on_the_command_line_open_as_a_drop_does(qtbot, make_window, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.full((48, 80, 3), 90, np.uint8)).save(path)
    window = make_window()
    assert window.open_files([str(path)])
    assert window.canvas.document.shape == (48, 80, 3)
    assert "no generation settings" in window.status_label.text()


def test_the_brush_of_an_earlier_build_is_taken_over_from_brush_json(qtbot, start_app, tmp_path):
    from studio.core.storage.paths import data_home

    save_settings(Settings(model=str(demo_model_dir())), settings_file())
    (data_home() / "brush.json").write_text(json.dumps({"hardness": 0.3, "opacity": 0.6}))
    window = start_app()
    assert (window.canvas.brush.hardness, window.canvas.brush.opacity) == (0.3, 0.6)
    assert not (data_home() / "brush.json").exists()
    saved = json.loads(settings_file().read_text())
    assert (saved["brush_hardness"], saved["brush_opacity"]) == (0.3, 0.6)
