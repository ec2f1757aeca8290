import pytest

from studio.backends.local.worker import real_engine_factory


@pytest.fixture
def open_studio(open_window):
    """The real window on the real engine thread (real diffusers on CPU), as the app opens it."""
    return lambda settings: open_window(settings, real_engine_factory)
