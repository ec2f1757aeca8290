"""The working session (prompt, settings, canvas and mask paths, brush size) for the next start.

The window saves it as things change (debouncing is the UI's job) and once more when it closes;
after a crash or a normal quit `load_session` brings it back. Saves are atomic; a damaged file is set aside and never fatal.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from studio.core.generation.settings import MAX_SETTINGS_BYTES, Settings, settings_from_dict
from studio.core.storage.atomic import clean_stale_temp_files, set_aside, write_text_atomic
from studio.core.storage.jsonfile import read_json_object
from studio.core.storage.paths import data_home

SESSION_FORMAT = 1
# The canvas and mask the session restores: PNGs the autosave wrote, but they may be truncated,
# empty, replaced or huge by the time the studio starts; anything outside these limits is set aside.
MAX_SESSION_IMAGE_BYTES = 512 * 1024 * 1024
MAX_SESSION_IMAGE_SIDE = 16384
MAX_SESSION_IMAGE_PIXELS = 64 * 1024 * 1024
MAX_BRUSH_SIZE = 1024  # the canvas's largest brush (ui/canvas.py MAX_BRUSH)


def session_file() -> Path:
    return data_home() / "session.json"


def session_images_dir() -> Path:
    """Where the autosave keeps the canvas and mask PNGs."""
    return data_home() / "session"


@dataclass
class Session:
    settings: Settings = field(default_factory=Settings)
    canvas_image: str | None = None  # path of the image on the canvas (img2img / inpaint source)
    mask: str | None = None  # path of the painted mask
    saved_at: float = 0.0
    brush_size: int = 0  # the mask brush's size in image pixels; 0 = the canvas's default for the image


def save_session(session: Session, path: Path | None = None) -> None:
    data = {
        "format": SESSION_FORMAT,
        "saved_at": time.time(),
        "settings": dataclasses.asdict(session.settings),
        "canvas_image": session.canvas_image,
        "mask": session.mask,
        "brush_size": session.brush_size,
    }
    write_text_atomic(path or session_file(), json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _settings_from(data: Any) -> Settings:
    """Validated as load_settings does: known fields of the right type, numbers clamped into
    range, unknown names replaced by defaults. (The device comes from the settings file, so
    its message is not repeated here.)"""
    return settings_from_dict(data)[0]


def load_session(path: Path | None = None) -> tuple[Session | None, str | None]:
    """(session, warning). None when there is no saved session or it could not be read."""
    path = path or session_file()
    if not path.exists():
        return None, None
    try:
        data = read_json_object(path, MAX_SETTINGS_BYTES + 10_000)
        if data is None:
            raise ValueError("the file is damaged, too large or not a JSON object")
        version = data.get("format", SESSION_FORMAT)
        if not isinstance(version, int) or isinstance(version, bool) or version > SESSION_FORMAT:
            raise ValueError(f"unsupported format {version!r}")
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        try:
            aside = set_aside(path, f"{path.name}.unreadable-{int(time.time())}")
        except OSError:
            aside = path
        return None, f"The last session could not be restored ({exc}). The old file is at {aside}."
    paths = {k: data.get(k) if isinstance(data.get(k), str) else None for k in ("canvas_image", "mask")}
    saved_at = data.get("saved_at")
    saved_at = float(saved_at) if type(saved_at) is float or (type(saved_at) is int and abs(saved_at) < 2**53) else 0.0
    brush = data.get("brush_size")
    brush = min(max(brush, 0), MAX_BRUSH_SIZE) if type(brush) is int else 0
    return Session(_settings_from(data.get("settings")), paths["canvas_image"], paths["mask"], saved_at, brush), None


def clear_session(path: Path | None = None) -> None:
    """Forget the session (e.g. after the user chose not to restore it)."""
    (path or session_file()).unlink(missing_ok=True)


class SessionImageError(ValueError):
    """A session image that cannot be restored; the message says why, in plain words."""


def read_session_image(path: str | Path, mode: str) -> np.ndarray:
    """The image at `path` as an owned uint8 array in `mode` ("RGB" or "L"), checked before it
    can reach Qt: a regular file (a FIFO is refused without blocking), at most
    MAX_SESSION_IMAGE_BYTES, a complete image Pillow decodes, within the size limits.
    Raises SessionImageError otherwise."""
    try:
        # O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError) as exc:
        raise SessionImageError(f"it cannot be opened ({exc.strerror if isinstance(exc, OSError) else exc})") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # before fdopen, which raises IsADirectoryError for a folder
        os.close(fd)
        raise SessionImageError("it is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size == 0:
            raise SessionImageError("it is empty")
        if info.st_size > MAX_SESSION_IMAGE_BYTES:
            raise SessionImageError("it is too large")
        try:
            with Image.open(handle) as image:
                width, height = image.size
                if not (0 < width <= MAX_SESSION_IMAGE_SIDE and 0 < height <= MAX_SESSION_IMAGE_SIDE) \
                        or width * height > MAX_SESSION_IMAGE_PIXELS:
                    raise SessionImageError(f"its size {width}×{height} is out of range")
                image.verify()  # checksums and structure; the image is unusable afterwards
            handle.seek(0)
            with Image.open(handle) as image:
                image.load()  # a truncated file fails here, in Pillow, not later in Qt
                pixels = np.array(image.convert(mode), dtype=np.uint8)
        except SessionImageError:
            raise
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, MemoryError,
                Image.DecompressionBombError) as exc:
            raise SessionImageError(f"it is not a complete image ({str(exc)[:200] or type(exc).__name__})") from exc
    expected = (height, width) if mode == "L" else (height, width, 3)
    if pixels.shape != expected:
        raise SessionImageError("it decoded to an unexpected shape")
    return pixels


def restore_session_images(session: Session) -> tuple[np.ndarray | None, np.ndarray | None, list[str]]:
    """(canvas pixels, mask pixels, warnings) for a loaded session. A missing image is simply
    not restored; a damaged one is set aside as `<file>.unreadable-<time>` with a message; a
    mask that does not fit the canvas is dropped. Never raises for anything in the files."""
    clean_stale_temp_files(session_images_dir())  # autosaves killed mid-write (startup_cleanup's folders lack it)
    warnings: list[str] = []
    canvas = mask = None
    if session.canvas_image and os.path.lexists(session.canvas_image):
        canvas = _image_or_warning(session.canvas_image, "RGB", "canvas image", warnings)
    if canvas is not None and session.mask and os.path.lexists(session.mask):
        mask = _image_or_warning(session.mask, "L", "mask", warnings)
        if mask is not None and mask.shape != canvas.shape[:2]:
            warnings.append("The last session's mask does not fit its canvas image; the mask was not restored.")
            mask = None
    return canvas, mask, warnings


def _image_or_warning(path: str, mode: str, what: str, warnings: list[str]) -> np.ndarray | None:
    try:
        return read_session_image(path, mode)
    except SessionImageError as exc:
        aside = _set_aside(Path(path))
        where = f" It was moved to {aside}." if aside != Path(path) else ""
        warnings.append(f"The last session's {what} could not be restored: {exc}.{where}")
        return None


def _set_aside(path: Path) -> Path:
    """Only a regular file the studio wrote in its own session folder is renamed; a path the
    session file pointed anywhere else is left alone."""
    try:
        if path.parent.resolve() != session_images_dir().resolve() or not path.is_file() or path.is_symlink():
            return path
        return set_aside(path, f"{path.name}.unreadable-{int(time.time())}")
    except OSError:
        return path
