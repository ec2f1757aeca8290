"""Every internal error and every failed job leaves its traceback in the data folder's log,
while the artist gets one sentence."""

from __future__ import annotations

import threading

import pytest

from studio.backends.local.backend import LocalBackend
from studio.backends.local.worker import EngineThread
from studio.core.events import JobFailed
from studio.core.generation.request import GenerationRequest
from studio.core.storage.log_file import LOG_FILE_NAME, start_log_file, stop_log_file


@pytest.fixture
def log_path(tmp_path):
    path = start_log_file(tmp_path / "logs")
    assert path == tmp_path / "logs" / LOG_FILE_NAME
    assert start_log_file(tmp_path / "logs") == path  # a second call adds no second handler
    yield path
    stop_log_file(path)


class _BrokenEngine:
    """An engine with a bug of ours: generate raises instead of reporting JobFailed."""

    library_dirs: list[str] = []

    def __init__(self, emit):
        self.emit = emit

    def load(self, path, device_choice=None, vae=""):
        raise KeyError("config")

    def set_memory(self, options):
        pass

    def generate(self, request, cancel: threading.Event, job_id: str = "", save_images: bool = True):
        raise ZeroDivisionError("a bug in the job loop")


def test_an_internal_error_in_the_engine_thread_leaves_its_traceback(qtbot, log_path):
    engine = EngineThread(_BrokenEngine)
    engine.start()
    backend = LocalBackend(engine)
    events = []
    backend.subscribe(events.append)
    try:
        backend.run_job("job-a", GenerationRequest(prompt="x", width=64, height=64, model="/models/fake"))
        qtbot.waitUntil(lambda: any(isinstance(e, JobFailed) for e in events), timeout=5000)
    finally:
        backend.close()
        assert engine.stop(10000)
    (failed,) = [e for e in events if isinstance(e, JobFailed)]
    assert failed.error.kind.value == "internal" and "Traceback" not in failed.error.message
    text = log_path.read_text()
    assert "Traceback (most recent call last)" in text and "ZeroDivisionError: a bug in the job loop" in text


def test_an_engine_failure_is_logged_with_its_traceback(log_path):
    torch_errors = pytest.importorskip("studio.engine.errors")
    try:
        raise RuntimeError("CUDA error: an illegal memory access")
    except RuntimeError as exc:
        error = torch_errors.to_studio_error(exc)
    assert error.kind.value == "internal"
    text = log_path.read_text()
    assert "Traceback (most recent call last)" in text and "an illegal memory access" in text


def test_every_failed_job_is_logged_by_the_controller(qapp, tmp_path, log_path):
    from studio.application.controller import StudioController
    from studio.core.storage.job_queue import JobQueue
    from studio.core.storage.outputs import OutputWriter
    from tests.fakes import FakeBackend, Script

    backend = FakeBackend(Script(fail_at_step=1))
    controller = StudioController(backend, JobQueue(tmp_path / "queue.json"), OutputWriter(tmp_path / "outputs"))
    try:
        controller.generate(GenerationRequest(prompt="x", steps=3, width=64, height=64, model="/models/fake"))
        backend.run_all()
    finally:
        controller.close(10)
    assert "Job failed (out_of_memory)" in log_path.read_text()
