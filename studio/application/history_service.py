"""The history of everything made: its index loaded at start (rebuilt from the images' own
metadata on a thread when it is missing or damaged, and caught up with images written after
its last line), and kept up to date as the controller saves images. The history panel shows it; nothing here touches a widget."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from studio.core.events import Event, ImageSaved
from studio.core.generation.request import GenerationRequest
from studio.core.storage.history import History, HistoryEntry, images_missing_from_index

if TYPE_CHECKING:
    from studio.application.controller import StudioController

REBUILDING_TEXT = "The history index is missing or damaged; rebuilding it from your images…"


class HistoryService(QObject):
    changed = Signal()  # entries were added or the index was rebuilt: the panel refreshes
    _rebuilt = Signal()  # from the rebuild thread: queued to this (GUI-thread) object
    _caught_up = Signal(object)  # list[HistoryEntry] from the rebuild thread, likewise

    def __init__(self, controller: StudioController, history: History | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.history = history if history is not None else History()
        self._rebuilder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-rebuild")
        self._added_while_rebuilding: list[tuple[Path, GenerationRequest]] | None = None
        # Connected before any rebuild starts: one that finishes first would emit into nothing.
        self._rebuilt.connect(self._finish_rebuild)
        self._caught_up.connect(self._add_caught_up)
        # The controller adds each image once it is on disk.
        controller.history = self.history
        controller.historyAdded.connect(self._added)
        controller.backendEvent.connect(self._on_event)

    def load(self, outputs: Path) -> list[str]:
        """Read the index; when it is missing or damaged, rebuild it from the images in
        `outputs` on a background thread (thousands of files must not delay the window).
        Returns sentences for the status line."""
        warnings = self.history.load()
        if self.history.index_path.exists() and not self.history.damaged:
            # Images written after the index's last line (a kill between the two) are added
            # from their own metadata; the thread only reads, the GUI thread appends.
            since, known = self.history.catch_up_point()
            future = self._rebuilder.submit(images_missing_from_index, outputs, since, known)
            future.add_done_callback(lambda done: self._caught_up.emit(done.result() if not done.exception() else []))
            return warnings
        self._added_while_rebuilding = []
        fresh = History(self.history.index_path)
        self._rebuilder.submit(fresh.rebuild, outputs).add_done_callback(lambda _: self._rebuilt.emit())
        return [REBUILDING_TEXT] if warnings else []

    @property
    def rebuilding(self) -> bool:
        return self._added_while_rebuilding is not None

    def close(self) -> None:
        """Wait for a rebuild that still runs, and keep what was made meanwhile."""
        self._rebuilder.shutdown(wait=True)
        if self.rebuilding:  # the rebuild finished after the last event
            self._finish_rebuild()

    def _finish_rebuild(self) -> None:
        added, self._added_while_rebuilding = self._added_while_rebuilding or [], None
        self.history.load()
        for path, request in added:  # results that finished while the rebuild ran
            self.history.add(path, request)
        self.changed.emit()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ImageSaved):
            self._image_saved(event)

    def _add_caught_up(self, entries: list[HistoryEntry]) -> None:
        if not self.rebuilding and self.history.add_entries(entries):
            self.changed.emit()

    def _image_saved(self, event: ImageSaved) -> None:
        """Kept while the index is rebuilt: the rebuilt index replaces the one it was added to."""
        if self._added_while_rebuilding is not None:
            self._added_while_rebuilding.append((event.path, event.request))

    def _added(self, _entry: HistoryEntry) -> None:
        self.changed.emit()
