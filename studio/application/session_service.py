"""The working session, autosaved: the settings, the input image, its mask and the brush size
come back after a crash (or a normal quit) as they were.

The service knows the generation state and a `snapshot` callable the window gives it (the
canvas's document, mask and brush size); it never touches a widget. Saving is debounced, and
the PNGs are encoded and written on a background thread, so a large canvas never stalls the
GUI; writes are atomic, so a crash mid-save loses nothing.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject, QTimer

from studio.application.generation_state import GenerationState
from studio.core.generation.fields import NON_GENERATION_SETTINGS, STYLE_SETTINGS
from studio.core.storage.atomic import write_bytes_atomic
from studio.core.storage.paths import data_home
from studio.core.storage.session import Session, load_session, restore_session_images, save_session

AUTOSAVE_DELAY_MS = 800


@dataclass
class CanvasSnapshot:
    """What the session keeps of the canvas. The document is never mutated in place (the canvas
    replaces it), so holding it is safe; the mask is a copy."""

    document: np.ndarray | None
    mask: np.ndarray | None
    brush_size: int


@dataclass
class RestoredSession:
    """The canvas part of a restored session, for the window; the settings are already in the state."""

    document: np.ndarray | None = None
    mask: np.ndarray | None = None
    brush_size: int = 0
    problems: list[str] = field(default_factory=list)  # images set aside, as sentences
    warning: str | None = None  # the session file itself was damaged and set aside
    found: bool = True  # False: no session to restore (only the warning)


class SessionService(QObject):
    def __init__(self, state: GenerationState, snapshot: Callable[[], CanvasSnapshot],
                 parent: QObject | None = None):
        super().__init__(parent)
        self.state = state
        self.snapshot = snapshot
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="session-io")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(AUTOSAVE_DELAY_MS)
        self._timer.timeout.connect(self.save_now)
        self._canvas_version = 0
        self._saved_canvas_version = -1

    def changed(self) -> None:
        """Something of the session changed: save it soon (edits within the delay save once)."""
        self._timer.start()

    def canvas_changed(self) -> None:
        """The canvas's image or mask changed: the next save writes its PNGs again."""
        self._canvas_version += 1
        self._timer.start()

    @property
    def pending(self) -> bool:
        return self._timer.isActive()

    def save_now(self) -> Future:
        """Snapshot the state here; encode and write on the background thread."""
        canvas = self.snapshot()
        folder = data_home() / "session"
        image_path = mask_path = None
        images: tuple = ()
        if canvas.document is not None:
            image_path, mask_path = folder / "canvas.png", folder / "mask.png"
            if self._saved_canvas_version != self._canvas_version:
                images = ((image_path, canvas.document), (mask_path, canvas.mask))
                self._saved_canvas_version = self._canvas_version
        session = Session(dataclasses.replace(self.state.current()), _str(image_path), _str(mask_path),
                          brush_size=canvas.brush_size)
        return self._writer.submit(_write_session, session, images)

    def restore(self) -> RestoredSession | None:
        """The last session's settings into the state (keeping this run's model and device);
        its canvas, checked before Qt sees it (a truncated or empty PNG aborted the app in Qt),
        for the window. None when there was no session."""
        session, warning = load_session()
        if session is None:
            return RestoredSession(warning=warning, found=False) if warning else None
        settings = session.settings
        current = self.state.settings
        # The session brings back the generation fields; everything else (output folder, model
        # folders, memory, theme, brush...) is settings.json's, which may be newer than the last
        # autosave (a folder chosen just before a crash).
        for name in NON_GENERATION_SETTINGS:
            if name in STYLE_SETTINGS:
                continue  # the style goes with the session's prompt
            setattr(settings, name, getattr(current, name))
        settings.model = current.model or settings.model
        self.state.reload(settings)
        document, mask, problems = restore_session_images(session)
        return RestoredSession(document, mask, session.brush_size, problems, warning)

    def end(self) -> None:
        """A normal quit: the session is saved once more and kept, so the next start brings it
        back as it would after a crash."""
        self._timer.stop()
        try:
            self.save_now()
        except RuntimeError:  # ended before: the writer is already shut down
            pass
        self._writer.shutdown(wait=True)


def _write_session(session: Session, images: tuple) -> None:
    try:
        for path, pixels in images:
            write_bytes_atomic(path, _png(pixels))
        save_session(session)
    except OSError as exc:  # autosave is best effort; the next change tries again
        logging.getLogger(__name__).warning("could not autosave the session: %s", exc)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
