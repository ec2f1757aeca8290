"""A scriptable fake engine with the real interface, for UI tests (krita-ai-diffusion style).

It emits the same typed events as studio.engine.Engine and writes real PNGs, but runs no model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from studio.core.backend import Backend, BackendModel, EventListener
from studio.core.errors import ErrorKind, StudioError
from studio.core.events import (
    Event,
    ImageFinished,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobStarted,
    ModelFailed,
    ModelLoaded,
    ModelLoading,
    StepProgress,
)
from studio.core.generation.request import GenerationRequest
from studio.core.storage.outputs import OutputWriter


@dataclass
class Script:
    step_seconds: float = 0.0
    fail_at_step: int | None = None  # raise a fake OOM at this step
    load_error: StudioError | None = None
    # Faults for reliability tests. `hold` makes one step (or the load) wait for the event, as a
    # long UNet call or a model read from a FIFO does: cancel is not seen until it is set.
    hold: threading.Event | None = None
    hold_at_step: int = 1
    hold_load: threading.Event | None = None
    raise_at_step: int | None = None  # raise `exception` here (an engine bug, MemoryError, SystemExit)
    exception: BaseException | None = None
    nan_image: bool = False  # the decoded image is NaN: failed as the real VAE decode fails it
    held: threading.Event = field(default_factory=threading.Event)  # set while a hold is waiting
    requests: list = field(default_factory=list)
    loads: list = field(default_factory=list)
    load_vaes: list = field(default_factory=list)  # the VAE each load was asked to use
    memory: list = field(default_factory=list)  # the MemoryOptions set_memory received, in order
    thread_ids: set = field(default_factory=set)
    job_ids: list = field(default_factory=list)  # the job id each generate was given
    library_dirs: list = field(default_factory=list)  # the model folders each job was run with


class FakeEngine:
    def __init__(self, emit, script: Script, outputs: Path):
        self.emit = emit
        self.script = script
        self.outputs = OutputWriter(outputs)

    def load(self, path, device=None, vae=""):
        self.script.loads.append((path, device))
        self.script.load_vaes.append(vae)
        self.script.thread_ids.add(threading.get_ident())
        if self.script.hold_load is not None:
            self.script.held.set()
            self.script.hold_load.wait()
        if self.script.load_error:
            raise self.script.load_error
        self.emit(ModelLoading(path, device or "cpu"))
        self.emit(ModelLoaded(path, "cpu", "float32", 0.01))

    def set_memory(self, options):
        self.script.memory.append(options)
        self.script.thread_ids.add(threading.get_ident())

    def generate(self, request, cancel: threading.Event, job_id: str = "", save_images: bool = True):
        self.script.library_dirs.append(list(getattr(self, "library_dirs", [])))
        self.script.requests.append(request)
        self.script.job_ids.append(job_id)
        self.script.thread_ids.add(threading.get_ident())
        request = request.validated()
        self.emit(JobStarted(request, job_id=job_id))
        paths: list[Path] = []
        started = time.perf_counter()
        for index in range(request.batch_count):
            single = request.for_image(index)
            for step in range(1, request.steps + 1):
                time.sleep(self.script.step_seconds)
                if self.script.hold is not None and step == self.script.hold_at_step:
                    self.script.held.set()
                    self.script.hold.wait()
                if step == self.script.raise_at_step:
                    raise self.script.exception or RuntimeError("fake engine fault")
                if cancel.is_set():
                    self.emit(JobCancelled(request, tuple(paths), job_id=job_id))
                    return
                if step == self.script.fail_at_step:
                    error = StudioError(ErrorKind.OUT_OF_MEMORY, "The device ran out of memory.", "Try smaller.")
                    self.emit(JobFailed(error, request, job_id=job_id))
                    return
                shade = int(255 * step / request.steps)
                preview = np.full((request.height // 8, request.width // 8, 3), shade, np.uint8)
                self.emit(StepProgress(index, step, request.steps, preview, self.script.step_seconds, job_id=job_id))
            if self.script.nan_image:
                self.emit(JobFailed(StudioError(ErrorKind.INTERNAL, "The model produced an invalid (NaN) image.",
                                                "The model file may be damaged."), request, job_id=job_id))
                return
            pixels = np.full((request.height, request.width, 3), (200, 30, 30), np.uint8)
            path = None
            if save_images:
                path, single = self.outputs.save(Image.fromarray(pixels), single)
                paths.append(path)
            self.emit(ImageFinished(index, single, path, pixels, job_id=job_id))
        self.emit(JobFinished(request, tuple(paths), time.perf_counter() - started, job_id=job_id))


class FakeBackend:
    """The Backend protocol (studio.core.backend) over FakeEngine, with no threads: calls are
    recorded and run when the test says so (`run_next`, `run_all`), on the test's own thread,
    so controller tests are exact about order. Events reach the listeners as from a real backend:
    job events carry the job id and images arrive unsaved (path None)."""

    def __init__(self, script: Script | None = None, outputs: Path | None = None,
                 models: list[BackendModel] | None = None):
        self.script = script or Script()
        self.models = models if models is not None else [BackendModel("/models/fake", "fake", "SD 1.x")]
        self.engine = FakeEngine(self._deliver, self.script, outputs or Path("fake-backend-outputs-unused"))
        self.listeners: list[EventListener] = []
        self.calls: list[tuple[str, ...]] = []  # every protocol call, in order
        self._work: list[Callable[[], None]] = []
        self._cancels: dict[str, threading.Event] = {}
        self.closed = False
        self.stopped_worker = False
        self.model_folders: list[str] = []

    # -- the Backend protocol ---------------------------------------------------------------
    def subscribe(self, listener: EventListener) -> None:
        self.listeners.append(listener)

    def load_model(self, model: str, device: str = "auto", vae: str = "") -> None:
        self.calls.append(("load_model", model, device, vae))
        self._work.append(lambda: self._load(model, device, vae))

    def run_job(self, job_id: str, request: GenerationRequest) -> None:
        self.calls.append(("run_job", job_id))
        cancel = self._cancels.setdefault(job_id, threading.Event())
        self._work.append(lambda: self._run(job_id, request, cancel))

    def cancel_job(self, job_id: str) -> None:
        self.calls.append(("cancel_job", job_id))
        if job_id in self._cancels:
            self._cancels[job_id].set()

    def set_model_folders(self, folders: Sequence[str]) -> None:
        self.model_folders = list(folders)  # not in `calls`: the controller says it before every job

    def list_models(self) -> list[BackendModel]:
        return list(self.models)

    def set_memory(self, options: Mapping[str, object]) -> None:
        self.calls.append(("set_memory", *sorted(options)))
        self.engine.set_memory(dict(options))

    def close(self) -> None:
        self.closed = True
        for cancel in self._cancels.values():
            cancel.set()
        self.listeners.clear()

    def stop(self, wait_ms: int = 0) -> bool:
        self.stopped_worker = True
        return True

    def stopped(self) -> bool:
        return self.stopped_worker

    # -- the test's controls -----------------------------------------------------------------
    @property
    def idle(self) -> bool:
        return not self._work

    def run_next(self) -> bool:
        """Run the oldest recorded load or job to its end; False when there was none."""
        if not self._work:
            return False
        self._work.pop(0)()
        return True

    def run_all(self, limit: int = 100) -> int:
        """Run loads and jobs (including those started meanwhile) until none is left."""
        count = 0
        while count < limit and self.run_next():
            count += 1
        return count

    def _deliver(self, event: Event) -> None:
        for listener in list(self.listeners):
            listener(event)

    def _load(self, model: str, device: str, vae: str) -> None:
        try:
            self.engine.load(model, device, vae)
        except StudioError as error:
            self._deliver(ModelFailed(error, model))

    def _run(self, job_id: str, request: GenerationRequest, cancel: threading.Event) -> None:
        try:
            self.engine.generate(request, cancel, job_id=job_id, save_images=False)
        except Exception as exc:  # noqa: BLE001 - as the worker thread does: the job fails, the backend lives
            self._deliver(JobFailed(StudioError(ErrorKind.INTERNAL, f"Generation failed: {exc}"), request, job_id=job_id))
        finally:
            self._cancels.pop(job_id, None)


if TYPE_CHECKING:  # the type checker proves FakeBackend is a Backend (.ci/run runs mypy)

    def _is_a_backend(backend: FakeBackend) -> Backend:
        return backend
