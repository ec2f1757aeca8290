import pytest

from studio.core.settings import Settings
from studio.ui.main_window import MainWindow
from studio.ui.worker import EngineThread
from tests.fakes import FakeEngine, Script


@pytest.fixture
def script():
    return Script()


@pytest.fixture
def make_window(qtbot, tmp_path, script):
    """A real MainWindow and a real engine QThread, driving the fake engine."""
    threads = []

    def make(settings: Settings | None = None, model="/models/fake"):
        settings = settings or Settings(model=model, random_seed=False, seed=5, width=64, height=64, steps=4)
        engine = EngineThread(lambda emit: FakeEngine(emit, script, tmp_path / "outputs"))
        engine.start()
        threads.append(engine)
        window = MainWindow(settings, tmp_path / "settings.json", engine.worker)
        qtbot.addWidget(window)
        window.show()
        window.start()
        return window

    yield make
    for engine in threads:
        assert engine.stop(5000), "engine thread did not stop"
