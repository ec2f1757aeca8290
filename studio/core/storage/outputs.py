"""Writing finished images: PNG with A1111 `parameters` plus the full request as JSON.

Every image is on disk before the window shows it, under a name that never overwrites. Writes
are atomic (atomic.py): the companions (copies of the inputs) first, then the PNG to a
temporary file that takes its final name only when complete, so a crash or a full disk never
leaves a 0-byte or truncated image under a final name.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from studio.core.formats.infotext import format_infotext
from studio.core.generation.request import GenerationRequest
from studio.core.storage.atomic import write_bytes_atomic, write_bytes_new

PARAMETERS_KEY = "parameters"  # A1111, read by most tools
REQUEST_KEY = "studio_request"  # our full request, for exact replay
_NUMBERED = re.compile(r"^(\d{5,})-")


def png_bytes(image: Image.Image, request: GenerationRequest) -> bytes:
    info = PngImagePlugin.PngInfo()
    # Pillow writes tEXt when the text is Latin-1 and iTXt otherwise, as A1111 does.
    info.add_text(PARAMETERS_KEY, format_infotext(request))
    info.add_text(REQUEST_KEY, json.dumps(request.to_dict(), ensure_ascii=True))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def read_request(path: Path) -> GenerationRequest | None:
    """The request stored in a studio PNG, or None when the file carries none."""
    with Image.open(path) as image:
        text = image.text.get(REQUEST_KEY) if hasattr(image, "text") else None
    return GenerationRequest.from_dict(json.loads(text)) if text else None


def _companion_paths(path: Path, request: GenerationRequest) -> dict[str, Path]:
    """Where the request's input image and mask are copied beside the result: NAME-init.png,
    NAME-mask.png (so a result can be replayed after its inputs are gone)."""
    return {
        field_name: path.with_name(f"{path.stem}-{suffix}.png")
        for field_name, suffix in (("init_image", "init"), ("mask", "mask"))
        if getattr(request, field_name)
    }


def _write_companions(request: GenerationRequest, targets: dict[str, Path]) -> None:
    """Copy the inputs to `targets`, each atomically; on failure none of them is left."""
    written: list[Path] = []
    try:
        for field_name, target in targets.items():
            buffer = io.BytesIO()
            with Image.open(getattr(request, field_name)) as image:
                image.save(buffer, format="PNG")
            write_bytes_atomic(target, buffer.getvalue())
            written.append(target)
    except BaseException:
        for target in written:
            target.unlink(missing_ok=True)
        raise


class OutputWriter:
    """Saves images as <root>/<YYYY-MM-DD>/<NNNNN>-<seed>.png, never replacing a file."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def save(self, image: Image.Image, request: GenerationRequest) -> tuple[Path, GenerationRequest]:
        """(path, the request as recorded in the file: its inputs point at the copies beside it).
        Raises OSError when the image could not be written; then nothing is left behind."""
        folder = self.root / _dt.date.today().isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        number = self._next_number(folder)
        while True:
            path = folder / f"{number:05d}-{request.seed}.png"
            if os.path.lexists(path):
                number += 1
                continue
            companions = _companion_paths(path, request)
            _write_companions(request, companions)
            recorded = replace(request, **{k: str(v) for k, v in companions.items()}) if companions else request
            try:
                write_bytes_new(path, png_bytes(image, recorded))  # refuses a name taken meanwhile
            except FileExistsError:
                number += 1  # another process took this number between our check and the write
                continue
            except BaseException:
                for companion in companions.values():
                    companion.unlink(missing_ok=True)
                raise
            return path, recorded

    @staticmethod
    def _next_number(folder: Path) -> int:
        highest = 0
        for entry in os.scandir(folder):
            match = _NUMBERED.match(entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
        return highest + 1


def save_input(pixels, folder: Path) -> Path:
    """Write an input image or mask (numpy array) under a content hash: the same input twice
    is one file, and a file is never rewritten while a job may be reading it."""
    array = np.ascontiguousarray(pixels)
    digest = hashlib.sha1(array.tobytes() + str(array.shape).encode()).hexdigest()[:20]
    path = Path(folder) / f"{digest}.png"
    try:
        complete = path.stat().st_size > 0  # a 0-byte file is what a crash left before saves were atomic
    except OSError:
        complete = False
    if not complete:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG", compress_level=1)  # fast: runs on Generate
        write_bytes_atomic(path, buffer.getvalue())
    return path


class OutputFolder:
    """An OutputWriter for a folder that may change between two images (the artist picks another
    output folder while a queue runs): `folder()` is asked at each save."""

    def __init__(self, folder: Callable[[], Path]):
        self.folder = folder

    @property
    def root(self) -> Path:
        return self.folder()

    def save(self, image: Image.Image, request: GenerationRequest) -> tuple[Path, GenerationRequest]:
        return OutputWriter(self.root).save(image, request)
