"""The engine's thread. One long-lived QThread owns the engine and its pipeline; jobs run one
at a time in arrival order. Engine events become Qt signals, delivered queued to the GUI.

Step previews do not queue up as signals: they wait in a mailbox and at most one `stepReady`
notification is in flight, so a slow GUI takes every frame that arrived meanwhile in one go
(the step scrubber keeps them all) and shows only the newest, instead of lagging behind.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

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
from studio.core.generation.request import GenerationRequest

EngineFactory = Callable[[Callable[[Event], None]], object]
# How long closing the window waits for the running step (or model load) to end after the
# cancel. A step on a big model on the CPU can take this long; longer than this, an artist
# wants the window gone, and nothing is lost: finished images and settings are already saved.
CLOSE_WAIT_SECONDS = 20.0
CLOSE_POLL_MS = 50
# Previews waiting for a GUI that fell behind (each a latent-resolution frame of about 50 KB).
MAX_WAITING_STEPS = 1000
# QThreads still running when their owner gave up waiting. Destroying a running QThread aborts
# the process ("QThread: Destroyed while thread is still running"), so they stay referenced
# here until they end (pruned at the next stop) or the process exits through os._exit.
_still_running: list[EngineThread] = []


class EngineWorker(QObject):
    modelLoading = Signal(object)
    modelLoaded = Signal(object)
    modelFailed = Signal(object)  # StudioError
    jobStarted = Signal(object)
    stepReady = Signal()  # call take_steps() for the StepProgress events since the last call
    imageFinished = Signal(object)
    jobFinished = Signal(object)
    jobCancelled = Signal(object)
    jobFailed = Signal(object)  # JobFailed

    _generateRequested = Signal(object, object, str, bool)  # (request, cancel event, job id, save), to the worker thread
    _loadRequested = Signal(str, str, str)  # path, device, VAE ("" = the model's own)
    _memoryRequested = Signal(object)  # a dict of MemoryOptions' fields

    def __init__(self, engine_factory: EngineFactory):
        super().__init__()
        self._engine_factory = engine_factory
        self._engine = None
        self._lock = threading.Lock()
        self._steps: list[StepProgress] = []
        self._step_pending = False
        self._cancel: threading.Event | None = None
        self._generateRequested.connect(self._run_job)
        self._loadRequested.connect(self._load)
        self._memoryRequested.connect(self._set_memory)

    # -- GUI thread API -------------------------------------------------------------------
    def generate(self, request: GenerationRequest, job_id: str = "", save_images: bool = True) -> threading.Event:
        """Queue a job; its events carry `job_id`. Without `save_images` the engine emits each
        image unsaved (path None) for the caller to write. Returns the job's own cancel event."""
        self._cancel = threading.Event()  # one per job: a late cancel can't hit the next job
        self._generateRequested.emit(request, self._cancel, job_id, save_images)
        return self._cancel

    def cancel(self) -> None:
        """Takes effect at the next denoising step (read in the step callback)."""
        if self._cancel is not None:
            self._cancel.set()

    def load_model(self, path: str, device: str, vae: str = "") -> None:
        """A checkpoint without a VAE of its own needs the chosen one to load at all."""
        self._loadRequested.emit(path, device, vae)

    def set_memory(self, options: dict) -> None:
        """New memory options, as a dict of studio.engine.memory.MemoryOptions' fields (the GUI
        thread must not import the engine: it pulls in torch). A change of CPU offload takes
        effect at the next load; the engine reloads for the next job."""
        self._memoryRequested.emit(dict(options))

    def take_steps(self) -> list[StepProgress]:
        """Every step reported since the last call, oldest first (the newest is last)."""
        with self._lock:
            steps, self._steps, self._step_pending = self._steps, [], False
        return steps

    # -- worker thread ----------------------------------------------------------------------
    def _engine_or_fail(self):
        if self._engine is None:
            self._engine = self._engine_factory(self._dispatch)  # heavy imports happen here
        return self._engine

    @Slot(str, str, str)
    def _load(self, path: str, device: str, vae: str) -> None:
        try:
            self._engine_or_fail().load(path, device, vae=vae)
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

    @Slot(object, object, str, bool)
    def _run_job(self, request: GenerationRequest, cancel: threading.Event, job_id: str, save_images: bool) -> None:
        try:
            engine = self._engine_or_fail()
            engine.library_dirs = _saved_model_dirs()  # LoRA folders are found beside the model folders
            # Only asked-for options are passed: engines written before job ids still work.
            options: dict[str, object] = {"job_id": job_id} if job_id else {}
            if not save_images:
                options["save_images"] = False
            engine.generate(request, cancel, **options)
        except Exception as exc:  # noqa: BLE001
            error = StudioError(ErrorKind.INTERNAL, f"Generation failed: {exc}")
            self.jobFailed.emit(JobFailed(error, request, job_id=job_id))

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

        self.worker.engine_thread = self  # what the window's close asks to stop (EngineCloser)

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


class EngineCloser(QObject):
    """Closing the window while the engine works: cancel, then wait for the current step (or
    model load) to end without blocking the GUI thread: a QTimer polls the thread, so the
    window keeps painting its "Finishing the current step…" message. `done` fires once the
    engine thread ended, or when the wait ran out (the thread is then kept alive, and the app
    exits without waiting for it: studio.launch.finish_engine)."""

    done = Signal(bool)  # True: the engine thread ended; False: gave up waiting

    def __init__(self, engine: EngineThread, wait_seconds: float | None = None, parent=None):
        super().__init__(parent)
        self.engine = engine
        self.wait_seconds = CLOSE_WAIT_SECONDS if wait_seconds is None else wait_seconds
        self.result: bool | None = None  # None while waiting
        self._deadline = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(CLOSE_POLL_MS)
        self._timer.timeout.connect(self._poll)

    def begin(self, quick_ms: int = 100) -> bool:
        """Ask the engine to stop; True when it already has (an idle engine ends at once).
        Otherwise polling starts and `done` follows."""
        self.engine.request_stop()
        if self.engine.thread.wait(quick_ms):
            self.result = True
            return True
        self._deadline = time.monotonic() + self.wait_seconds
        self._timer.start()
        return False

    def give_up(self) -> None:
        """Stop waiting now (the artist's "Quit now")."""
        self._deadline = 0.0
        self._poll()

    def _poll(self) -> None:
        if self.result is not None:
            return
        if self.engine.is_running() and time.monotonic() < self._deadline:
            return
        self._timer.stop()
        self.result = not self.engine.is_running()
        self.engine.keep_alive()
        self.done.emit(self.result)


def _saved_model_dirs() -> list[str]:
    """The artist's model folders as saved (the window saves settings before each job)."""
    from studio.ui.lora_picker import saved_model_dirs

    try:
        return saved_model_dirs()
    except Exception:  # noqa: BLE001 - unreadable settings: the studio's own LoRA folder still works
        return []


def real_engine_factory(emit):
    warm_engine_imports()  # before the Engine's own imports, which then find everything loaded
    from studio.core.storage.output_folder import KeepingWriter
    from studio.engine.engine import Engine
    from studio.engine.threads import apply_cpu_threads, cpu_threads

    apply_cpu_threads(cpu_threads())  # runs in the engine thread: leave the GUI and other programs a core
    # The output folder the settings name at each save; a failed write keeps the image (UnsavedImage).
    return Engine(KeepingWriter(), emit)


# torch's native libraries, dependencies first. Loading them runs their static initialisers
# (operator registration: 150-450 ms on a 2-core machine).
_TORCH_LIBRARIES = ("libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so",
                    "libtorch_python.so")


# While the imports run, the GUI thread (and the token counter, importing transformers too)
# compete for the GIL with the engine thread: a shorter slice hands it over sooner.
SWITCH_INTERVAL_WARMING = 0.001


def _preload_torch_libraries() -> None:
    """Load torch's shared libraries with the GIL released. `import torch` dlopens them inside
    `from torch._C import *`, one C call that holds the GIL throughout: the GUI thread froze for
    up to 450 ms (studio.dev.bench_stall). A ctypes call into libc's dlopen releases the GIL, so the
    same work runs beside the GUI, and the import later finds the libraries already loaded.
    Best effort: a library that does not load here (another platform, a CUDA library whose
    dependencies torch locates itself) is simply loaded by the import, as before."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import importlib.util

        spec = importlib.util.find_spec("torch")  # finds the folder without importing torch
        if spec is None or spec.origin is None:
            return
        lib = os.path.join(os.path.dirname(spec.origin), "lib")
        libc = ctypes.CDLL(None)
        dlopen = libc.dlopen
        dlopen.restype = ctypes.c_void_p
        dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
        for name in _TORCH_LIBRARIES:
            path = os.path.join(lib, name)
            if os.path.exists(path):
                dlopen(path.encode(), os.RTLD_NOW | os.RTLD_GLOBAL)  # NULL on failure: the import loads it
    except Exception:  # noqa: BLE001 - only a warm-up
        pass


def warm_engine_imports() -> None:
    """Import the engine's libraries in the engine thread without freezing the GUI thread.

    Two things held the GIL for long stretches while torch, diffusers and transformers were
    imported (py-spy --gil, gc.callbacks): torch's native libraries (see above), and full
    garbage collections. Imports create hundreds of thousands of long-lived objects, so each
    generation-2 collection walks a larger heap: 47, 71, 96, 120, 154, 197 ms, one C call each.
    The collector is paused during the imports and what they created is then frozen (moved to
    the permanent generation, which collections skip): module-level objects live as long as the
    process anyway. The model's own objects are created later, with the collector running, so
    a model that is replaced is still collected."""
    _preload_torch_libraries()
    was_enabled = gc.isenabled()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL_WARMING))
    gc.disable()
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401

        # The lazy modules a model load resolves; warm-up only, so a missing one is no error here.
        from diffusers import AutoencoderKL, StableDiffusionPipeline  # noqa: F401
        from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401
    except Exception:  # noqa: BLE001 - the engine's own imports report a broken install
        pass
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
        sys.setswitchinterval(interval)
