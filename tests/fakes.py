"""A scriptable fake engine with the real interface, for UI tests (krita-ai-diffusion style).

It emits the same typed events as studio.engine.Engine and writes real PNGs, but runs no model.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from studio.core.errors import ErrorKind, StudioError
from studio.core.events import (
    ImageFinished,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobStarted,
    ModelLoaded,
    ModelLoading,
    StepProgress,
)
from studio.core.outputs import OutputWriter


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

    def generate(self, request, cancel: threading.Event):
        self.script.requests.append(request)
        self.script.thread_ids.add(threading.get_ident())
        request = request.validated()
        self.emit(JobStarted(request))
        paths = []
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
                    self.emit(JobCancelled(request, tuple(paths)))
                    return
                if step == self.script.fail_at_step:
                    self.emit(JobFailed(StudioError(ErrorKind.OUT_OF_MEMORY, "The device ran out of memory.", "Try smaller."), request))
                    return
                shade = int(255 * step / request.steps)
                preview = np.full((request.height // 8, request.width // 8, 3), shade, np.uint8)
                self.emit(StepProgress(index, step, request.steps, preview, self.script.step_seconds))
            if self.script.nan_image:
                self.emit(JobFailed(StudioError(ErrorKind.INTERNAL, "The model produced an invalid (NaN) image.",
                                                "The model file may be damaged."), request))
                return
            pixels = np.full((request.height, request.width, 3), (200, 30, 30), np.uint8)
            path, single = self.outputs.save(Image.fromarray(pixels), single)
            paths.append(path)
            self.emit(ImageFinished(index, single, path, pixels))
        self.emit(JobFinished(request, tuple(paths), time.perf_counter() - started))
