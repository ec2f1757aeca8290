"""The engine's thread. One long-lived QThread owns the engine and its pipeline; jobs run one
at a time in arrival order. Engine events become Qt signals, delivered queued to the GUI.

Step previews do not queue up: the newest one waits in a one-slot mailbox and at most one
`stepReady` notification is in flight, so a slow GUI skips frames instead of lagging behind.
"""

from __future__ import annotations

import threading
from typing import Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from studio.core.errors import ErrorKind, StudioError
from studio.core.events import (
    Event,
    ImageFinished,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobStarted,
    ModelLoaded,
    ModelLoading,
    StepProgress,
)
from studio.core.request import GenerationRequest

EngineFactory = Callable[[Callable[[Event], None]], object]


class EngineWorker(QObject):
    modelLoading = Signal(object)
    modelLoaded = Signal(object)
    modelFailed = Signal(object)  # StudioError
    jobStarted = Signal(object)
    stepReady = Signal()  # call take_step() for the newest StepProgress
    imageFinished = Signal(object)
    jobFinished = Signal(object)
    jobCancelled = Signal(object)
    jobFailed = Signal(object)  # JobFailed

    _generateRequested = Signal(object, object)  # (request, cancel event), to the worker thread
    _loadRequested = Signal(str, str)
    _memoryRequested = Signal(object)  # a dict of MemoryOptions' fields

    def __init__(self, engine_factory: EngineFactory):
        super().__init__()
        self._engine_factory = engine_factory
        self._engine = None
        self._lock = threading.Lock()
        self._latest_step: StepProgress | None = None
        self._step_pending = False
        self._cancel: threading.Event | None = None
        self._generateRequested.connect(self._run_job)
        self._loadRequested.connect(self._load)
        self._memoryRequested.connect(self._set_memory)

    # -- GUI thread API -------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> None:
        self._cancel = threading.Event()  # one per job: a late cancel can't hit the next job
        self._generateRequested.emit(request, self._cancel)

    def cancel(self) -> None:
        """Takes effect at the next denoising step (read in the step callback)."""
        if self._cancel is not None:
            self._cancel.set()

    def load_model(self, path: str, device: str) -> None:
        self._loadRequested.emit(path, device)

    def set_memory(self, options: dict) -> None:
        """New memory options, as a dict of studio.engine.memory.MemoryOptions' fields (the GUI
        thread must not import the engine: it pulls in torch). A change of CPU offload takes
        effect at the next load; the engine reloads for the next job."""
        self._memoryRequested.emit(dict(options))

    def take_step(self) -> StepProgress | None:
        with self._lock:
            step, self._latest_step, self._step_pending = self._latest_step, None, False
        return step

    # -- worker thread ----------------------------------------------------------------------
    def _engine_or_fail(self):
        if self._engine is None:
            self._engine = self._engine_factory(self._dispatch)  # heavy imports happen here
        return self._engine

    @Slot(str, str)
    def _load(self, path: str, device: str) -> None:
        try:
            self._engine_or_fail().load(path, device)
        except StudioError as error:
            self.modelFailed.emit(error)
        except Exception as exc:  # noqa: BLE001 - the thread must survive anything
            self.modelFailed.emit(StudioError(ErrorKind.INTERNAL, f"Loading failed: {exc}"))

    @Slot(object)
    def _set_memory(self, options: dict) -> None:
        try:
            from studio.engine.memory import MemoryOptions

            self._engine_or_fail().set_memory(MemoryOptions(**options))
        except Exception as exc:  # noqa: BLE001 - the thread must survive anything
            self.modelFailed.emit(StudioError(ErrorKind.INTERNAL, f"The memory options could not be applied: {exc}"))

    @Slot(object, object)
    def _run_job(self, request: GenerationRequest, cancel: threading.Event) -> None:
        try:
            self._engine_or_fail().generate(request, cancel)
        except Exception as exc:  # noqa: BLE001
            self.jobFailed.emit(JobFailed(StudioError(ErrorKind.INTERNAL, f"Generation failed: {exc}"), request))

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, StepProgress):
            with self._lock:
                self._latest_step = event
                notify = not self._step_pending
                self._step_pending = True
            if notify:
                self.stepReady.emit()
            return
        signal = {
            ModelLoading: self.modelLoading,
            ModelLoaded: self.modelLoaded,
            JobStarted: self.jobStarted,
            ImageFinished: self.imageFinished,
            JobFinished: self.jobFinished,
            JobCancelled: self.jobCancelled,
            JobFailed: self.jobFailed,
        }[type(event)]
        signal.emit(event)


class EngineThread:
    """Owns the QThread and the worker that lives in it; stops them cleanly."""

    def __init__(self, engine_factory: EngineFactory):
        self.thread = QThread()
        self.thread.setObjectName("engine")
        self.worker = EngineWorker(engine_factory)
        self.worker.moveToThread(self.thread)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout_ms: int = 30000) -> bool:
        """Cancel the running job, finish the event loop and wait. Never terminate(): killing a
        thread inside torch can leave locks held."""
        self.worker.cancel()
        self.thread.quit()
        return self.thread.wait(timeout_ms)


def real_engine_factory(emit):
    from studio.core.outputs import OutputWriter
    from studio.core.paths import outputs_dir
    from studio.engine.engine import Engine
    from studio.engine.threads import apply_cpu_threads, cpu_threads

    apply_cpu_threads(cpu_threads())  # runs in the engine thread: leave the GUI and other programs a core
    return Engine(OutputWriter(outputs_dir()), emit)
