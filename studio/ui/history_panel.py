"""The history panel: thumbnails of everything made, newest first, searchable by prompt.

Thumbnails load lazily on the GUI thread, one small decode per event-loop turn (QImageReader
scales while decoding), only for the items the view actually paints, and are cached. So a
history of thousands of images opens instantly and the window never stalls.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLineEdit,
    QListView,
    QMenu,
    QMessageBox,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.history import History, HistoryEntry
from studio.core.request import GenerationRequest

THUMB_SIZE = 96
CACHE_LIMIT = 600  # icons kept in memory (~30 KB each)
TICK_BUDGET_S = 0.012  # at most this long per event-loop turn decoding thumbnails
EntryRole = Qt.ItemDataRole.UserRole + 1


def load_thumbnail(path: str, size: int = THUMB_SIZE) -> QPixmap | None:
    """A small pixmap of the image, decoded at the small size; None if it cannot be read."""
    reader = QImageReader(path)
    reader.setAutoTransform(True)
    original = reader.size()
    if original.isValid() and original.width() > 0 and original.height() > 0:
        reader.setScaledSize(original.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    return None if image.isNull() else QPixmap.fromImage(image)


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


class HistoryModel(QAbstractListModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.entries: list[HistoryEntry] = []
        self._icons: OrderedDict[str, QIcon] = OrderedDict()
        self._wanted: OrderedDict[str, None] = OrderedDict()
        self._missing: set[str] = set()
        placeholder = QPixmap(THUMB_SIZE, THUMB_SIZE)
        placeholder.fill(QColor(60, 60, 64))
        self._placeholder = QIcon(placeholder)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._load_some)

    def set_entries(self, entries: list[HistoryEntry]) -> None:
        self.beginResetModel()
        self.entries = list(entries)
        self._wanted.clear()
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's own signature
        return 0 if parent.isValid() else len(self.entries)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
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
        if path not in self._missing:
            # Asked for by the view, i.e. visible: queue it, newest request first.
            self._wanted[path] = None
            self._wanted.move_to_end(path, last=False)
            self._timer.start()
        return self._placeholder

    def _load_some(self) -> None:
        deadline = time.monotonic() + TICK_BUDGET_S
        loaded: set[str] = set()
        while self._wanted and time.monotonic() < deadline:
            path, _ = self._wanted.popitem(last=False)
            pixmap = load_thumbnail(path)
            if pixmap is None:
                self._missing.add(path)
                continue
            self._icons[path] = QIcon(pixmap)
            loaded.add(path)
            while len(self._icons) > CACHE_LIMIT:
                self._icons.popitem(last=False)
        for row, entry in enumerate(self.entries):
            if entry.path in loaded:
                index = self.index(row)
                self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])
        if self._wanted:
            self._timer.start()

    def has_thumbnail(self, path: str) -> bool:
        return path in self._icons

    def forget(self, path: str) -> None:
        self._icons.pop(path, None)
        self._wanted.pop(path, None)
        self._missing.discard(path)


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

    # -- state --------------------------------------------------------------------------
    def refresh(self) -> None:
        """Show the entries that match the search, newest first; keep the selection if possible."""
        selected = self.selected_entry()
        self.model.set_entries(self.history.search(self.search.text()))
        if selected is not None:
            self.select_path(selected.path)
        self._update_actions()

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
