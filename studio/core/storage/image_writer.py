"""Saving finished images off the critical path: one writer thread with a queue.

PNG encoding takes 130-200 ms for a 1024x1024 image on a modest CPU. Done in the engine's
thread, before the image is shown, it makes a fast GPU wait for the CPU after every image. Here
the decoded image is shown at once and handed to this thread, which writes it with the atomic
OutputWriter (so a crash never leaves a torn file) while the next image denoises.

One thread, first in first out: files get their numbers in the order the images were made, and
two writes never race for a name. A failed write never loses the image: the ImageSaveFailed
event carries the pixels and a plain-language error, so the window can keep the image shown
and offer "Save as…". Results are reported through a callback that runs in the writer thread;
a Qt caller forwards it to the GUI thread with a queued signal.
"""

from __future__ import annotations

import errno
import os
import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from studio.core.errors import ErrorKind, StudioError
from studio.core.events import ImageSaved, ImageSaveFailed
from studio.core.generation.request import GenerationRequest
from studio.core.storage.outputs import OutputFolder, OutputWriter

WriteResult = ImageSaved | ImageSaveFailed
ResultSink = Callable[[WriteResult], None]


@dataclass(frozen=True)
class _Write:
    job_id: str
    index: int
    pixels: np.ndarray
    request: GenerationRequest


_STOP = None  # the queue item that ends the thread


# What each errno means to the artist, and what they can do about it; the strerror stays in the
# message (in brackets) for anyone who searches for it.
_KEPT = "It is still shown: use Save as… to keep it"
_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}  # a quota is a full disk too
_UNWRITABLE_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}


def save_error(exc: BaseException, folder: object) -> StudioError:
    """What a failed write means to the artist, and what to do about it. An OSError (or a
    StudioError raised from one, like output_folder.UnsavedImage) is the disk's doing: kind
    DISK, classified by errno. Anything else is a fault in the studio: INTERNAL."""
    os_error = exc if isinstance(exc, OSError) else exc.__cause__ if isinstance(exc.__cause__, OSError) else None
    if os_error is None:
        reason = str(exc) or type(exc).__name__
        return StudioError(ErrorKind.INTERNAL, f"The image could not be saved to {folder}: {reason}.",
                           f"{_KEPT} elsewhere. This is a fault in the studio; please report it.")
    reason = os_error.strerror or str(os_error) or type(os_error).__name__
    if os_error.errno in _FULL_ERRNOS:
        return StudioError(ErrorKind.DISK, f"The disk is full: the image could not be saved to {folder} ({reason}).",
                           f"{_KEPT} on another disk, then free some space or choose an output folder "
                           "on a disk with room.")
    if os_error.errno in _UNWRITABLE_ERRNOS:
        return StudioError(ErrorKind.DISK, f"The output folder can't be written to: the image could not be saved "
                           f"to {folder} ({reason}).",
                           f"{_KEPT} elsewhere, then choose an output folder you can write to, "
                           "or allow writing to this one.")
    return StudioError(ErrorKind.DISK, f"The image could not be saved to {folder}: {reason}.",
                       f"{_KEPT} elsewhere, then check that the disk is connected and has room, or choose "
                       "another output folder.")


class ImageWriter:
    """Writes images in submission order on one daemon thread, started at the first submit.

    A daemon thread, so a stuck disk can never keep the process alive; `close()` (or
    `flush()`) waits for the queued writes, which is what the app does before it exits."""

    def __init__(self, outputs: OutputWriter | OutputFolder, on_result: ResultSink):
        self.outputs = outputs
        self.on_result = on_result
        self._queue: queue.Queue[_Write | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when `_pending` drops to 0
        self._pending = 0
        self._closed = False

    def submit(self, job_id: str, index: int, pixels: np.ndarray, request: GenerationRequest) -> None:
        """Queue one image (an owned (H, W, 3) uint8 array; it is not copied) and return at once."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the image writer is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="image-writer", daemon=True)
                self._thread.start()
            self._pending += 1
        self._queue.put(_Write(job_id, index, pixels, request))

    @property
    def pending(self) -> int:
        """Images submitted and not yet reported (written or failed)."""
        with self._lock:
            return self._pending

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted image is reported; False when `timeout` ran out first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float | None = 30.0) -> bool:
        """Write what is queued, then end the thread. False when it still runs after `timeout`
        (a hung disk): it is a daemon thread, so it cannot keep the process alive."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return True
        self._queue.put(_STOP)
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        _yield_to_the_engine()
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self._write(item)
            finally:
                with self._idle:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()

    def _write(self, item: _Write) -> None:
        try:
            path, recorded = self.outputs.save(Image.fromarray(item.pixels), item.request)
            result: WriteResult = ImageSaved(item.job_id, item.index, path, recorded)
        except Exception as exc:  # noqa: BLE001 - disk full, read-only folder, a removed drive: reported, never lost
            error = save_error(exc, self.outputs.root)
            result = ImageSaveFailed(item.job_id, item.index, error, item.pixels, item.request)
        try:
            self.on_result(result)
        except Exception:  # noqa: BLE001 - a broken listener must not stop the writes that follow
            pass


# How much lower than the engine the writer runs (Linux niceness, added): where the two share a
# core (a CPU-only machine, hyper-threads), the next image's denoising goes first and the PNG
# fills the gaps; the write still finishes within the next image's time.
WRITER_NICENESS = 10


def _yield_to_the_engine() -> None:
    """Lower this thread's scheduling priority. Linux sets niceness per thread (a thread id is a
    process id to setpriority); elsewhere it would lower the whole process, so nothing is done."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + WRITER_NICENESS))
    except OSError:  # not permitted (a sandbox): the writes just compete as before
        pass

