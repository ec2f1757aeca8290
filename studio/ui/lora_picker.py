"""The "LoRA…" button beside the prompt: the LoRAs in the LoRA folders, one click inserts the tag.

The folders are the studio's own `models/loras` and those beside the artist's model folders
(A1111's `models/Lora`, ComfyUI's `models/loras`): studio.core.models.model_library.lora_folders. Each
opening of the menu rescans them in a Python thread (headers only) and fills the menu when the
result reaches the GUI thread; until then it shows the previous list.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QMenu, QPlainTextEdit, QToolButton, QWidget

from studio.core.generation.lora_tags import LoraFile, scan_loras
from studio.core.models.model_library import lora_folders, model_folders

SCAN_THREAD_NAME = "lora-scan"
MENU_STYLE = "QMenu { menu-scrollable: 1; }"  # an A1111 folder can hold hundreds
MAX_FOLDERS_SHOWN = 6


def lora_tag_text(name: str, weight: float = 1.0) -> str:
    return f"<lora:{name}:{weight:g}>"


def insert_at_cursor(edit: QPlainTextEdit, text: str) -> None:
    """Insert `text` at the edit's cursor (replacing a selection), a space apart from a word."""
    cursor = edit.textCursor()
    before = edit.toPlainText()[: cursor.selectionStart()]
    if before and not before[-1].isspace():
        text = " " + text
    cursor.insertText(text)
    edit.setTextCursor(cursor)


class LoraScanner(QObject):
    """scan_loras in a Python thread; the newest scan's result is delivered in the GUI thread."""

    scanned = Signal(object, object)  # (list[LoraFile], list of folder paths), in the GUI thread
    _finished = Signal(int, object, object)  # emitted in the scan thread

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._number = 0
        self._thread: threading.Thread | None = None
        self._finished.connect(self._deliver)  # a bound method of a GUI-thread object: queued

    def scan(self, model_dirs: list[str]) -> None:
        self._number += 1
        self._thread = threading.Thread(target=self._run, args=(self._number, tuple(model_dirs)), name=SCAN_THREAD_NAME,
                                        daemon=True)
        self._thread.start()

    def _run(self, number: int, model_dirs: tuple[str, ...]) -> None:
        folders = lora_folders(model_folders(list(model_dirs)))
        try:
            found, _ = scan_loras(folders)
        except Exception:  # noqa: BLE001 - a dead scan would leave "Scanning…" forever
            found = []
        try:
            self._finished.emit(number, found, folders)
        except RuntimeError:  # the window closed mid-scan
            pass

    @Slot(int, object, object)
    def _deliver(self, number: int, found: list, folders: list) -> None:
        if number == self._number:  # a slow older scan must not replace a newer one
            self.scanned.emit(found, folders)


def _no_folders() -> list[str]:
    return []


class LoraButton(QToolButton):
    """"LoRA…": a menu of the LoRAs found; choosing one inserts `<lora:NAME:1>` into `prompt`."""

    inserted = Signal(str)  # the tag text

    def __init__(self, prompt: QPlainTextEdit, model_dirs: Callable[[], list[str]] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.prompt = prompt
        self._model_dirs = model_dirs or _no_folders  # the window gives it the state's (use_model_dirs)
        self.loras: list[LoraFile] | None = None  # None until the first scan has reported
        self.folders: list = []
        self.setText("LoRA…")
        self.setObjectName("loraButton")
        self.setAccessibleName("Insert a LoRA")
        self.setToolTip("Insert a LoRA from your LoRA folders into the prompt as <lora:NAME:1>.")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.menu_ = QMenu(self)
        self.menu_.setObjectName("loraMenu")
        self.menu_.setStyleSheet(MENU_STYLE)
        self.menu_.setToolTipsVisible(True)
        self.menu_.aboutToShow.connect(self.refresh)
        self.setMenu(self.menu_)
        self.scanner = LoraScanner(self)
        self.scanner.scanned.connect(self._scanned)
        self._fill()

    @Slot()
    def refresh(self) -> None:
        """Rescan the LoRA folders (off the GUI thread); the menu fills when the result is in."""
        try:
            dirs = self._model_dirs()
        except Exception:  # noqa: BLE001 - unreadable settings: the studio's own folder still counts
            dirs = []
        self.scanner.scan(dirs)

    @Slot(object, object)
    def _scanned(self, found: list[LoraFile], folders: list) -> None:
        self.loras = sorted(found, key=lambda lora: lora.name.lower())
        self.folders = folders
        self._fill()

    def _fill(self) -> None:
        menu = self.menu_
        menu.clear()
        if self.loras is None:
            menu.addAction("Scanning the LoRA folders…").setEnabled(False)
            return
        if not self.loras:
            where = "\n".join(str(f) for f in self.folders[:4])
            empty = menu.addAction("No LoRAs found (.safetensors files in the LoRA folders)")
            empty.setEnabled(False)
            empty.setToolTip(f"Put LoRA files in:\n{where}")
        for lora in self.loras:
            action = menu.addAction(f"{lora.name}  ·  {lora.label}")
            action.setToolTip(str(lora.path))
            action.setData(lora.name)
            action.triggered.connect(self._chosen)
        self._add_searched_folders()

    def _add_searched_folders(self) -> None:
        """Where the list comes from, written out (a disabled item's tooltip is never shown):
        a LoRA the artist misses is in another folder."""
        menu = self.menu_
        menu.addSeparator()
        shown = self.folders[:MAX_FOLDERS_SHOWN]
        for folder in shown:
            menu.addAction(f"Looked in {folder}").setEnabled(False)
        if len(self.folders) > len(shown):
            menu.addAction(f"…and {len(self.folders) - len(shown)} more folder(s)").setEnabled(False)

    @Slot()
    def _chosen(self) -> None:
        action = self.sender()
        name = action.data() if action is not None else None
        if name:
            self.insert(name)

    def insert(self, name: str, weight: float = 1.0) -> None:
        text = lora_tag_text(name, weight)
        insert_at_cursor(self.prompt, text)
        self.prompt.setFocus()
        self.inserted.emit(text)

    def use_model_dirs(self, model_dirs: Callable[[], list[str]]) -> None:
        """Where to look: the artist's model folders as the window's state has them now."""
        self._model_dirs = model_dirs
