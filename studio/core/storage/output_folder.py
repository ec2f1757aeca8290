"""The folder finished images go to: the artist's choice (settings.outputs_dir) or the default,
checked before it is needed, and a writer that never loses an image it could not save.

A read-only or full data folder used to surface only after a whole run ("Operation not
permitted") with the image gone. `check_output_folder` finds that at start and before each
job; `KeepingWriter` turns a write that still fails into `UnsavedImage`, a StudioError that
carries the decoded pixels to the window (the engine passes StudioErrors through unchanged),
which keeps them on the canvas with "Save as…".
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from studio.core.errors import ErrorKind, StudioError
from studio.core.generation.request import GenerationRequest
from studio.core.storage.outputs import OutputWriter
from studio.core.storage.paths import outputs_dir

# Below this much free space a PNG (a few MB at 2048x2048) and its input copies may not fit.
MIN_FREE_BYTES = 64 * 1024 * 1024
FOLDER_HINT = "Choose another output folder (the button here), or free space / fix the permissions of this one."


def output_folder(chosen: str = "") -> Path:
    """Where images are written: `chosen` (settings.outputs_dir) or, for "", the default
    outputs folder under the data folder."""
    return Path(chosen).expanduser() if chosen.strip() else outputs_dir()


def check_output_folder(folder: Path, min_free: int = MIN_FREE_BYTES) -> StudioError | None:
    """None when images can be written to `folder` (created if missing); otherwise an error in
    plain words. Writes and removes a small probe file: permissions alone do not tell (root,
    read-only mounts, ACLs)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        try:
            os.write(handle, b"ok")
        finally:
            os.close(handle)
            os.unlink(probe)
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return StudioError(ErrorKind.BAD_INPUT, f"Images cannot be saved in {folder}: {reason}.", FOLDER_HINT)
    if free < min_free:
        return StudioError(ErrorKind.BAD_INPUT,
                           f"The disk holding {folder} is almost full ({free // (1024 * 1024)} MB free).", FOLDER_HINT)
    return None


class UnsavedImage(StudioError):
    """A finished image whose file could not be written: the pixels travel with the error."""

    def __init__(self, message: str, hint: str, image: np.ndarray, request: GenerationRequest,
                 kind: ErrorKind = ErrorKind.DISK):
        super().__init__(kind, message, hint)
        self.image = image
        self.request = request


def saved_output_folder() -> Path:
    """The output folder as settings.json names it now (the window saves the settings before
    each job, so a folder chosen a moment ago is used by the next image)."""
    from studio.core.generation.settings import load_settings
    from studio.core.storage.paths import settings_file

    try:
        chosen = load_settings(settings_file())[0].outputs_dir if settings_file().exists() else ""
    except Exception:  # noqa: BLE001 - unreadable settings: the default folder
        chosen = ""
    return output_folder(chosen)


class KeepingWriter:
    """OutputWriter for `root`, or, without one, for the folder the settings name at each save;
    a failed write raises UnsavedImage holding the image."""

    def __init__(self, root: Path | None = None):
        self.fixed_root = Path(root) if root is not None else None

    @property
    def root(self) -> Path:
        return self.fixed_root if self.fixed_root is not None else saved_output_folder()

    def save(self, image: Image.Image, request: GenerationRequest) -> tuple[Path, GenerationRequest]:
        root = self.root
        try:
            return OutputWriter(root).save(image, request)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UnsavedImage(f"The image could not be saved in {root}: {reason}.",
                               "It is kept on the canvas: use “Save as…”, or choose another output folder.",
                               np.asarray(image.convert("RGB")).copy(), request) from exc
