"""Presets, history, image drops and session autosave, wired into the main window.

Everything here is about getting earlier work back: a saved preset, a past result, the
recipe inside a dropped image, or the unsaved session after a crash.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import QDockWidget, QMenu

from studio.core.atomic import write_bytes_atomic
from studio.core.errors import ErrorKind, StudioError
from studio.core.history import History
from studio.core.metadata import ImageMetadata, apply_fields, read_metadata
from studio.core.model_library import model_of_image
from studio.core.output_folder import output_folder
from studio.core.paths import data_home
from studio.core.presets import PresetStore
from studio.core.session import (
    Session,
    SessionImageError,
    load_session,
    read_session_image,
    restore_session_images,
    save_session,
)
from studio.core.settings import settings_from_request
from studio.ui.drop import dropped_image_paths
from studio.ui.history_panel import HistoryPanel
from studio.ui.preset_bar import PresetBar

AUTOSAVE_DELAY_MS = 800
# What a dropped or opened image with settings is for; the artist picks (ask_drop_action).
DROP_CHOICES = (("Restore settings", "settings"), ("Use as input", "input"),
                ("Both: restore settings and use as input", "both"))


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
    """LoRAs the prompt names that no LoRA folder holds ([] when the LoRA module is not there)."""
    if "<" not in prompt:
        return []
    try:
        from studio.core.lora_tags import missing_loras
        from studio.core.model_library import lora_folders, model_folders
    except ImportError:  # pragma: no cover - the LoRA module ships separately
        return []
    beside_model = [str(Path(model).parent)] if model else []
    try:
        return missing_loras(prompt, lora_folders(model_folders([*model_dirs, *beside_model])))
    except (OSError, ValueError):
        return []


class _Finished(QObject):
    """Carries "the background read is done" to the GUI thread (a queued signal)."""

    done = Signal()


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
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recall-read")
        self._reading = False
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
        # The controller adds each image to this history once it is on disk; the panel shows it.
        window.controller.history = self.history
        window.controller.historyAdded.connect(self._history_added)
        window.controller.imageSaved.connect(self._image_saved)

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
        folder = output_folder(self.window.settings.outputs_dir)
        self._writer.submit(fresh.rebuild, folder).add_done_callback(lambda _: self.historyRebuilt.emit())
        return ["The history index is missing or damaged; rebuilding it from your images…"] if warnings else []

    def _history_rebuilt(self) -> None:
        added, self._added_while_rebuilding = self._added_while_rebuilding or [], None
        self.history.load()
        for path, request in added:  # results that finished while the rebuild ran
            self.history.add(path, request)
        self.history_panel.refresh()

    def _image_saved(self, event) -> None:
        """Kept while the index is rebuilt: the rebuilt index replaces the one it was added to."""
        if self._added_while_rebuilding is not None:
            self._added_while_rebuilding.append((event.path, event.request))

    def _history_added(self, _entry) -> None:
        self.history_panel.refresh()

    def _current_settings(self):
        self.window.panel.store(self.window.settings)
        return self.window.settings

    def _replace_settings(self, settings) -> str:
        """Put `settings` in the panel; returns what to say about the seed: a restored seed
        turns Random off, which must be visible (or every later run silently reuses it)."""
        before = self.window.settings
        self.window.settings = settings
        self.window.panel.load(settings)
        self.window._save_settings()
        if settings.random_seed or (not before.random_seed and before.seed == settings.seed):
            return ""
        self.window.panel.show_restored_seed()
        return f" Seed {settings.seed} restored: Random is off."

    def apply_preset(self, preset) -> None:
        seed = self._replace_settings(self.presets.apply(preset, self._current_settings()))
        self.window._status(f"Applied preset “{preset.name}”.{seed}")

    def restore_fields(self, fields, what: str) -> None:
        seed = self._replace_settings(apply_fields(self._current_settings(), fields, what))
        self.window._status(f"Restored {'all settings' if what == 'all' else 'the ' + what} from history.{seed}")

    def view_result(self, path: str) -> None:
        try:  # a history entry can name any path (a FIFO, a device): only regular image files open
            pixels = self._off_gui_thread(read_image_file, path, "RGB")
        except SessionImageError as exc:
            self.window._status(f"Could not open the result: {exc}.")
            return
        self.window.canvas.show_result(pixels, Path(path))
        self.window.canvas_toolbar.sync()

    # -- a dropped image's recipe ------------------------------------------------------------
    def _off_gui_thread(self, function, *args):
        """`function(*args)` run on the reader thread while the window keeps painting (input
        waits until it is done); returns its result or raises its exception. The files it
        reads are size-capped and never block (read_image_file), so the wait is short."""
        future = self._reader.submit(function, *args)
        if not future.done():
            loop = QEventLoop()
            relay = _Finished()
            relay.done.connect(loop.quit)
            future.add_done_callback(lambda _: relay.done.emit())  # queued to this thread
            if not future.done():
                loop.exec(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
        return future.result()

    def ask_drop_action(self, name: str) -> str | None:
        """Ask what an image with settings is for: "settings", "input" or "both" (None: the
        artist closed the menu). A small menu at the pointer, as file managers ask on a drop."""
        menu = QMenu(self.window)
        menu.setObjectName("dropMenu")
        menu.addSection(name[:60])
        for label, choice in DROP_CHOICES:
            menu.addAction(label).setData(choice)
        chosen = menu.exec(QCursor.pos())
        menu.deleteLater()
        return chosen.data() if chosen is not None else None

    def restore_from_image(self, path: str) -> None:
        """Fill the panels from an image's metadata (ours exactly; A1111, ComfyUI, InvokeAI and
        Fooocus as far as they say) and/or use the image as the input, as the artist chooses;
        an image without a recipe becomes the input image.

        The image, and the input image and mask its settings name, are read and checked on the
        reader thread first; the settings are replaced only once all of it is in hand."""
        if self._reading:
            self.window._status("Still reading the previous image…")
            return
        self._reading = True
        try:
            dropped = self._off_gui_thread(read_dropped_image, path, list(self.window.settings.model_dirs))
        finally:
            self._reading = False
        self._apply_dropped(dropped)

    def _apply_dropped(self, dropped: DroppedImage) -> None:
        metadata, name = dropped.metadata, Path(dropped.path).name
        notes = list(dropped.problems)
        has_settings = metadata.request is not None or metadata.ok
        if not has_settings:
            if dropped.pixels is None:
                self.window.banner.show_error(StudioError(ErrorKind.BAD_INPUT, f"Could not open {name}: {' '.join(notes)}",
                                                          "Open a PNG, JPEG or WebP image."))
                return
            self.window.set_input_image(dropped.pixels, f"Open {name}")
            text = f"{name} has no generation settings; it is now the input image (Image to image)."
            self.window._status(" ".join([text, *notes]))
            return
        choice = self.ask_drop_action(name) if dropped.pixels is not None else "settings"
        if choice not in ("settings", "input", "both"):
            self.window._status(f"Nothing was taken from {name}.")
            return
        texts: list[str] = []
        if choice in ("settings", "both"):
            if dropped.missing_loras:
                notes.append(f"LoRAs not found: {', '.join(dropped.missing_loras)} (put them in a LoRA folder; "
                             "without them the picture comes out different).")
            notes.extend(self._select_model(dropped))
            if metadata.request is not None:
                seed = self._replace_settings(settings_from_request(self._current_settings(), metadata.request))
                if dropped.source is not None and choice == "settings":  # img2img/inpaint: the input and mask too
                    self.window.canvas.set_document(dropped.source, f"Restore {name}", dropped.mask)
                texts.append(f"Restored the exact settings of {name}; Generate makes it again.{seed}")
            else:
                seed = self._replace_settings(apply_fields(self._current_settings(), metadata.fields, "all"))
                extra = f" (not used: {', '.join(sorted(metadata.extras))})" if metadata.extras else ""
                texts.append(f"Read {metadata.source} settings from {name}{extra}.{seed}")
        if choice in ("input", "both"):
            self.window.set_input_image(dropped.pixels, f"Open {name}")
            texts.append(f"{name} is now the input image (Image to image).")
        self.window._status(" ".join([*texts, *notes]))

    def _select_model(self, dropped: DroppedImage) -> list[str]:
        """Switch to the model the image was made with when it is installed; say so when not."""
        current = self.window.model_path()
        if dropped.model_path:
            if Path(dropped.model_path).resolve() != Path(current).expanduser().resolve():
                self.window.set_model(dropped.model_path)
                return [f"Switched to its model, {Path(dropped.model_path).stem}."]
            return []
        if dropped.model_name:
            return [f"It was made with {dropped.model_name}, which is not in your model library; "
                    f"the current model ({Path(current).stem or 'none'}) stays."]
        return []

    def handle_drop(self, mime) -> bool:
        """A drop anywhere on the window, Open… and `studio FILE` all come here."""
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
                     panel.strength, panel.mask_blur, panel.padding, panel.clip_skip, panel.hires_scale,
                     panel.hires_steps, panel.hires_denoise, panel.variation_seed, panel.variation_strength,
                     panel.seed_resize_width, panel.seed_resize_height):
            spin.valueChanged.connect(self._autosave.start)
        for combo in (panel.sampler, panel.mode, panel.inpaint_area, panel.masked_content, panel.hires_upscaler):
            combo.currentIndexChanged.connect(self._autosave.start)
        for group in (panel.hires_group, panel.variation_group):
            group.toggled.connect(self._autosave.start)
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
        session = Session(dataclasses.replace(self._current_settings()), _str(image_path), _str(mask_path),
                          brush_size=canvas.brush.size)
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
        if session.brush_size:
            self.window.canvas.set_brush(size=session.brush_size)
        if problems:
            self.window.banner.show_error(StudioError(ErrorKind.BAD_INPUT, " ".join(problems),
                                                      "Your settings and prompt were restored."))
        return True

    def end_session(self) -> None:
        """A normal quit: the session (input image, mask, brush) is saved once more and kept,
        so the next start brings it back as it would after a crash."""
        self._autosave.stop()
        self._reader.shutdown(wait=False, cancel_futures=True)
        try:
            self.save_session_now()
        except RuntimeError:  # closed before: the writer is already shut down
            pass
        self._writer.shutdown(wait=True)
        if self._added_while_rebuilding is not None:  # the rebuild finished after the last event
            self._history_rebuilt()


def _write_session(session: Session, images: tuple) -> None:
    try:
        for path, pixels in images:
            write_bytes_atomic(path, _png(pixels))
        save_session(session)
    except OSError as exc:  # autosave is best effort; the next change tries again
        logging.getLogger(__name__).warning("could not autosave the session: %s", exc)


def _png(pixels: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
