"""The engine's one typed event stream. Engine tests collect these in a list; the Qt worker
turns them into signals. Previews and images are owned numpy arrays (H, W, 3) uint8.

Job events carry the id of the job they belong to (`job_id`, "" when the caller gave none), so
a queue can route them: a late event of a cancelled job never lands on the next one. Model
events carry none: a model is shared by the jobs that follow."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studio.core.errors import StudioError
from studio.core.generation.request import GenerationRequest


@dataclass(frozen=True)
class ModelLoading:
    model: str
    device: str
    note: str = ""  # e.g. what will happen given the device's free memory


@dataclass(frozen=True)
class ModelLoaded:
    model: str
    device: str
    dtype: str
    seconds: float


@dataclass(frozen=True)
class ModelFailed:
    """A model could not be loaded (sent by backends; the engine raises instead)."""

    error: StudioError
    model: str = ""


@dataclass(frozen=True)
class JobStarted:
    request: GenerationRequest
    job_id: str = ""


@dataclass(frozen=True)
class StepProgress:
    image_index: int  # which image of the batch
    step: int  # 1-based denoising step within this image
    total: int
    preview: np.ndarray | None  # x0 estimate at latent resolution, RGB uint8
    seconds_per_step: float
    job_id: str = ""
    # False when a newer step of the same job arrived with this one (a GUI that fell behind
    # takes them together): keep its preview, draw only the newest.
    newest: bool = field(default=True, compare=False)


@dataclass(frozen=True)
class ImageFinished:
    image_index: int
    request: GenerationRequest  # the single-image request (its own seed)
    # Where it was saved; None when the engine was asked not to save (the caller writes it:
    # an ImageSaved or ImageSaveFailed with the same job id and index follows).
    path: Path | None
    image: np.ndarray
    note: str = ""  # something the artist should know about this image (e.g. a VAE retried in fp32)
    job_id: str = ""
    # When the image was ready (time.perf_counter(), in the process that decoded it): the
    # bench's "decode to screen" row measures from here.
    made_at: float = field(default_factory=time.perf_counter, compare=False)


@dataclass(frozen=True)
class ImageSaved:
    """An image written by the writer thread (studio.core.storage.image_writer) is on disk."""

    job_id: str
    image_index: int
    path: Path
    request: GenerationRequest  # as recorded in the file (its inputs point at the copies beside it)


@dataclass(frozen=True)
class ImageSaveFailed:
    """The writer thread could not write an image. The pixels travel with the error, so the
    image is never lost: the window keeps it shown and offers "Save as…"."""

    job_id: str
    image_index: int
    error: StudioError
    image: np.ndarray
    request: GenerationRequest


@dataclass(frozen=True)
class JobFinished:
    request: GenerationRequest
    paths: tuple[Path, ...]  # empty when the engine did not save (the writer's ImageSaved events say where)
    seconds: float
    job_id: str = ""


@dataclass(frozen=True)
class JobCancelled:
    request: GenerationRequest
    paths: tuple[Path, ...]  # images of the batch finished before the cancel
    job_id: str = ""


@dataclass(frozen=True)
class JobFailed:
    error: StudioError
    request: GenerationRequest | None = None
    job_id: str = ""


Event = (
    ModelLoading | ModelLoaded | ModelFailed | JobStarted | StepProgress | ImageFinished | JobFinished | JobCancelled
    | JobFailed | ImageSaved | ImageSaveFailed
)
EventSink = Callable[[Event], None]
JOB_EVENTS = (JobStarted, StepProgress, ImageFinished, JobFinished, JobCancelled, JobFailed, ImageSaved, ImageSaveFailed)
JOB_END_EVENTS = (JobFinished, JobCancelled, JobFailed)
