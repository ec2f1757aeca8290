"""The history panel: thumbnails of everything made, newest first, searchable by prompt.

A history entry can name any path: a FIFO or device placed in outputs/, a file swapped since,
a folder on a disk that hangs. So the GUI thread never opens one. Thumbnails are read on one
background thread (ThumbnailReader) through the session's safe reader (only regular,
size-capped files; a FIFO is refused without blocking), scaled down with Pillow there, and
handed to the GUI thread as small arrays by a queued signal; only the GUI thread makes QPixmaps.
Only the items the view paints are asked for, the most recently asked first, and the icons are
cached: a history of thousands of images opens at once and never stalls the window.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QAbstractListModel, QEvent, QModelIndex, QPersistentModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QMessageBox,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.generation.request import GenerationRequest
from studio.core.storage.history import History, HistoryEntry
from studio.core.storage.session import read_session_image
from studio.ui.images import qimage_from_rgb

THUMB_SIZE = 96
CACHE_LIMIT = 600  # icons kept in memory (~30 KB each)
# Thumbnails asked for and not read yet. Scrolling through thousands of entries asks for each
# one it passes; past this many, the oldest asks are dropped (asked again if painted again).
MAX_WAITING = 200
EntryRole = Qt.ItemDataRole.UserRole + 1


def read_thumbnail(path: str, size: int = THUMB_SIZE) -> np.ndarray | None:
    """The image as an owned (h, w, 3) uint8 array at most `size` on its longer side, aspect
    kept; None when it is not an image the studio reads (not a regular file, too large,
    damaged, gone). Any thread; it may take a while (a slow disk), so never the GUI thread.
    (read_session_image decodes the whole image, so Image.draft cannot help here: a 1024 px
    PNG takes ~20 ms either way, a JPEG 6 ms against 2.)"""
    try:
        pixels = read_session_image(path, "RGB")
    except (OSError, ValueError):  # SessionImageError is a ValueError; fdopen refuses a folder
        return None
    image = Image.fromarray(pixels)
    image.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.array(image, dtype=np.uint8)


ThumbnailSink = Callable[[str, "np.ndarray | None"], None]


class ThumbnailReader:
    """Reads thumbnails on one daemon thread, the most recently asked-for first (the view asks
    for what it paints, so that is what is on screen now). Plain Python: results go to
    `deliver(path, pixels or None)`, called in the reader thread; a Qt caller emits a queued
    signal from it. A daemon thread, so a read stuck on a hung disk cannot keep the studio alive."""

    def __init__(self, deliver: ThumbnailSink, size: int = THUMB_SIZE, max_waiting: int = MAX_WAITING):
        self.deliver = deliver
        self.size = size
        self.max_waiting = max_waiting
        self._waiting: OrderedDict[str, None] = OrderedDict()  # newest ask last
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False

    def want(self, path: str) -> list[str]:
        """Ask for one thumbnail; returns the paths dropped to keep the queue short (they were
        asked for longest ago, and are no longer on screen)."""
        with self._lock:
            if self._closed:
                return [path]
            self._waiting[path] = None
            self._waiting.move_to_end(path)
            dropped = []
            while len(self._waiting) > self.max_waiting:
                dropped.append(self._waiting.popitem(last=False)[0])
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="history-thumbnails", daemon=True)
                self._thread.start()
            self._wake.notify()
            return dropped

    def clear(self) -> list[str]:
        """Forget every ask not yet read (the list changed); returns them."""
        with self._lock:
            dropped = list(self._waiting)
            self._waiting.clear()
            return dropped

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def stop(self) -> None:
        """End the thread after the read it is in, without waiting for it."""
        with self._lock:
            self._closed = True
            self._waiting.clear()
            self._wake.notify_all()

    def close(self, timeout: float | None = 5.0) -> bool:
        """Stop, and wait up to `timeout` for the thread to end. False when it still runs
        (a read stuck on a hung disk); it is a daemon thread and delivers nothing more."""
        self.stop()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                path, _ = self._waiting.popitem(last=True)
            pixels = read_thumbnail(path, self.size)
            with self._lock:
                if self._closed:
                    return
            try:
                self.deliver(path, pixels)
            except Exception:  # noqa: BLE001 - a listener gone (a deleted model) must not end the reads
                pass


def made_at(when: float, now: float | None = None) -> str:
    """"14:03" today, "Mar 3 14:03" this year, "2024-03-03" before; "" when unknown."""
    if not when:
        return ""
    moment = _dt.datetime.fromtimestamp(when)
    today = _dt.datetime.fromtimestamp(time.time() if now is None else now)
    if moment.date() == today.date():
        return moment.strftime("%H:%M")
    if moment.year == today.year:
        return f"{moment.strftime('%b')} {moment.day} {moment.strftime('%H:%M')}"
    return moment.strftime("%Y-%m-%d")


def recipe(entry: HistoryEntry) -> str:
    """One entry's recipe in a line or two, for the status line and the tooltip."""
    request = entry.request or {}
    parts = [f"Seed {entry.seed}" if entry.seed is not None else ""]
    if entry.width and entry.height:
        parts.append(f"{entry.width}×{entry.height}")
    for key, label in (("steps", "steps"), ("sampler", ""), ("guidance", "CFG")):
        value = entry.fields.get(key, request.get(key))
        if value is not None:
            parts.append(f"{label} {value}".strip() if key != "steps" else f"{value} {label}")
    if entry.time:
        parts.append(made_at(entry.time))
    prompt = " ".join(entry.prompt.split())
    prompt = prompt if len(prompt) <= 200 else prompt[:199] + "…"
    return f"{prompt or Path(entry.path).name}\n{', '.join(p for p in parts if p)}"


def _square_tile(thumbnail: QPixmap) -> QPixmap:
    """The thumbnail centred on a transparent THUMB_SIZE square: every tile is the same size,
    so the seed and time under it sit in the same place (the list's items are of one size, the
    first one's: a tall thumbnail after a wide one pushed its labels out of its tile)."""
    tile = QPixmap(THUMB_SIZE, THUMB_SIZE)
    tile.fill(Qt.GlobalColor.transparent)
    painter = QPainter(tile)
    painter.drawPixmap((THUMB_SIZE - thumbnail.width()) // 2, (THUMB_SIZE - thumbnail.height()) // 2, thumbnail)
    painter.end()
    return tile


class HistoryModel(QAbstractListModel):
    # (path, (h, w, 3) uint8 pixels or None when unreadable): emitted in the reader thread,
    # received in the GUI thread (queued), where the only QPixmaps are made.
    thumbnailRead = Signal(str, object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.entries: list[HistoryEntry] = []
        self._rows: dict[str, int] = {}
        self._icons: OrderedDict[str, QIcon] = OrderedDict()
        self._asked: set[str] = set()  # with the reader, not back yet
        self._missing: set[str] = set()  # unreadable: the placeholder stays
        placeholder = QPixmap(THUMB_SIZE, THUMB_SIZE)
        placeholder.fill(QColor(60, 60, 64))
        self._placeholder = QIcon(placeholder)
        self.thumbnailRead.connect(self._thumbnail_read, Qt.ConnectionType.QueuedConnection)
        self.reader = ThumbnailReader(self.thumbnailRead.emit)
        # Whoever owns the panel should call close(); if it is simply deleted, the reader
        # thread still ends after the read it is in.
        self.destroyed.connect(self.reader.stop)

    def set_entries(self, entries: list[HistoryEntry]) -> None:
        self.beginResetModel()
        self.entries = list(entries)
        self._rows = {entry.path: row for row, entry in enumerate(self.entries)}
        self._asked.difference_update(self.reader.clear())  # the view asks again for what it paints
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's own signature
        return 0 if parent.isValid() else len(self.entries)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.entries):
            return None
        entry = self.entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            # Thumbnails of one prompt all look alike: the seed and the time tell them apart.
            seed = "no seed" if entry.seed is None else str(entry.seed)
            return f"{seed}\n{made_at(entry.time)}"
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icon(entry.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{recipe(entry)}\n{entry.path}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{entry.prompt}, seed {entry.seed}, made {made_at(entry.time)}"
        if role == EntryRole:
            return entry
        return None

    # thumbnails
    def _icon(self, path: str) -> QIcon:
        icon = self._icons.get(path)
        if icon is not None:
            self._icons.move_to_end(path)
            return icon
        if path not in self._missing and path not in self._asked:
            # Asked for by the view, i.e. painted: read it in the background.
            self._asked.add(path)
            self._asked.difference_update(self.reader.want(path))
        return self._placeholder

    def _thumbnail_read(self, path: str, pixels: np.ndarray | None) -> None:
        """In the GUI thread: the reader's result becomes an icon (or stays a placeholder)."""
        self._asked.discard(path)
        if pixels is None:
            self._missing.add(path)
            return
        self._icons[path] = QIcon(_square_tile(QPixmap.fromImage(qimage_from_rgb(pixels))))
        self._icons.move_to_end(path)
        while len(self._icons) > CACHE_LIMIT:
            self._icons.popitem(last=False)
        row = self._rows.get(path)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def has_thumbnail(self, path: str) -> bool:
        return path in self._icons

    def is_unreadable(self, path: str) -> bool:
        """Read and refused (not an image, not a regular file): it shows the placeholder."""
        return path in self._missing

    def is_placeholder(self, icon: QIcon) -> bool:
        return icon.cacheKey() == self._placeholder.cacheKey()

    def forget(self, path: str) -> None:
        self._icons.pop(path, None)
        self._missing.discard(path)

    def close(self, timeout: float | None = 5.0) -> bool:
        """End the reader thread; False when a read is stuck (a daemon thread: harmless)."""
        return self.reader.close(timeout)


class HistoryPanel(QWidget):
    viewRequested = Signal(str)  # image path
    restoreRequested = Signal(object, str)  # (fields dict for metadata.apply_fields, "all"|"seed"|"prompt")
    entryDeleted = Signal(str)
    message = Signal(str)

    def __init__(self, history: History, parent=None):
        super().__init__(parent)
        self.history = history
        self.model = HistoryModel(self)
        self.search = QLineEdit()
        self.search.setObjectName("historySearch")
        self.search.setAccessibleName("Search history")
        self.search.setPlaceholderText("Search prompts…")
        self.search.setClearButtonEnabled(True)
        self.view = QListView()
        self.view.setObjectName("historyView")
        self.view.setAccessibleName("History")
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.view.setGridSize(QSize(THUMB_SIZE + 16, THUMB_SIZE + 44))  # two lines: seed, time
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setModel(self.model)

        self.view_action = self._action("View", "historyViewAction", self.view_selected)
        self.restore_all_action = self._action("Restore all settings", "historyRestoreAll", lambda: self.restore_selected("all"))
        self.restore_seed_action = self._action("Restore seed only", "historyRestoreSeed", lambda: self.restore_selected("seed"))
        self.restore_prompt_action = self._action(
            "Restore prompt only", "historyRestorePrompt", lambda: self.restore_selected("prompt")
        )
        self.delete_action = self._action("Delete image…", "historyDelete", lambda: self.delete_selected())
        self.delete_action.setShortcut(Qt.Key.Key_Delete)
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        for action in (self.view_action, self.restore_all_action, self.restore_seed_action,
                       self.restore_prompt_action, self.delete_action):
            self.view.addAction(action)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)

        restore = QToolButton()
        restore.setObjectName("historyRestoreButton")
        restore.setAccessibleName("Restore settings from the selected image")
        restore.setText("Restore")
        restore.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        menu = QMenu(restore)
        menu.addActions([self.restore_all_action, self.restore_seed_action, self.restore_prompt_action])
        restore.setMenu(menu)
        restore.setDefaultAction(self.restore_all_action)
        delete = QToolButton()
        delete.setObjectName("historyDeleteButton")
        delete.setDefaultAction(self.delete_action)
        delete.setText("Delete…")  # the menu and the tooltip say "Delete image…"
        delete.setToolTip("Delete the selected image from the disk (Del)")
        self.restore_button, self.delete_button = restore, delete

        # The search gets a row of its own: beside two buttons in a 250 px dock it was 25 px wide.
        # Ignored: its hint (which grows with the clear button once text is typed) must not
        # widen the dock.
        self.search.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.search.setMinimumWidth(120)
        buttons = QHBoxLayout()
        buttons.addWidget(restore)
        buttons.addWidget(delete)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.search)
        layout.addLayout(buttons)
        layout.addWidget(self.view, 1)
        self.view.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        # An empty list says why: nothing made yet, or nothing matches the search.
        self.empty_note = QLabel(self.view.viewport())
        self.empty_note.setObjectName("historyEmptyNote")
        self.empty_note.setWordWrap(True)
        self.empty_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_note.setEnabled(False)  # drawn in the muted colour
        self.view.viewport().installEventFilter(self)

        self.search.textChanged.connect(lambda _: self.refresh())
        # One click selects and says what the image is; a double click (or Enter) opens it.
        self.view.activated.connect(lambda index: self.viewRequested.emit(index.data(EntryRole).path))
        self.view.clicked.connect(self._clicked)
        self.view.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self.refresh()

    def _clicked(self, index) -> None:
        entry = index.data(EntryRole) if index.isValid() else None
        if entry is not None:
            self.view.setCurrentIndex(index)
            self.message.emit(" — ".join(recipe(entry).split("\n")))

    def _action(self, text: str, name: str, slot) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        action.triggered.connect(slot)
        return action

    def close_thumbnails(self, timeout: float | None = 5.0) -> bool:
        """Stop reading thumbnails (the studio is closing). False when a read is stuck on a
        hung disk: its thread is a daemon, so it cannot keep the studio alive."""
        return self.model.close(timeout)

    # -- state --------------------------------------------------------------------------
    def refresh(self) -> None:
        """Show the entries that match the search, newest first; keep the selection if possible."""
        selected = self.selected_entry()
        self.model.set_entries(self.history.search(self.search.text()))
        if selected is not None:
            self.select_path(selected.path)
        self._update_actions()
        self._show_empty_note()

    def _show_empty_note(self) -> None:
        query = self.search.text().strip()
        if self.model.rowCount():
            self.empty_note.hide()
            return
        if query:
            shown = query if len(query) <= 40 else query[:39] + "…"
            self.empty_note.setText(f"No images match “{shown}”.\nSearch looks in the prompts; every word must appear.")
        else:
            self.empty_note.setText("No images yet.\nFinished images appear here.")
        self.empty_note.setGeometry(self.view.viewport().rect().adjusted(8, 8, -8, -8))
        self.empty_note.show()

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Resize and self.empty_note.isVisible():
            self.empty_note.setGeometry(self.view.viewport().rect().adjusted(8, 8, -8, -8))
        return False

    def select_path(self, path: str | Path) -> bool:
        for row, entry in enumerate(self.model.entries):
            if entry.path == str(path):
                self.view.setCurrentIndex(self.model.index(row))
                return True
        return False

    def selected_entry(self) -> HistoryEntry | None:
        index = self.view.currentIndex()
        return index.data(EntryRole) if index.isValid() else None

    def _update_actions(self) -> None:
        has = self.selected_entry() is not None
        for action in (self.view_action, self.restore_all_action, self.restore_seed_action,
                       self.restore_prompt_action, self.delete_action):
            action.setEnabled(has)

    # -- what the window calls ----------------------------------------------------------
    def add_entry(self, path: str | Path, request: GenerationRequest) -> HistoryEntry | None:
        """Record a finished image (already on disk) and show it first."""
        try:
            entry = self.history.add(path, request)
        except OSError as exc:
            self.message.emit(f"The history could not be updated: {exc}")
            return None
        self.refresh()
        return entry

    # -- actions ------------------------------------------------------------------------
    def view_selected(self) -> None:
        entry = self.selected_entry()
        if entry is not None:
            self.viewRequested.emit(entry.path)

    def restore_selected(self, what: str = "all") -> None:
        entry = self.selected_entry()
        if entry is not None:
            self.restoreRequested.emit(entry.restorable_fields(), what)

    def delete_selected(self, confirm: bool = True) -> bool:
        entry = self.selected_entry()
        if entry is None:
            return False
        if confirm:
            answer = QMessageBox.question(self, "Delete image", f"Delete this image from the disk?\n{entry.path}")
            if answer != QMessageBox.StandardButton.Yes:
                return False
        try:
            self.history.delete(entry.path)
        except OSError as exc:
            self.message.emit(f"The image could not be deleted: {exc}")
            return False
        self.model.forget(entry.path)
        self.refresh()
        self.entryDeleted.emit(entry.path)
        return True
