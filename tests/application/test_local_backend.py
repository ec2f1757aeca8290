"""LocalBackend: the real engine QThread and worker (issue 12 item 2) behind the Backend
protocol, with the fake engine in the thread. Events reach the GUI thread tagged with their
job's id; each job has its own cancel; the controller runs a queue through it."""

from __future__ import annotations

import threading

import pytest

from studio.application.controller import StudioController
from studio.backends.local.backend import LocalBackend
from studio.backends.local.worker import EngineThread
from studio.core.backend import Backend
from studio.core.errors import ErrorKind, StudioError
from studio.core.events import ImageFinished, JobCancelled, JobFinished, ModelFailed, ModelLoaded
from studio.core.generation.request import GenerationRequest
from studio.core.storage.job_queue import JobQueue, JobStatus
from studio.core.storage.outputs import OutputWriter
from tests.fakes import FakeEngine, Script


def req(n: int, steps: int = 3) -> GenerationRequest:
    return GenerationRequest(prompt=f"job {n}", seed=n, steps=steps, width=64, height=64, model="/models/fake")


@pytest.fixture
def local(qtbot, tmp_path):
    script = Script()
    engine = EngineThread(lambda emit: FakeEngine(emit, script, tmp_path / "engine-outputs"))
    engine.start()
    backend = LocalBackend(engine)
    events = []
    backend.subscribe(events.append)
    yield backend, script, events
    backend.close()
    assert engine.stop(20000)


def test_it_is_a_backend(local):
    assert isinstance(local[0], Backend)


def test_events_come_to_the_gui_thread_with_the_job_id_and_images_unsaved(local, qtbot, tmp_path):
    backend, script, events = local
    gui = threading.get_ident()
    seen_threads = set()
    backend.subscribe(lambda event: seen_threads.add(threading.get_ident()))
    backend.run_job("job-a", req(0))
    qtbot.waitUntil(lambda: any(isinstance(e, JobFinished) for e in events), timeout=5000)
    assert script.job_ids == ["job-a"]
    job_events = [e for e in events if hasattr(e, "job_id")]
    assert job_events and {e.job_id for e in job_events} == {"job-a"}
    (image,) = [e for e in events if isinstance(e, ImageFinished)]
    assert image.path is None and image.image.shape == (64, 64, 3)
    assert not (tmp_path / "engine-outputs").exists(), "the engine wrote nothing"
    assert seen_threads == {gui}


def test_cancel_reaches_only_its_own_job(local, qtbot):
    backend, script, events = local
    script.hold = threading.Event()
    backend.run_job("job-a", req(0))
    assert script.held.wait(5)
    backend.cancel_job("job-b")  # unknown: nothing happens
    backend.run_job("job-b", req(1))  # waits behind job-a in the worker
    backend.cancel_job("job-a")
    script.hold.set()
    qtbot.waitUntil(lambda: sum(isinstance(e, (JobFinished, JobCancelled)) for e in events) == 2, timeout=5000)
    ends = [(type(e), e.job_id) for e in events if isinstance(e, (JobFinished, JobCancelled))]
    assert ends == [(JobCancelled, "job-a"), (JobFinished, "job-b")]


def test_models_memory_and_a_failed_load(local, qtbot, tmp_path, monkeypatch):
    backend, script, events = local
    backend.load_model("/models/fake", "cpu")
    qtbot.waitUntil(lambda: any(isinstance(e, ModelLoaded) for e in events), timeout=5000)
    sent = []
    monkeypatch.setattr(backend.worker, "set_memory", sent.append)  # the real one imports torch (seconds)
    backend.set_memory({"attention_slicing": True})
    assert sent == [{"attention_slicing": True}]
    script.load_error = StudioError(ErrorKind.BAD_MODEL, "Not a model.")
    backend.load_model("/models/broken")
    qtbot.waitUntil(lambda: any(isinstance(e, ModelFailed) for e in events), timeout=5000)
    failed = next(e for e in events if isinstance(e, ModelFailed))
    assert (failed.model, failed.error.message) == ("/models/broken", "Not a model.")
    (tmp_path / "mine").mkdir()
    backend.set_model_folders([str(tmp_path / "mine")])
    assert backend.list_models() == []  # an empty folder; scanning itself is tested in core
    backend.run_job("job-a", req(0))  # the engine finds LoRAs beside the folders it was told, never from settings.json
    qtbot.waitUntil(lambda: any(isinstance(e, JobFinished) for e in events), timeout=5000)
    assert script.library_dirs == [[str(tmp_path / "mine")]]


def test_the_controller_runs_a_queue_through_the_engine_thread(local, qtbot, tmp_path):
    backend, script, events = local
    controller = StudioController(backend, JobQueue(tmp_path / "queue.json"), OutputWriter(tmp_path / "outputs"))
    ids = [controller.generate(req(n)) for n in range(3)]
    controller.cancel_job(ids[1])
    qtbot.waitUntil(lambda: controller.job(ids[2]).status is JobStatus.DONE, timeout=10000)
    assert script.job_ids == [ids[0], ids[2]]
    qtbot.waitUntil(lambda: len(controller.job(ids[2]).paths) == 1, timeout=10000)
    assert all(p.endswith(".png") for p in controller.job(ids[0]).paths + controller.job(ids[2]).paths)
    assert controller.close(10)


def test_a_waiting_load_is_replaced_by_the_next_model_chosen(local, qtbot):
    backend, script, events = local
    script.hold_load = threading.Event()
    backend.load_model("/models/slow", "cpu")  # being read: blocks the worker
    assert script.held.wait(5)
    for name in ("a", "b", "c"):  # the artist clicks through three models meanwhile
        backend.load_model(f"/models/{name}", "cpu")
    script.hold_load.set()
    qtbot.waitUntil(lambda: sum(isinstance(e, ModelLoaded) for e in events) == 2, timeout=5000)
    qtbot.wait(50)
    assert [path for path, _ in script.loads] == ["/models/slow", "/models/c"]
