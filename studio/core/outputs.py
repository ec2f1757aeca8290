"""Writing finished images: PNG with A1111 `parameters` plus the full request as JSON.

Every image is on disk before the window shows it, under a name that never overwrites.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from studio.core.atomic import write_bytes_atomic

from studio.core.infotext import format_infotext
from studio.core.request import GenerationRequest

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


def _companions(path: Path, request: GenerationRequest) -> GenerationRequest:
    """Copy the request's input image and mask beside the result (NAME-init.png, NAME-mask.png)
    and point the request at the copies, so a result can be replayed after its inputs are gone."""
    changes = {}
    for field_name, suffix in (("init_image", "init"), ("mask", "mask")):
        source = getattr(request, field_name)
        if source:
            target = path.with_name(f"{path.stem}-{suffix}.png")
            with Image.open(source) as image:
                image.save(target, format="PNG")
            changes[field_name] = str(target)
    return replace(request, **changes) if changes else request


class OutputWriter:
    """Saves images as <root>/<YYYY-MM-DD>/<NNNNN>-<seed>.png, never replacing a file."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def save(self, image: Image.Image, request: GenerationRequest) -> tuple[Path, GenerationRequest]:
        """(path, the request as recorded in the file: its inputs point at the copies beside it)."""
        folder = self.root / _dt.date.today().isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        number = self._next_number(folder)
        while True:
            path = folder / f"{number:05d}-{request.seed}.png"
            try:
                # 'x' mode: fails rather than overwrite, even if another process raced us.
                handle = open(path, "xb")  # noqa: SIM115
            except FileExistsError:
                number += 1
                continue
            with handle:
                request = _companions(path, request)
                handle.write(png_bytes(image, request))
                handle.flush()
                os.fsync(handle.fileno())
            return path, request

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
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG", compress_level=1)  # fast: runs on Generate
        write_bytes_atomic(path, buffer.getvalue())
    return path
