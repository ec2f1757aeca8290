"""Turn whatever the engine raised into a StudioError a person can act on."""

from __future__ import annotations

import logging

import torch

from studio.core.errors import ErrorKind, StudioError
from studio.core.generation.request import InvalidRequest

log = logging.getLogger(__name__)
_OOM_MARKERS = ("out of memory", "CUDNN_STATUS_ALLOC_FAILED", "MPS backend out of memory")
# torch's CPU allocator: "DefaultCPUAllocator: can't allocate memory" (Linux, macOS) or
# "... not enough memory" (Windows). Running out of RAM is as recoverable as running out of VRAM.
_CPU_OOM_MARKERS = ("DefaultCPUAllocator", "can't allocate memory", "not enough memory")


class GenerationCancelled(Exception):
    """Raised from the step callback: aborts the denoising loop and skips the VAE decode."""


def is_out_of_memory(exc: BaseException) -> bool:
    """GPU or CPU memory ran out (torch's OOM errors, the CPU allocator's, Python's MemoryError)."""
    if isinstance(exc, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(m.lower() in text for m in _OOM_MARKERS + _CPU_OOM_MARKERS)


def to_studio_error(exc: BaseException) -> StudioError:
    if isinstance(exc, StudioError):
        return exc
    if isinstance(exc, InvalidRequest):
        return StudioError(ErrorKind.BAD_INPUT, str(exc))
    if is_out_of_memory(exc):
        log.warning("Out of memory while generating: %s", exc, exc_info=exc)
        return StudioError(
            ErrorKind.OUT_OF_MEMORY,
            "The device ran out of memory while generating.",
            "Try a smaller size or batch, close other programs using the GPU, or run on the CPU.",
        )
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    log.error("Generation failed: %s", text, exc_info=exc)  # the artist gets one line; the log the traceback
    return StudioError(ErrorKind.INTERNAL, f"Generation failed: {text}", "The studio is still running; try again.")


def free_device_memory() -> None:
    """After an OOM, give cached blocks back so the next job starts clean."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        mps.empty_cache()
