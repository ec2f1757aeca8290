"""The engine's one typed event stream. Engine tests collect these in a list; the Qt worker
turns them into signals. Previews and images are owned numpy arrays (H, W, 3) uint8."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import numpy as np

from studio.core.errors import StudioError
from studio.core.request import GenerationRequest


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
class JobStarted:
    request: GenerationRequest


@dataclass(frozen=True)
class StepProgress:
    image_index: int  # which image of the batch
    step: int  # 1-based denoising step within this image
    total: int
    preview: np.ndarray | None  # x0 estimate at latent resolution, RGB uint8
    seconds_per_step: float


@dataclass(frozen=True)
class ImageFinished:
    image_index: int
    request: GenerationRequest  # the single-image request (its own seed)
    path: Path
    image: np.ndarray
    note: str = ""  # something the artist should know about this image (e.g. a VAE retried in fp32)


@dataclass(frozen=True)
class JobFinished:
    request: GenerationRequest
    paths: tuple[Path, ...]
    seconds: float


@dataclass(frozen=True)
class JobCancelled:
    request: GenerationRequest
    paths: tuple[Path, ...]  # images of the batch finished before the cancel


@dataclass(frozen=True)
class JobFailed:
    error: StudioError
    request: GenerationRequest | None = None


Event = Union[
    ModelLoading, ModelLoaded, JobStarted, StepProgress, ImageFinished, JobFinished, JobCancelled, JobFailed
]
EventSink = Callable[[Event], None]
