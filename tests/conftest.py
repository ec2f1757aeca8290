"""Test environment: headless Qt, no network, and never the user's real data folder."""

import os
import threading
import time

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
    from studio.backends.local.worker import EngineThread
    from studio.launch import build_controller
    from studio.ui.main_window import MainWindow

    threads = []

    def open_with(settings, engine_factory):
        engine = EngineThread(engine_factory)
        engine.start()
        threads.append(engine)
        window = MainWindow(build_controller(engine, settings, tmp_path / "settings.json")[0])
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


# -- thread leaks (issue 12): a test must not leave a QThread or a non-daemon thread running ---
# Daemon threads are exempt: they cannot keep the process alive (the studio's background readers,
# the model hash, the image writer are daemons by design). Threads that end within
# LEAK_GRACE_SECONDS of the test's end are not leaks (a pool winding down after shutdown(wait=False)).
LEAK_GRACE_SECONDS = 2.0
_started_qthreads = None  # a WeakSet of every QThread started in this session (QThread.start is wrapped)


def _track_qthreads():
    """Qt keeps no list of its threads: wrap QThread.start to remember each one."""
    global _started_qthreads
    try:
        from PySide6.QtCore import QThread
    except ImportError:  # pragma: no cover - Qt is a dependency; core tests would still run without it
        return
    import weakref

    _started_qthreads = weakref.WeakSet()
    original = QThread.start

    def start(self, *args, **kwargs):
        _started_qthreads.add(self)
        return original(self, *args, **kwargs)

    QThread.start = start


def pytest_configure(config):
    config.addinivalue_line("markers", "allow_thread_leak(reason): the test may leave threads running (say why)")
    _track_qthreads()


def _long_lived_qthreads() -> set:
    """QThreads that outlive their test on purpose: engine threads that did not stop within
    the close wait are kept referenced until they end (studio.backends.local.worker._still_running), since
    destroying a running QThread aborts the process."""
    try:
        from studio.backends.local import worker
    except ImportError:  # pragma: no cover
        return set()
    return {id(engine.thread) for engine in worker._still_running}


def _running_threads(python_before: set, qt_before: set) -> list[str]:
    main = threading.main_thread()
    leaked = [f"Python thread {t.name!r}" for t in threading.enumerate()
              if t is not main and not t.daemon and t.is_alive() and t.ident not in python_before]
    allowed = _long_lived_qthreads()
    for thread in list(_started_qthreads or ()):
        try:
            running = thread.isRunning()
        except RuntimeError:  # the C++ object is gone: not running
            continue
        if running and id(thread) not in qt_before and id(thread) not in allowed:
            leaked.append(f"QThread {thread.objectName() or type(thread).__name__!r}")
    return leaked


def _running_qthread_ids() -> set:
    found = set()
    for thread in list(_started_qthreads or ()):
        try:
            if thread.isRunning():
                found.add(id(thread))
        except RuntimeError:
            continue
    return found


@pytest.fixture(autouse=True)
def no_leaked_threads(request):
    """Fail a test that leaves a QThread or a non-daemon Python thread running (napari does the
    same): a leaked engine thread outlives its window and, in the app, blocks the exit."""
    python_before = {t.ident for t in threading.enumerate()}
    qt_before = _running_qthread_ids()
    yield
    marker = request.node.get_closest_marker("allow_thread_leak")
    if marker is not None:
        return
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    leaked = _running_threads(python_before, qt_before)
    while leaked and time.monotonic() < deadline:
        time.sleep(0.02)
        leaked = _running_threads(python_before, qt_before)
    if leaked:
        pytest.fail(f"the test left {len(leaked)} thread(s) running: {', '.join(leaked)}", pytrace=False)
