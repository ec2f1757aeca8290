"""Test environment: headless Qt, no network, and never the user's real data folder."""

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Tiny models gain nothing from threads, and two thread pools on two cores thrash.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def studio_home(tmp_path, monkeypatch):
    home = tmp_path / "studio-home"
    monkeypatch.setenv("STUDIO_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random SD 1.x model saved as a real diffusers folder (built, not downloaded)."""
    from studio.engine.tiny_model import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture
def open_window(qtbot, tmp_path):
    """Open the real MainWindow on a real engine QThread, driven by `engine_factory`
    (the fake engine for UI tests, the real one end to end); threads are stopped after."""
    from studio.ui.main_window import MainWindow
    from studio.ui.worker import EngineThread

    threads = []

    def open_with(settings, engine_factory):
        engine = EngineThread(engine_factory)
        engine.start()
        threads.append(engine)
        window = MainWindow(settings, tmp_path / "settings.json", engine.worker)
        # A scripted artist: an image with settings dropped or opened restores its settings
        # (the menu would wait for a click); tests of the other choices answer otherwise.
        window.recall.ask_drop_action = lambda name: "settings"
        qtbot.addWidget(window)
        window.show()
        window.start()
        return window

    yield open_with
    for engine in threads:
        assert engine.stop(20000), "engine thread did not stop"


@pytest.fixture(scope="session")
def tiny_family_dir(tmp_path_factory):
    """A factory: tiny_family_dir("sd1" | "sd2" | "sdxl", in_channels=4) -> a diffusers folder of
    that tiny model (studio.engine.tiny_model.save_tiny_family, seed 0), built once per session."""
    from studio.engine.tiny_model import save_tiny_family

    made = {}

    def folder_for(family: str, in_channels: int = 4):
        if (family, in_channels) not in made:
            parent = tmp_path_factory.mktemp("family-models")
            made[family, in_channels] = save_tiny_family(parent / f"tiny-{family}-{in_channels}ch", family, 0, in_channels)
        return made[family, in_channels]

    return folder_for
