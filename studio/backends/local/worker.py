"""The engine's thread. One long-lived QThread owns the engine and its pipeline; jobs run one
at a time in arrival order. The engine's typed events cross to the GUI thread unchanged, on one
queued signal (`event`).

Step previews do not queue up as signals: they wait in a mailbox and at most one `stepReady`
notification is in flight, so a slow GUI takes every frame that arrived meanwhile in one go
(the step scrubber keeps them all) and shows only the newest, instead of lagging behind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import QObject, QThread, Signal, Slot

from studio.core.errors import ErrorKind, StudioError
from studio.core.events import Event, JobFailed, ModelFailed, StepProgress
from studio.core.generation.request import GenerationRequest

log = logging.getLogger(__name__)

class Engine(Protocol):
    """What the worker drives: studio.engine.engine.Engine, or a test's fake engine."""

    library_dirs: list[str]

    def load(self, path: str, device_choice: str | None = None, vae: str = "") -> object: ...

    def set_memory(self, options: Any) -> None: ...

    def generate(self, request: GenerationRequest, cancel: threading.Event, job_id: str = "",
                 save_images: bool = True) -> None: ...


EngineFactory = Callable[[Callable[[Event], None]], Engine]
# Previews waiting for a GUI that fell behind (each a latent-resolution frame of about 50 KB).
MAX_WAITING_STEPS = 1000
# QThreads still running when their owner gave up waiting. Destroying a running QThread aborts
# the process ("QThread: Destroyed while thread is still running"), so they stay referenced
# here until they end (pruned at the next stop) or the process exits through os._exit.
_still_running: list[EngineThread] = []


class EngineWorker(QObject):
    engineEvent = Signal(object)  # every engine event but the steps, as the engine made it
    stepReady = Signal()  # call take_steps() for the StepProgress events since the last call

    _generateRequested = Signal(object, object, str)  # (request, cancel event, job id), to the worker thread
    _loadRequested = Signal(str, str, str, int)  # path, device, VAE ("" = the model's own), request number
    _memoryRequested = Signal(object)  # a dict of MemoryOptions' fields
    _foldersRequested = Signal(object)  # the artist's model folders (a tuple of str)

    def __init__(self, engine_factory: EngineFactory):
        super().__init__()
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._steps: list[StepProgress] = []
        self._step_pending = False
        self._cancel: threading.Event | None = None
        self._latest_load = 0  # the number of the newest load asked for (under _lock)
        self._generateRequested.connect(self._run_job)
        self._loadRequested.connect(self._load)
        self._memoryRequested.connect(self._set_memory)
        self._foldersRequested.connect(self._set_folders)
        self._model_folders: tuple[str, ...] = ()  # read in the worker thread only

    # -- GUI thread API -------------------------------------------------------------------
    def generate(self, request: GenerationRequest, job_id: str = "") -> threading.Event:
        """Queue a job; its events carry `job_id`. Its images come unsaved (ImageFinished with
        path None): the application layer's writer thread writes them. Returns the job's own
        cancel event."""
        self._cancel = threading.Event()  # one per job: a late cancel can't hit the next job
        self._generateRequested.emit(request, self._cancel, job_id)
        return self._cancel

    def cancel(self) -> None:
        """Takes effect at the next denoising step (read in the step callback)."""
        if self._cancel is not None:
            self._cancel.set()

    def load_model(self, path: str, device: str, vae: str = "") -> None:
        """A checkpoint without a VAE of its own needs the chosen one to load at all. A load
        still waiting behind a job or another load when the next model is chosen is skipped:
        the newest choice replaces it."""
        with self._lock:
            self._latest_load += 1
            number = self._latest_load
        self._loadRequested.emit(path, device, vae, number)

    def set_memory(self, options: dict) -> None:
        """New memory options, as a dict of studio.engine.memory.MemoryOptions' fields (the GUI
        thread must not import the engine: it pulls in torch). A change of CPU offload takes
        effect at the next load; the engine reloads for the next job."""
        self._memoryRequested.emit(dict(options))

    def set_model_folders(self, folders: list[str]) -> None:
        """The artist's model folders: LoRAs and embeddings are found beside them. Applies to
        the jobs queued after this call (signals to the worker thread keep their order)."""
        self._foldersRequested.emit(tuple(folders))

    def take_steps(self) -> list[StepProgress]:
        """Every step reported since the last call, oldest first (the newest is last)."""
        with self._lock:
            steps, self._steps, self._step_pending = self._steps, [], False
        return steps

    # -- worker thread ----------------------------------------------------------------------
    def _engine_or_fail(self) -> Engine:
        if self._engine is None:
            self._engine = self._engine_factory(self._dispatch)  # heavy imports happen here
        return self._engine

    @Slot(str, str, str, int)
    def _load(self, path: str, device: str, vae: str, number: int) -> None:
        with self._lock:
            superseded = number != self._latest_load
        if superseded:  # another model was chosen meanwhile; its load is queued behind this one
            return
        try:
            self._engine_or_fail().load(path, device, vae=vae)
        except StudioError as error:
            self.engineEvent.emit(ModelFailed(error, path))
        except Exception as exc:  # noqa: BLE001 - the thread must survive anything
            self.engineEvent.emit(ModelFailed(_internal_error(f"Loading failed: {exc}", exc), path))

    @Slot(object)
    def _set_memory(self, options: dict) -> None:
        try:
            from studio.engine.memory import MemoryOptions

            self._engine_or_fail().set_memory(MemoryOptions(**options))
        except Exception as exc:  # noqa: BLE001 - the thread must survive anything
            self.engineEvent.emit(ModelFailed(_internal_error(f"The memory options could not be applied: {exc}", exc), ""))

    @Slot(object)
    def _set_folders(self, folders: tuple[str, ...]) -> None:
        self._model_folders = folders

    @Slot(object, object, str)
    def _run_job(self, request: GenerationRequest, cancel: threading.Event, job_id: str) -> None:
        try:
            engine = self._engine_or_fail()
            engine.library_dirs = list(self._model_folders)  # LoRA folders are found beside the model folders
            engine.generate(request, cancel, job_id=job_id, save_images=False)
        except Exception as exc:  # noqa: BLE001 - the thread must survive anything
            self.engineEvent.emit(JobFailed(_internal_error(f"Generation failed: {exc}", exc), request, job_id=job_id))

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, StepProgress):
            with self._lock:
                self._steps.append(event)
                if len(self._steps) > MAX_WAITING_STEPS:  # a GUI frozen for minutes: keep the newest
                    del self._steps[0]
                notify = not self._step_pending
                self._step_pending = True
            if notify:
                self.stepReady.emit()
            return
        self.engineEvent.emit(event)


def _internal_error(message: str, exc: BaseException) -> StudioError:
    """A bug of ours: the artist gets one line, the log gets the traceback."""
    log.error("%s", message, exc_info=exc)
    return StudioError(ErrorKind.INTERNAL, message)


class EngineThread:
    """Owns the QThread and the worker that lives in it; stops them cleanly."""

    def __init__(self, engine_factory: EngineFactory):
        self.thread = QThread()
        self.thread.setObjectName("engine")
        self.worker = EngineWorker(engine_factory)
        self.worker.moveToThread(self.thread)

    def start(self) -> None:
        self.thread.start()

    def request_stop(self) -> None:
        """Cancel the running job and ask the event loop to end after it; returns at once."""
        self.worker.cancel()
        self.thread.quit()

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def keep_alive(self) -> None:
        """Never let this object be collected while its thread runs (see `_still_running`)."""
        _still_running[:] = [t for t in _still_running if t.is_running()]
        if self.is_running() and self not in _still_running:
            _still_running.append(self)

    def stop(self, timeout_ms: int = 30000) -> bool:
        """Cancel the running job, finish the event loop and wait. Never terminate(): killing a
        thread inside torch can leave locks held. False when the thread still runs after the
        wait (a step or a model read that takes longer): it is then kept alive, never destroyed."""
        self.request_stop()
        stopped = self.thread.wait(timeout_ms)
        self.keep_alive()
        return stopped


def real_engine_factory(emit: Callable[[Event], None]) -> Engine:
    """The engine of the studio's window, made in the engine thread (heavy imports happen here)."""
    from studio.engine.warmup import warm_engine_imports

    warm_engine_imports()  # before the Engine's own imports, which then find everything loaded
    from studio.core.storage.outputs import OutputWriter
    from studio.core.storage.paths import outputs_dir
    from studio.engine.engine import Engine as StudioEngine
    from studio.engine.threads import apply_cpu_threads, cpu_threads

    apply_cpu_threads(cpu_threads())  # runs in the engine thread: leave the GUI and other programs a core
    # The worker asks for unsaved images (the application layer writes them to the folder the
    # artist chose); the engine's own writer is never used here.
    engine: Engine = StudioEngine(OutputWriter(outputs_dir()), emit)
    return engine


