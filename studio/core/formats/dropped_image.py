"""A dropped or opened image, read whole off the GUI thread: its recipe (metadata), the input
image and mask that recipe names, its own pixels, the LoRAs it needs that are missing, and the
installed model it was made with. Nothing of the window changes until all of it is in hand.

Any path an image's metadata or the history names goes through `read_image_file`: only a regular
file (a FIFO or device is refused without blocking), size-capped, fully decoded by Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studio.core.formats.metadata import ImageMetadata, read_metadata
from studio.core.generation.lora_tags import missing_loras
from studio.core.models.model_library import lora_folders, model_folders, model_of_image
from studio.core.storage.session import SessionImageError, read_session_image


def read_image_file(path: str | Path, mode: str = "RGB") -> np.ndarray:
    """An image file's pixels, read as the session's images are (core/session.py): only a
    regular file (a FIFO or device is refused without blocking), size-capped, fully decoded by
    Pillow. Any path a file's metadata or the history names goes through here. Raises
    SessionImageError, whose message starts with the file's name."""
    name = Path(str(path).replace("\0", "")).name[:80] or "The image"
    try:
        return read_session_image(path, mode)
    except SessionImageError as exc:
        raise SessionImageError(f"{name}: {exc}") from exc
    except (OSError, ValueError) as exc:  # a folder: os.fdopen refuses it before the checks run
        raise SessionImageError(f"{name}: it is not a regular file") from exc


@dataclass
class DroppedImage:
    """Everything a dropped image gives back, read and checked off the GUI thread; nothing of
    the window changes until all of it is here."""

    path: str
    metadata: ImageMetadata
    source: np.ndarray | None = None  # a studio image's input image (img2img, inpaint)
    mask: np.ndarray | None = None
    pixels: np.ndarray | None = None  # the image itself, for "Use as input"
    problems: list[str] = field(default_factory=list)  # sentences for the status line
    missing_loras: list[str] = field(default_factory=list)
    model_path: str = ""  # the installed model it was made with, found by path, hash or name
    model_name: str = ""  # the model as the image names it (to say it is not installed)


def read_dropped_image(path: str, model_dirs: list[str] | tuple[str, ...] = ()) -> DroppedImage:
    """Read a dropped image's settings and whatever files they point at. Never raises: a file
    named in the metadata (a damaged or hostile image can name any path) that cannot be read
    as an image is a problem to report, not an exception."""
    metadata = read_metadata(path)
    dropped = DroppedImage(path, metadata)
    request = metadata.request
    if request is not None and request.init_image:
        try:
            dropped.source = read_image_file(request.init_image, "RGB")
            if request.mask:
                dropped.mask = read_image_file(request.mask, "L")
                if dropped.mask.shape != dropped.source.shape[:2]:
                    dropped.mask = None
                    dropped.problems.append("Its mask does not fit its input image and was left out.")
        except SessionImageError as exc:
            dropped.source = dropped.mask = None
            dropped.problems.append(f"Its input image was not restored ({exc}).")
    try:  # read for every image: one with settings may be wanted as the input too
        dropped.pixels = read_image_file(path, "RGB")
    except SessionImageError as exc:
        if request is None and not metadata.ok:
            dropped.problems.append(f"{exc}.")
    prompt = request.prompt if request is not None else metadata.fields.get("prompt", "")
    dropped.missing_loras = _missing_loras(prompt, model_dirs, request.model if request is not None else "")
    if request is not None and request.model and Path(request.model).exists():
        dropped.model_path = request.model  # a studio image made on this machine names its model
    elif request is not None or metadata.ok:
        found, dropped.model_name = model_of_image(metadata, tuple(model_dirs))  # A1111's Model hash, then Model
        dropped.model_path = found.path if found is not None else ""
    return dropped


def _missing_loras(prompt: str, model_dirs, model: str) -> list[str]:
    """LoRAs the prompt names that no LoRA folder holds."""
    if "<" not in prompt:
        return []
    beside_model = [str(Path(model).parent)] if model else []
    try:
        return missing_loras(prompt, lora_folders(model_folders([*model_dirs, *beside_model])))
    except (OSError, ValueError):
        return []
