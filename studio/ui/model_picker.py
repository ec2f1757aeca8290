"""The model toolbar's pickers: every checkpoint and VAE in the artist's library, and the memory
options, as A1111's checkpoint dropdown, Forge's VAE selector and its low-VRAM switches offer them.

The library is scanned in a plain Python thread: it reads only file headers, but an A1111 folder
of two hundred checkpoints on a network drive still takes seconds. The result comes back through
a signal of a QObject that lives in the GUI thread, connected to its bound method, so it is
handled there (DESIGN.md's thread rule); the combos are only ever touched in the GUI thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QComboBox, QFileDialog, QMenu, QToolButton, QWidget

from studio.core.errors import ErrorKind, StudioError
from studio.core.generation.settings import Settings
from studio.core.models.model_detect import inspect_model
from studio.core.models.model_library import LibraryModel, model_folders, scan_models, scan_vaes, vae_folders
from studio.core.storage.paths import demo_model_dir

SCAN_THREAD_NAME = "model-library-scan"
CHOOSE_FILE, ADD_FOLDER, RESCAN = "choose-file", "add-folder", "rescan"
PATH_ROLE = Qt.ItemDataRole.UserRole
ACTION_ROLE = Qt.ItemDataRole.UserRole + 1
# model_index.json stands for its diffusers folder: one dialog picks either, native dialogs too.
MODEL_FILTER = "Stable Diffusion models (*.safetensors model_index.json);;All files (*)"
MAX_SKIPPED_SHOWN = 20
# Where A1111/Forge and ComfyUI keep checkpoints, below the folder an artist is likely to pick.
_KNOWN_MODEL_SUBDIRS = (("models", "Stable-diffusion"), ("models", "checkpoints"))


@dataclass(frozen=True)
class Library:
    """One scan's result: what the pickers list."""

    folders: tuple[Path, ...] = ()
    models: tuple[LibraryModel, ...] = ()
    vaes: tuple[Path, ...] = ()
    skipped: tuple[str, ...] = ()  # one line per file that is not a model, and why
    scanned: bool = False  # False until the first scan has come back


def scan_library(extra_dirs: tuple[str, ...]) -> Library:
    """Scan the studio's model folder and the artist's (never raises: model_library doesn't)."""
    folders = model_folders(list(extra_dirs))
    models, skipped = scan_models(folders)
    vaes = scan_vaes(vae_folders(folders))
    return Library(tuple(folders), tuple(models), tuple(vaes), tuple(skipped), scanned=True)


def model_folder_in(folder: str) -> str:
    """The checkpoint folder inside an A1111/Forge or ComfyUI install when the artist picked the
    install itself: its VAE folder is then found beside it, as in the install."""
    for parts in _KNOWN_MODEL_SUBDIRS:
        candidate = Path(folder).joinpath(*parts)
        if candidate.is_dir():
            return str(candidate)
    return folder


def same_path(a: str, b: str) -> bool:
    return bool(a) and bool(b) and _key(a) == _key(b)


def _key(path: str) -> str:
    return os.path.normcase(os.path.realpath(os.path.expanduser(path)))


def memory_options(settings: Settings) -> dict:
    """The settings' memory options, as the engine's MemoryOptions takes them."""
    return {"attention_slicing": settings.attention_slicing, "vae_tiling": settings.vae_tiling,
            "cpu_offload": settings.cpu_offload}


class LibraryScanner(QObject):
    """Runs scan_library in a Python thread and hands the newest result to the GUI thread."""

    scanned = Signal(object)  # Library, emitted in the GUI thread
    _finished = Signal(int, object)  # (scan number, Library), emitted in the scan thread

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._number = 0  # of the newest scan asked for
        self._delivered = 0  # of the newest scan whose result the GUI thread has
        self._thread: threading.Thread | None = None
        # A bound method of an object living in the GUI thread: Qt queues the call there.
        self._finished.connect(self._deliver)

    def scan(self, extra_dirs: list[str]) -> None:
        self._number += 1
        self._thread = threading.Thread(
            target=self._run, args=(self._number, tuple(extra_dirs)), name=SCAN_THREAD_NAME, daemon=True
        )
        self._thread.start()

    def busy(self) -> bool:
        """True until the newest scan's result has reached the GUI thread (its thread may
        still be winding down when it has)."""
        return self._delivered != self._number

    def _run(self, number: int, extra_dirs: tuple[str, ...]) -> None:
        try:
            library = scan_library(extra_dirs)
        except Exception as exc:  # noqa: BLE001 - a dead scan would leave the picker waiting forever
            library = Library(skipped=(f"The model folders could not be scanned: {exc}",), scanned=True)
        try:
            self._finished.emit(number, library)
        except RuntimeError:  # the window closed mid-scan and took this object with it
            pass

    @Slot(int, object)
    def _deliver(self, number: int, library: Library) -> None:
        if number == self._number:  # an older scan finishing late must not undo a newer one
            self._delivered = number
            self.scanned.emit(library)


class ModelPicker(QObject):
    """The model and VAE combos. A model choice goes out as `modelChosen` (the window loads it
    and remembers it once it loaded); the VAE choice and added folders go straight into the
    settings, read through `settings()` because the window replaces its Settings object."""

    modelChosen = Signal(str)
    message = Signal(str)  # for the status line
    problem = Signal(object)  # a StudioError for the banner: it must outlast the status line's next news

    def __init__(self, settings: Callable[[], Settings], save: Callable[[], None], parent: QWidget):
        super().__init__(parent)
        self._settings = settings
        self._save = save
        self._parent = parent
        self.library = Library()
        self.current = ""
        self._descriptions: dict[str, str] = {}
        self._announce = False

        self.model_combo = QComboBox()
        self.model_combo.setObjectName("modelCombo")
        self.model_combo.setAccessibleName("Model")
        self.model_combo.setPlaceholderText("Choose a model…")
        self.model_combo.setMinimumContentsLength(44)
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.vae_combo = QComboBox()
        self.vae_combo.setObjectName("vaeCombo")
        self.vae_combo.setAccessibleName("VAE")
        self.vae_combo.setMinimumContentsLength(24)
        self.vae_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.vae_combo.setToolTip("The VAE that turns latents into pixels. Automatic: the checkpoint's own.")

        self.scanner = LibraryScanner(self)
        self.scanner.scanned.connect(self._scanned)
        self.model_combo.activated.connect(self._model_activated)  # user choices only
        self.vae_combo.activated.connect(self._vae_activated)
        self._fill_models()
        self._fill_vaes()

    # -- scanning -------------------------------------------------------------------------
    def rescan(self, announce: bool = False) -> None:
        """Scan the folders again in the background; `announce` says the result in the status line."""
        self._announce = self._announce or announce
        self.scanner.scan(self._settings().model_dirs)
        self._fill_models()  # the Rescan entry now says a scan is running

    @Slot(object)
    def _scanned(self, library: Library) -> None:
        self.library = library
        self._fill_models()
        self._fill_vaes()
        if self._announce:
            self._announce = False
            self.message.emit(self.summary())

    def summary(self) -> str:
        library = self.library
        found = f"{len(library.models)} model{'s' if len(library.models) != 1 else ''}"
        vaes, folders = len(library.vaes), len(library.folders)
        text = f"Found {found} and {vaes} VAE{'s' if vaes != 1 else ''} in {folders} model folder{'s' if folders != 1 else ''}."
        if library.skipped:
            text += f" {len(library.skipped)} file(s) skipped (hover “Rescan model folders” to see why)."
        return text

    # -- the model combo ------------------------------------------------------------------
    def show_current(self, path: str) -> None:
        """Select the model in use; one outside the library gets an entry of its own."""
        self.current = path
        self._fill_models()

    def _fill_models(self) -> None:
        combo = self.model_combo
        combo.clear()
        current = self.current
        listed = False
        demo = demo_model_dir()
        if (demo / "model_index.json").is_file():  # the bundled model is always a choice
            self._add_model(self._describe(str(demo)), str(demo))
            listed = same_path(str(demo), current)
        for model in self.library.models:
            if same_path(model.path, str(demo)):
                continue
            self._add_model(model.display, model.path)
            listed = listed or same_path(model.path, current)
        if current and not listed:  # the demo model, a file chosen directly, a library not yet scanned
            combo.insertItem(0, self._describe(current), current)
            combo.setItemData(0, current, Qt.ItemDataRole.ToolTipRole)
        if self.library.scanned and not self.library.models:
            combo.addItem("No models in your model folders yet")
            empty = combo.count() - 1
            combo.model().item(empty).setEnabled(False)
            folders = "\n".join(str(f) for f in self.library.folders)
            combo.setItemData(empty, f"Put .safetensors checkpoints in:\n{folders}\nor add the folder you keep them in.",
                              Qt.ItemDataRole.ToolTipRole)
        combo.insertSeparator(combo.count())
        self._add_action("Choose file or folder…", CHOOSE_FILE,
                         "A .safetensors checkpoint (SD 1.x, SD 2.x, SDXL), or model_index.json in a diffusers folder.")
        self._add_action("Add model folder…", ADD_FOLDER,
                         "A folder you keep models in, e.g. A1111's models/Stable-diffusion or ComfyUI's models/checkpoints.")
        scanning = self.scanner.busy()
        self._add_action("Scanning model folders…" if scanning else "Rescan model folders", RESCAN, self._scan_tooltip())
        if scanning:
            combo.model().item(combo.count() - 1).setEnabled(False)
        combo.setCurrentIndex(self._index_of(current))
        combo.setToolTip(current or "No model chosen yet.")

    def _add_model(self, text: str, path: str) -> None:
        self.model_combo.addItem(text, path)
        self.model_combo.setItemData(self.model_combo.count() - 1, path, Qt.ItemDataRole.ToolTipRole)

    def _add_action(self, text: str, action: str, tooltip: str) -> None:
        combo = self.model_combo
        combo.addItem(text)
        index = combo.count() - 1
        combo.setItemData(index, action, ACTION_ROLE)
        combo.setItemData(index, tooltip, Qt.ItemDataRole.ToolTipRole)

    def _scan_tooltip(self) -> str:
        folders = "\n".join(f"  {f}" for f in self.library.folders) or "  (not scanned yet)"
        text = f"Look for new models in:\n{folders}"
        if self.library.skipped:
            lines = "\n".join(f"  {line}" for line in self.library.skipped[:MAX_SKIPPED_SHOWN])
            more = len(self.library.skipped) - MAX_SKIPPED_SHOWN
            text += f"\nSkipped:\n{lines}" + (f"\n  … and {more} more" if more > 0 else "")
        return text

    def _index_of(self, path: str) -> int:
        if not path:
            return -1  # the placeholder: "Choose a model…"
        for index in range(self.model_combo.count()):
            data = self.model_combo.itemData(index, PATH_ROLE)
            if isinstance(data, str) and same_path(data, path):
                return index
        return -1

    def _describe(self, path: str) -> str:
        """A model outside the library, as the library shows its own: name, family, size."""
        if path not in self._descriptions:
            try:
                info = inspect_model(path)
            except (StudioError, OSError, ValueError, RecursionError):
                demo = same_path(path, str(demo_model_dir()))
                self._descriptions[path] = "Demo model" if demo else Path(path).name or path
            else:
                if same_path(path, str(demo_model_dir())):
                    self._descriptions[path] = f"Demo model  ·  {info.label}"
                else:
                    model = LibraryModel(path, info.name, info.label, info.size_bytes, info.single_file)
                    self._descriptions[path] = model.display
        return self._descriptions[path]

    @Slot(int)
    def _model_activated(self, index: int) -> None:
        action = self.model_combo.itemData(index, ACTION_ROLE)
        path = self.model_combo.itemData(index, PATH_ROLE)
        self.model_combo.setCurrentIndex(self._index_of(self.current))  # an action is not a choice
        if action == CHOOSE_FILE:
            self.choose_file()
        elif action == ADD_FOLDER:
            self.add_folder()
        elif action == RESCAN:
            self.rescan(announce=True)
        elif isinstance(path, str) and path and not same_path(path, self.current):
            self.modelChosen.emit(path)

    def _first_folder(self) -> str:
        """The studio's own model folder (created, so the dialog opens in it and the artist
        learns where models go)."""
        folder = model_folders(self._settings().model_dirs)[0]
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return str(Path.home())
        return str(folder)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self._parent, "Choose a checkpoint (.safetensors), or model_index.json in a diffusers folder",
            self._first_folder(), MODEL_FILTER,
        )
        if not path:
            return
        if Path(path).name == "model_index.json":
            path = str(Path(path).parent)
        self.modelChosen.emit(path)

    def add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self._parent, "Add a model folder", str(Path.home()))
        if not folder:
            return
        folder = model_folder_in(folder)
        settings = self._settings()
        if any(same_path(folder, str(known)) for known in model_folders(settings.model_dirs)):
            self.message.emit(f"{folder} is already one of your model folders; scanning it again.")
        else:
            settings.model_dirs.append(folder)
            self._save()
            self.message.emit(f"Added {folder}; scanning it for models…")
        self.rescan(announce=True)

    # -- the VAE combo --------------------------------------------------------------------
    def _fill_vaes(self) -> None:
        combo = self.vae_combo
        combo.clear()
        combo.addItem("Automatic", "")
        combo.setItemData(0, "The checkpoint's own VAE.", Qt.ItemDataRole.ToolTipRole)
        for path in self.library.vaes:
            combo.addItem(path.stem, str(path))
            combo.setItemData(combo.count() - 1, str(path), Qt.ItemDataRole.ToolTipRole)
        self.sync()

    def sync(self) -> None:
        """Select the settings' VAE (after a scan, or when the window's settings were replaced)."""
        combo = self.vae_combo
        chosen = self._settings().vae
        index = next((i for i in range(combo.count()) if same_path(combo.itemData(i) or "", chosen)), 0 if not chosen else -1)
        if index == -1:
            if Path(chosen).is_file() or not self.library.scanned:  # chosen elsewhere, or not scanned yet
                combo.addItem(Path(chosen).stem, chosen)
                index = combo.count() - 1
                combo.setItemData(index, chosen, Qt.ItemDataRole.ToolTipRole)
            else:
                self._settings().vae = ""
                self._save()
                self.problem.emit(StudioError(
                    ErrorKind.MODEL_NOT_FOUND, f"The VAE you chose, {Path(chosen).name}, is no longer at {chosen}.",
                    "Automatic (the checkpoint's own VAE) is used instead; the VAE list shows the ones found."))
                index = 0
        combo.setCurrentIndex(index)

    @Slot(int)
    def _vae_activated(self, index: int) -> None:
        path = self.vae_combo.itemData(index) or ""
        settings = self._settings()
        if path == settings.vae:
            return
        settings.vae = path
        self._save()
        what = Path(path).stem if path else "Automatic (the checkpoint's own)"
        self.message.emit(f"VAE: {what}. It is used from the next image on.")


class MemoryButton(QToolButton):
    """A "Memory" menu: A1111's --medvram/--lowvram and Forge's switches, in plain words."""

    changed = Signal()  # the settings hold the new options

    TILING = (("auto", "Auto (above 2048×2048)"), ("on", "On"), ("off", "Off"))

    def __init__(self, settings: Callable[[], Settings], save: Callable[[], None], parent: QWidget | None = None):
        super().__init__(parent)
        self._settings = settings
        self._save = save
        self.setText("Memory")
        self.setObjectName("memoryButton")
        self.setAccessibleName("Memory options")
        self.setToolTip("Options for GPUs with little memory, and for very large images.")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        self.attention_slicing = self._checkable(
            menu, "Attention slicing", "Compute attention in slices: less memory, a little slower.")
        self.cpu_offload = self._checkable(
            menu, "Model CPU offload (small GPUs)",
            "Keep the model in system memory and move each part to the GPU only while it runs: "
            "fits a large model on a small GPU, slower. The model reloads at the next generation.")
        tiling = menu.addMenu("VAE tiling")
        tiling.setToolTipsVisible(True)
        group = QActionGroup(self)
        group.setExclusive(True)
        self.vae_tiling: dict[str, QAction] = {}
        for value, text in self.TILING:
            action = tiling.addAction(text)
            action.setCheckable(True)
            action.setToolTip("Decode the image in tiles: much less memory for large images.")
            group.addAction(action)
            action.triggered.connect(self._changed)
            self.vae_tiling[value] = action
        self.setMenu(menu)
        self.sync()

    def _checkable(self, menu: QMenu, text: str, tooltip: str) -> QAction:
        action = menu.addAction(text)
        action.setCheckable(True)
        action.setToolTip(tooltip)
        action.triggered.connect(self._changed)
        return action

    def sync(self) -> None:
        settings = self._settings()
        self.attention_slicing.setChecked(settings.attention_slicing)
        self.cpu_offload.setChecked(settings.cpu_offload)
        self.vae_tiling.get(settings.vae_tiling, self.vae_tiling["auto"]).setChecked(True)

    def options(self) -> dict:
        return memory_options(self._settings())

    @Slot()
    def _changed(self) -> None:
        settings = self._settings()
        settings.attention_slicing = self.attention_slicing.isChecked()
        settings.cpu_offload = self.cpu_offload.isChecked()
        settings.vae_tiling = next(value for value, action in self.vae_tiling.items() if action.isChecked())
        self._save()
        self.changed.emit()
