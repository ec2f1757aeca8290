"""Presets, history, image drops and session autosave, wired into the main window.

Everything here is about getting earlier work back: a saved preset, a past result, the
recipe inside a dropped image, or the unsaved session after a crash.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QDockWidget

from studio.core.atomic import write_bytes_atomic
from studio.core.errors import ErrorKind, StudioError
from studio.core.history import History
from studio.core.metadata import apply_fields, read_metadata
from studio.core.paths import data_home, outputs_dir
from studio.core.presets import PresetStore
from studio.core.session import Session, clear_session, load_session, restore_session_images, save_session
from studio.core.settings import settings_from_request
from studio.ui.drop import dropped_image_paths
from studio.ui.history_panel import HistoryPanel
from studio.ui.preset_bar import PresetBar

AUTOSAVE_DELAY_MS = 800


class Recall(QObject):
    historyRebuilt = Signal()

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.presets = PresetStore()
        self.preset_bar = PresetBar(self.presets, current_settings=self._current_settings)
        self.history = History()
        self.history_panel = HistoryPanel(self.history)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recall-io")
        self._added_while_rebuilding: list | None = None
        # Connected before the rebuild starts: a rebuild that finishes first would emit into nothing.
        self.historyRebuilt.connect(self._history_rebuilt)
        warnings = self.preset_bar.reload() + self._load_history()
        self.history_panel.refresh()
        if warnings:
            window.status_label.setText(" ".join(warnings))

        dock = QDockWidget("History", window)
        dock.setObjectName("historyDock")
        dock.setWidget(self.history_panel)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        window.addDockWidget(window.HISTORY_AREA, dock)
        window.resizeDocks([dock], [250], Qt.Orientation.Horizontal)  # the canvas gets the room
        self.dock = dock

        self.preset_bar.applyRequested.connect(self.apply_preset)
        self.preset_bar.message.connect(window._status)
        self.history_panel.message.connect(window._status)
        self.history_panel.viewRequested.connect(self.view_result)
        self.history_panel.restoreRequested.connect(self.restore_fields)
        window.worker.imageFinished.connect(self._add_to_history)

        self._autosave = QTimer(self)
        self._autosave.setSingleShot(True)
        self._autosave.setInterval(AUTOSAVE_DELAY_MS)
        self._autosave.timeout.connect(self.save_session_now)
        self._canvas_version = 0
        self._saved_canvas_version = -1

    # -- presets and history ----------------------------------------------------------------
    def _load_history(self) -> list[str]:
        """Read the index; when it is missing or damaged, rebuild it from the images' own
        metadata on a background thread (thousands of files must not delay the window)."""
        warnings = self.history.load()
        if self.history.index_path.exists() and not self.history.damaged:
            return warnings
        self._added_while_rebuilding = []
        fresh = History(self.history.index_path)
        self._writer.submit(fresh.rebuild, outputs_dir()).add_done_callback(lambda _: self.historyRebuilt.emit())
        return ["The history index is missing or damaged; rebuilding it from your images…"] if warnings else []

    def _history_rebuilt(self) -> None:
        added, self._added_while_rebuilding = self._added_while_rebuilding or [], None
        self.history.load()
        for path, request in added:  # results that finished while the rebuild ran
            self.history.add(path, request)
        self.history_panel.refresh()

    def _add_to_history(self, event) -> None:
        if self._added_while_rebuilding is not None:
            self._added_while_rebuilding.append((event.path, event.request))
        self.history_panel.add_entry(event.path, event.request)

    def _current_settings(self):
        self.window.panel.store(self.window.settings)
        return self.window.settings

    def _replace_settings(self, settings) -> None:
        self.window.settings = settings
        self.window.panel.load(settings)
        self.window._save_settings()

    def apply_preset(self, preset) -> None:
        self._replace_settings(self.presets.apply(preset, self._current_settings()))
        self.window._status(f"Applied preset “{preset.name}”.")

    def restore_fields(self, fields, what: str) -> None:
        self._replace_settings(apply_fields(self._current_settings(), fields, what))
        self.window._status(f"Restored {'all settings' if what == 'all' else 'the ' + what} from history.")

    def view_result(self, path: str) -> None:
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB")).copy()
        except OSError as exc:
            self.window._status(f"Could not open {path}: {exc}")
            return
        self.window.canvas.show_result(pixels, Path(path))
        self.window.canvas_toolbar.sync()

    # -- a dropped image's recipe ------------------------------------------------------------
    def restore_from_image(self, path: str) -> None:
        """Fill the panels from an image's metadata (ours exactly; A1111, ComfyUI, InvokeAI and
        Fooocus as far as they say). An image without a recipe becomes the input image."""
        metadata = read_metadata(path)
        name = Path(path).name
        if metadata.request is not None:
            request = metadata.request
            self._replace_settings(settings_from_request(self._current_settings(), request))
            source, mask = request.init_image, request.mask
            if source and Path(source).exists():  # img2img/inpaint: the input and mask come back too
                mask_pixels = _gray(mask) if mask and Path(mask).exists() else None
                self.window.canvas.set_document(_rgb(source), f"Restore {name}", mask_pixels)
            self.window._status(f"Restored the exact settings of {name}; Generate makes it again.")
        elif metadata.ok:
            self._replace_settings(apply_fields(self._current_settings(), metadata.fields, "all"))
            extra = f" (not used: {', '.join(sorted(metadata.extras))})" if metadata.extras else ""
            self.window._status(f"Read {metadata.source} settings from {name}{extra}.")
        elif self.window.load_image_file(path):
            self.window._status(f"{name} has no generation settings; it is now the input image.")

    def handle_drop(self, mime) -> bool:
        paths = dropped_image_paths(mime)
        if paths:
            self.restore_from_image(str(paths[0]))
        return bool(paths)

    # -- session autosave --------------------------------------------------------------------
    def watch(self) -> None:
        """Autosave whenever the panel or the canvas changes (debounced)."""
        panel = self.window.panel
        for signal in (panel.prompt.textChanged, panel.negative.textChanged):
            signal.connect(self._autosave.start)
        for spin in (panel.steps, panel.guidance, panel.seed, panel.width_spin, panel.height_spin, panel.batch,
                     panel.strength, panel.mask_blur, panel.padding):
            spin.valueChanged.connect(self._autosave.start)
        for combo in (panel.sampler, panel.mode, panel.inpaint_area, panel.masked_content):
            combo.currentIndexChanged.connect(self._autosave.start)
        self.window.canvas.documentChanged.connect(self._canvas_changed)
        self.window.canvas.undo_stack.listeners.append(self._canvas_changed)

    def _canvas_changed(self) -> None:
        self._canvas_version += 1
        self._autosave.start()

    def save_session_now(self) -> Future:
        """Snapshot the state here; encode and write it on a background thread, so a large
        canvas never stalls the GUI. Writes are atomic, so a crash mid-save loses nothing."""
        canvas = self.window.canvas
        folder = data_home() / "session"
        image_path = mask_path = None
        images: tuple = ()
        if canvas.document is not None:
            image_path, mask_path = folder / "canvas.png", folder / "mask.png"
            if self._saved_canvas_version != self._canvas_version:
                images = ((image_path, canvas.document), (mask_path, canvas.mask.copy()))  # document is never mutated
                self._saved_canvas_version = self._canvas_version
        session = Session(dataclasses.replace(self._current_settings()), _str(image_path), _str(mask_path))
        return self._writer.submit(_write_session, session, images)

    def restore_session(self) -> bool:
        session, warning = load_session()
        if warning:
            self.window._status(warning)
        if session is None:
            return False
        settings = session.settings
        settings.model, settings.device = self.window.settings.model or settings.model, self.window.settings.device
        self.window.settings = settings
        self.window.panel.load(settings)
        # Checked before they reach Qt (a truncated or empty PNG aborted the app in Qt):
        # a damaged image is set aside with a message, and the studio always starts.
        canvas, mask, problems = restore_session_images(session)
        if canvas is not None:
            self.window.canvas.set_document(canvas, "Restore session", mask)
            self.window.canvas.undo_stack.clear()
        if problems:
            self.window.banner.show_error(StudioError(ErrorKind.BAD_INPUT, " ".join(problems),
                                                      "Your settings and prompt were restored."))
        return True

    def end_session(self) -> None:
        """A clean exit: settings.json holds the state; the crash-recovery copy can go."""
        self._autosave.stop()
        self._writer.shutdown(wait=True)
        if self._added_while_rebuilding is not None:  # the rebuild finished after the last event
            self._history_rebuilt()
        clear_session()


def _write_session(session: Session, images: tuple) -> None:
    try:
        for path, pixels in images:
            write_bytes_atomic(path, _png(pixels))
        save_session(session)
    except OSError as exc:  # autosave is best effort; the next change tries again
        logging.getLogger(__name__).warning("could not autosave the session: %s", exc)


def _rgb(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).copy()


def _gray(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L")).copy()


def _png(pixels: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
