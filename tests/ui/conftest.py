import sys

import pytest

from studio.core.generation.settings import Settings
from studio.core.storage.outputs import OutputWriter
from tests.fakes import FakeEngine, Script


@pytest.fixture
def script():
    return Script()


@pytest.fixture
def make_window(open_window, tmp_path, script):
    """A real MainWindow and a real engine QThread, driving the fake engine."""

    def make(settings: Settings | None = None, model="/models/fake"):
        settings = settings or Settings(model=model, random_seed=False, seed=5, width=64, height=64, steps=4)
        window = open_window(settings, lambda emit: FakeEngine(emit, script, tmp_path / "outputs"))
        # The controller writes the images (the fake engine is asked not to): into the same
        # folder the fake engine used, so tests that break that folder break the writes.
        window.controller.writer.outputs = OutputWriter(tmp_path / "outputs")
        return window

    return make


@pytest.fixture(autouse=True)
def native_look_after_each_test():
    """A test that applied the dark or light theme leaves the shared QApplication as it was."""
    yield
    theme = sys.modules.get("studio.ui.theme")
    if theme is not None:
        theme.restore_native()
