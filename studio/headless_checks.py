"""`studio generate`'s checks of every path before torch loads (torch alone takes seconds to
import): the model, the VAE, the input image and mask, the LoRA folders and where the images go.
A bad one is said in one line, at once, instead of after loading and generating. Pure: reads
file headers and pixels with Pillow, writes nothing that stays.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from studio.core.errors import ErrorKind, StudioError
from studio.core.generation.request import GenerationRequest
from studio.core.models.model_detect import inspect_model
from studio.core.models.safetensors_header import read_header


def _bad(message: str, hint: str = "") -> StudioError:
    return StudioError(ErrorKind.BAD_INPUT, message, hint)


def check_inputs(request: GenerationRequest, lora_dirs: list[Path]) -> None:
    """Raise StudioError for the first input the run could not use."""
    inspect_model(request.model)  # what the engine checks first, from the file's header
    if request.vae:
        check_vae(Path(request.vae))
    for part in request.text_encoder_paths:
        if not Path(part).is_file():
            raise _bad(f"No file at {part} (--text-encoder).")
    if request.init_image:
        _check_image(Path(request.init_image), "--init-image")
    if request.mask:
        mask = _check_image(Path(request.mask), "--mask")
        if not (np.asarray(mask.convert("L")) > 127).any():
            raise _bad(f"The mask {Path(request.mask).name} is empty (all black).",
                       "White marks the part to paint again.")
    for folder in lora_dirs:
        if not folder.expanduser().is_dir():
            raise _bad(f"No folder at {folder} (--lora-dir).")


def check_vae(path: Path) -> None:
    if path.suffix.lower() != ".safetensors":
        raise StudioError(ErrorKind.BAD_MODEL, f"{path.name} is not a .safetensors VAE; the studio reads only "
                                               ".safetensors files.")
    header = read_header(path)  # a missing or damaged file is said here
    if header.has_prefix("model.diffusion_model."):
        raise StudioError(ErrorKind.BAD_MODEL, f"{path.name} is a whole checkpoint, not a VAE.",
                          "Pass it as --model instead.")


def _check_image(path: Path, flag: str) -> Image.Image:
    if not path.is_file():
        raise _bad(f"No image file at {path} ({flag}).")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _bad(f"{path.name} is not an image the studio can read ({flag}): {exc}") from exc


def check_out(paths: list[Path], overwrite: bool) -> None:
    """--out and the batch's other files: PNG names, in a folder that can be written, not folders,
    and (without `overwrite`) not there yet."""
    first = paths[0]
    if first.is_dir():
        raise _bad(f"--out {first} is a folder; give a file name, e.g. {first / 'image.png'}.")
    if first.suffix.lower() != ".png":
        raise _bad(f"--out {first} must name a .png file (the studio writes PNG with its settings inside).")
    taken = []
    for path in paths:
        if path.is_dir():
            raise _bad(f"--out {path} is a folder; give a file name, e.g. {path / 'image.png'}.")
        if path.exists():
            if not os.access(path, os.W_OK):
                raise _bad(f"{path} cannot be replaced: it is read-only.")
            taken.append(path)
    if taken and not overwrite:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise _bad(f"{taken[0]}{more} already exists; pass --overwrite to replace it, or choose another --out.")
    check_writable_folder(first.parent, "--out")


def check_writable_folder(folder: Path, what: str) -> None:
    """The folder (or, when it is not there yet, the nearest folder above it, where it would be
    made) takes a new file: tried with a temporary file, since permission bits do not tell (a
    read-only mount, /proc)."""
    folder = folder.expanduser().absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise _bad(f"{what}: {existing} is a file, so no folder can be made inside it.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _bad(f"{what}: cannot write in {existing} ({reason}).", "Choose a folder you can write to.") from exc
