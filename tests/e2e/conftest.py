import pytest

from studio.ui.main_window import MainWindow
from studio.ui.worker import EngineThread, real_engine_factory


@pytest.fixture
def open_studio(qtbot, tmp_path):
    """The real window on the real engine thread (real diffusers on CPU), as the app opens it."""
    threads = []

    def open_with(settings):
        engine = EngineThread(real_engine_factory)
        engine.start()
        threads.append(engine)
        window = MainWindow(settings, tmp_path / "settings.json", engine.worker)
        qtbot.addWidget(window)
        window.show()
        window.start()
        return window

    yield open_with
    for engine in threads:
        assert engine.stop(20000), "engine thread did not stop"
