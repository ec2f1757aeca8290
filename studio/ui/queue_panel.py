"""The Queue dock: every job the controller knows, in run order, and the commands on them.

The list is a view of `StudioController.queue` and nothing more: at each `queueChanged` its
model (QueueModel) compares the queue with the rows it shows and tells the view only what
changed (rows inserted, removed or moved, rows whose status changed), so a change costs the
same in a queue of ten jobs or ten thousand. Every action (cancel, pause, duplicate, drag to
reorder, remove) goes to the controller, which changes the queue and says so. Jobs show their
prompt (elided), their status and, once an image of theirs is on disk, a thumbnail; a double
click on a finished one shows its image.

A thumbnail path comes from queue.json and may name anything (a FIFO, a stalled network
mount): it is read on the history panel's background reader (regular files only, never
blocking), and the row shows a blank square until it arrives.

Also here: the bar that offers the jobs the last session left unrun ("N queued jobs from last
time: Run / Discard"), non-modal, as InvokeAI and Krita's job list do it.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.events import Event, JobStarted, StepProgress
from studio.core.generation.request import output_size
from studio.core.storage.job_queue import Job, JobStatus
from studio.ui.history_panel import ThumbnailReader
from studio.ui.images import qimage_from_rgb

THUMB = 48  # thumbnail side in the list, pixels
PROMPT_CHARS = 60  # longer prompts are elided in the list (the tooltip has it whole)
STATUS_TEXT = {
    JobStatus.PENDING: "Queued",
    JobStatus.RUNNING: "Running",
    JobStatus.SAVING: "Saving",
    JobStatus.DONE: "Done",
    JobStatus.FAILED: "Failed",
    JobStatus.CANCELLED: "Cancelled",
}
JOB_ID_ROLE = Qt.ItemDataRole.UserRole
ROW_UPDATE_SECONDS = 0.25  # the running job's row shows its progress and preview at most this often
THUMBNAILS_KEPT = 400  # icons cached by path (~10 KB each); the list paints a screenful at a time


def job_label(job: Job, progress: str = "") -> str:
    """Two lines: the prompt (elided), then the status (with `progress`, e.g. "45%", while it
    runs), the size and steps."""
    prompt = " ".join(job.request.prompt.split()) or "(no prompt)"
    if len(prompt) > PROMPT_CHARS:
        prompt = prompt[: PROMPT_CHARS - 1] + "…"
    status = STATUS_TEXT[job.status] + (f" {progress}" if progress else "")
    if job.restored and job.status is JobStatus.PENDING:
        status = "From last time"
    width, height = output_size(job.request)  # a hires job shows the size it makes
    size = f"{width}×{height}, {job.request.steps} steps"
    batch = f", {job.request.batch_count} images" if job.request.batch_count > 1 else ""
    return f"{prompt}\n{status} · {size}{batch}"


def _look(job: Job) -> tuple:
    """What a row shows that can change while the job is listed (its request never does)."""
    return job.status, job.restored, job.thumbnail, job.error


def _common_prefix(a: list[str], b: list[str]) -> int:
    if a[:1] != b[:1]:
        return 0
    low, high = 1, min(len(a), len(b))  # a[:low] == b[:low]; find the longest such
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


_ROW_SIZE = QSize(0, THUMB + 8)
_ROW_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled


def _runs(offsets: list[int]):
    """Ascending offsets as (first, last) runs of neighbours."""
    first = previous = None
    for offset in offsets:
        if previous is not None and offset == previous + 1:
            previous = offset
            continue
        if first is not None:
            yield first, previous
        first = previous = offset
    if first is not None:
        yield first, previous


class QueueModel(QStandardItemModel):
    """The queue's jobs as rows. `sync(jobs)` turns a changed queue into the smallest changes
    (rows inserted, removed or moved; the text and icon of rows whose job changed).

    A QStandardItemModel, not a Python list model: the view lays out every row after an insert
    or a removal, asking the model for each one, and 10,000 calls into Python per change cost
    60 ms where the items' own C++ answers cost about one."""

    _thumbnailRead = Signal(str, object)  # (path, pixels or None) from the reader thread: queued here

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._jobs: list[Job] = []
        self._ids: list[str] = []
        self._looks: list[tuple] = []
        self.running_look: tuple[str, str, QIcon | None] | None = None  # (job id, progress, preview icon)
        self.move_requested = lambda job_id, index: None  # set by the panel: the controller moves jobs
        self._icons: dict[str, QIcon | None] = {}  # by path; None: not an image the studio reads
        self._asked: set[str] = set()
        self._blank: QIcon | None = None
        self._reader = ThumbnailReader(self._thumbnailRead.emit, size=THUMB)
        self._thumbnailRead.connect(self._thumbnail_arrived)
        self.destroyed.connect(self._reader.stop)

    # -- following the queue ------------------------------------------------------------------
    def sync(self, jobs: list[Job]) -> None:
        ids = [job.id for job in jobs]
        if ids != self._ids:
            self._restructure(ids, jobs)
        self._jobs = list(jobs)
        looks = [(job.status, job.restored, job.thumbnail, job.error) for job in jobs]  # _look, inlined: 10,000 rows
        if looks != self._looks:
            old = self._looks
            changed = [row for row, (was, now) in enumerate(zip(old, looks, strict=True)) if was != now]
            self._looks = looks
            for row in changed:
                self._show(row)

    def _restructure(self, ids: list[str], jobs: list[Job]) -> None:
        """Rows inserted, removed or moved, told to the view as such (never a reset: the
        selection and scroll position stay)."""
        old = self._ids
        start = _common_prefix(old, ids)
        end = _common_prefix(old[start:][::-1], ids[start:][::-1])
        gone, came = old[start : len(old) - end], ids[start : len(ids) - end]
        if len(gone) == len(came) > 1 and gone[1:] == came[:-1] and gone[0] == came[-1]:  # moved down
            self._move(start, start + len(gone) - 1)
        elif len(gone) == len(came) > 1 and gone[:-1] == came[1:] and gone[-1] == came[0]:  # moved up
            self._move(start + len(gone) - 1, start)
        else:
            self._replace(start, gone, came, jobs)

    def _replace(self, start: int, gone: list[str], came: list[str], jobs: list[Job]) -> None:
        """Rows `gone` (from `start`) become rows `came`: jobs that stayed keep their rows when
        the rest were only removed or added (several changes between two syncs)."""
        came_ids, gone_ids = set(came), set(gone)
        if [i for i in gone if i in came_ids] != [i for i in came if i in gone_ids]:
            removed, added = list(range(len(gone))), list(range(len(came)))  # reordered: all anew
        else:
            removed = [offset for offset, i in enumerate(gone) if i not in came_ids]
            added = [offset for offset, i in enumerate(came) if i not in gone_ids]
        for first, last in reversed(list(_runs(removed))):
            self.removeRows(start + first, last - first + 1)
            for values in (self._ids, self._jobs, self._looks):
                del values[start + first : start + last + 1]
        for first, last in _runs(added):
            new_jobs = jobs[start + first : start + last + 1]
            self._ids[start + first : start + first] = [job.id for job in new_jobs]
            self._jobs[start + first : start + first] = new_jobs
            self._looks[start + first : start + first] = [_look(job) for job in new_jobs]
            self.invisibleRootItem().insertRows(start + first, [self._item(job) for job in new_jobs])

    def _move(self, row: int, to: int) -> None:
        """One row taken from `row` and put at `to` (its index afterwards)."""
        items = self.takeRow(row)
        self.insertRow(to, items)
        for values in (self._ids, self._jobs, self._looks):
            values.insert(to, values.pop(row))

    def _item(self, job: Job) -> QStandardItem:
        item = QStandardItem()
        item.setData(job.id, JOB_ID_ROLE)
        item.setSizeHint(_ROW_SIZE)
        item.setFlags(_ROW_FLAGS)
        self._fill(item, job)
        return item

    def _fill(self, item: QStandardItem, job: Job) -> None:
        look = self.running_look
        running = look is not None and look[0] == job.id and job.status is JobStatus.RUNNING
        item.setText(job_label(job, look[1] if running and look is not None else ""))
        item.setToolTip(job.request.prompt + (f"\n{job.error}" if job.error else ""))
        if running and look is not None and look[2] is not None:
            item.setIcon(look[2])
        else:
            item.setIcon(self._thumbnail(job.thumbnail) or self.placeholder())  # a blank square keeps the text aligned

    def _show(self, row: int) -> None:
        item = self.item(row)
        if item is not None:
            self._fill(item, self._jobs[row])

    def row_of(self, job_id: str) -> int:
        try:
            return self._ids.index(job_id)
        except ValueError:
            return -1

    def job_at(self, row: int) -> Job | None:
        return self._jobs[row] if 0 <= row < len(self._jobs) else None

    def ids(self) -> list[str]:
        return list(self._ids)

    def show_running(self, job_id: str) -> None:
        row = self.row_of(job_id)
        if row >= 0:
            self._show(row)

    # -- drag and drop --------------------------------------------------------------------------
    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled  # drops land between rows, never on one
        return super().flags(index)

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def moveRows(self, source_parent, source_row: int, count: int, destination_parent, destination: int) -> bool:
        """An internal drag dropped a job before row `destination`: the controller moves it,
        after the drop has finished with the view, and the next sync shows the move."""
        job = self.job_at(source_row)
        if job is None or count != 1 or source_parent.isValid() or destination_parent.isValid():
            return False
        index = destination if destination <= source_row else destination - 1
        QTimer.singleShot(0, lambda: self.move_requested(job.id, index))
        return True

    # -- thumbnails ---------------------------------------------------------------------------
    def placeholder(self) -> QIcon:
        if self._blank is None:
            pixmap = QPixmap(THUMB, THUMB)
            pixmap.fill(QColor(128, 128, 128, 40))  # a faint square in either theme
            self._blank = QIcon(pixmap)
        return self._blank

    def _thumbnail(self, path: str) -> QIcon | None:
        """The icon when it has been read; else asks the reader for it (finished jobs only have
        one, and at most MAX_FINISHED_KEPT of them are listed)."""
        if not path:
            return None
        if path in self._icons:
            return self._icons[path]
        if path not in self._asked:
            self._asked.add(path)
            self._reader.want(path)
        return None

    def _thumbnail_arrived(self, path: str, pixels: np.ndarray | None) -> None:
        self._asked.discard(path)
        if len(self._icons) >= THUMBNAILS_KEPT:
            self._icons.pop(next(iter(self._icons)))
        icon = QIcon(QPixmap.fromImage(qimage_from_rgb(pixels))) if pixels is not None else None
        self._icons[path] = icon  # None: removed or unreadable since; the job is still listed
        if icon is not None:
            for row, job in enumerate(self._jobs):
                if job.thumbnail == path:
                    self._show(row)

    def close(self) -> None:
        self._reader.stop()


class QueuePanel(QWidget):
    """The list (objectName `queueView`) and its buttons. `jobSelected(job_id)` tells the window
    which job the artist looks at (the scrubber shows its steps while they are in memory)."""

    jobSelected = Signal(str)
    imageRequested = Signal(str)  # a finished job double-clicked: show its (last) image

    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.controller = controller
        self._shown_step_at = 0.0  # when the running row last showed a step (time.monotonic)
        self._syncing = False
        self.model = QueueModel(self)
        self.model.move_requested = controller.move_job
        self.view = QListView()
        self.view.setObjectName("queueView")
        self.view.setAccessibleName("Job queue")
        self.view.setModel(self.model)
        self.view.setIconSize(QSize(THUMB, THUMB))
        self.view.setUniformItemSizes(True)
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.view.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.view.doubleClicked.connect(self._double_clicked)

        self.cancel_button = self._button("Cancel", "cancelJobButton", "Cancel the selected job", self.cancel_selected)
        self.cancel_all_button = self._button("Cancel all", "cancelAllButton", "Cancel the running job and every queued one",
                                              controller.cancel_all)
        self.pause_button = self._button("Pause", "pauseQueueButton",
                                         "Let the running job finish and start no other until Resume", self.toggle_pause)
        self.duplicate_button = self._button("Duplicate", "duplicateJobButton", "Queue the selected job again",
                                             self.duplicate_selected)
        self.remove_button = self._button("Remove", "removeJobButton", "Take the selected job off the list",
                                          self.remove_selected)
        self.clear_button = self._button("Clear finished", "clearFinishedButton", "Take every finished job off the list",
                                         controller.clear_finished)
        rows = QVBoxLayout(self)
        rows.setContentsMargins(2, 2, 2, 2)
        rows.addWidget(self.view, 1)
        for buttons in ((self.cancel_button, self.cancel_all_button, self.pause_button),
                        (self.duplicate_button, self.remove_button, self.clear_button)):
            line = QHBoxLayout()
            for button in buttons:
                line.addWidget(button)
            rows.addLayout(line)
        controller.queueChanged.connect(self.refresh)
        controller.backendEvent.connect(self._on_event)
        self.refresh()

    def _button(self, text: str, name: str, tip: str, slot) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    # -- showing the queue ------------------------------------------------------------------
    def refresh(self) -> None:
        """Bring the rows up to date with the queue: only changed rows are touched, and the
        selection stays (a removed job's row takes its selection with it, unannounced)."""
        selected = self.selected_id()
        self._syncing = True
        try:
            self.model.sync(self.controller.queue.jobs)
            if selected is not None and self.selected_id() != selected:
                row = self.model.row_of(selected)  # a moved row is taken out and put back
                if row >= 0:
                    self.view.setCurrentIndex(self.model.index(row, 0))
                else:
                    self.view.selectionModel().clearCurrentIndex()
                    self.view.clearSelection()
        finally:
            self._syncing = False
        self.pause_button.setText("Resume" if self.controller.paused else "Pause")
        self._sync_buttons()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, StepProgress):
            self._step(event)
        elif isinstance(event, JobStarted):  # a long queue follows the job that runs now
            self._scroll_to_running(event.job_id)

    def _scroll_to_running(self, job_id: str) -> None:
        row = self.model.row_of(job_id)
        if row >= 0:
            self.view.scrollTo(self.model.index(row, 0))

    def _step(self, step: StepProgress) -> None:
        """The running job's row shows how far it is and its newest preview, as Krita's job
        list does (a latent-resolution frame: cheap to draw at thumbnail size)."""
        now = time.monotonic()
        if not step.newest or now - self._shown_step_at < ROW_UPDATE_SECONDS and step.step < step.total:
            return  # a glance at the list needs no more; the engine thread shares the GIL with this
        job = self.controller.job(step.job_id)
        if job is None or job.status is not JobStatus.RUNNING or self.model.row_of(step.job_id) < 0:
            return
        self._shown_step_at = now
        total = max(1, step.total * job.request.batch_count)
        done = step.image_index * step.total + step.step
        progress = f"{100 * done // total}%"
        icon = None
        look = self.model.running_look
        if step.preview is not None:
            pixmap = QPixmap.fromImage(qimage_from_rgb(step.preview))
            icon = QIcon(pixmap.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio))
        elif look is not None and look[0] == job.id:
            icon = look[2]
        self.model.running_look = (job.id, progress, icon)
        self.model.show_running(job.id)

    def row_text(self, row: int) -> str:
        item = self.model.item(row)
        return item.text() if item is not None else ""

    def row_icon(self, row: int) -> QIcon:
        item = self.model.item(row)
        return item.icon() if item is not None else QIcon()

    def row_count(self) -> int:
        return self.model.rowCount()

    def row_ids(self) -> list[str]:
        return self.model.ids()

    def selected_id(self) -> str | None:
        index = self.view.currentIndex()
        job = self.model.job_at(index.row()) if index.isValid() else None
        return job.id if job is not None else None

    def select(self, job_id: str) -> None:
        row = self.model.row_of(job_id)
        if row >= 0:
            self.view.setCurrentIndex(self.model.index(row, 0))

    def _selected_job(self) -> Job | None:
        job_id = self.selected_id()
        return self.controller.job(job_id) if job_id else None

    def _sync_buttons(self) -> None:
        jobs = self.controller.queue.jobs
        self.cancel_all_button.setEnabled(any(not job.status.finished for job in jobs))
        self.clear_button.setEnabled(any(job.status.finished for job in jobs))
        self.pause_button.setEnabled(bool(jobs) or self.controller.paused)  # Resume stays, even on an empty queue
        job = self._selected_job()
        self.cancel_button.setEnabled(job is not None and not job.status.finished)
        self.duplicate_button.setEnabled(job is not None)
        self.remove_button.setEnabled(job is not None and job.status is not JobStatus.RUNNING)

    def _current_changed(self, *_args) -> None:
        if self._syncing:
            return  # a row moved or went away under the selection: refresh() settles it
        self._sync_buttons()
        job_id = self.selected_id()
        if job_id:
            self.jobSelected.emit(job_id)

    def _double_clicked(self, index: QModelIndex) -> None:
        job = self.model.job_at(index.row())
        if job is not None and job.status.finished and job.paths:  # a running batch keeps its live preview
            self.imageRequested.emit(job.paths[-1])

    # -- the artist's commands -----------------------------------------------------------------
    def cancel_selected(self) -> None:
        job_id = self.selected_id()
        if job_id:
            self.controller.cancel_job(job_id)

    def run_selected_next(self) -> None:
        job_id = self.selected_id()
        if job_id:
            self.controller.run_next(job_id)

    def duplicate_selected(self) -> None:
        job_id = self.selected_id()
        if job_id:
            self.controller.duplicate_job(job_id)

    def remove_selected(self) -> None:
        job_id = self.selected_id()
        if job_id:
            self.controller.remove_job(job_id)

    def toggle_pause(self) -> None:
        if self.controller.paused:
            self.controller.resume()
        else:
            self.controller.pause()

    def _context_menu(self, pos) -> None:
        index = self.view.indexAt(pos)
        if index.isValid():
            self.view.setCurrentIndex(index)
        menu = self.context_menu()
        menu.exec(self.view.viewport().mapToGlobal(pos))
        menu.deleteLater()

    def context_menu(self) -> QMenu:
        """The right-click menu for the selected job (a method so tests can read it)."""
        menu = QMenu(self)
        menu.setObjectName("queueMenu")
        job = self._selected_job()
        if job is not None:
            menu.addAction("Run next", self.run_selected_next).setEnabled(job.runnable)
            menu.addAction("Cancel", self.cancel_selected).setEnabled(not job.status.finished)
            menu.addAction("Duplicate", self.duplicate_selected)
            menu.addAction("Remove", self.remove_selected).setEnabled(job.status is not JobStatus.RUNNING)
            menu.addSeparator()
        menu.addAction("Resume queue" if self.controller.paused else "Pause queue", self.toggle_pause)
        menu.addAction("Cancel all", self.controller.cancel_all)
        menu.addAction("Clear finished", self.controller.clear_finished)
        return menu


class RestoredJobsBar(QFrame):
    """"N queued jobs from last time: Run / Discard", above the canvas; never a dialog."""

    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("restoredJobsBar")
        self.setStyleSheet("#restoredJobsBar { background: #2d4660; border-radius: 4px; } QLabel { color: #eef4fa; }")
        self.label = QLabel()
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("runRestoredButton")
        self.discard_button = QPushButton("Discard")
        self.discard_button.setObjectName("discardRestoredButton")
        layout = QHBoxLayout(self)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.run_button)
        layout.addWidget(self.discard_button)
        self.run_button.clicked.connect(self.run)
        self.discard_button.clicked.connect(self.discard)
        self.hide()

    def offer(self) -> bool:
        """Show the bar when the last session left jobs; True when it did."""
        count = len(self.controller.restored_jobs())
        if not count:
            self.hide()
            return False
        self.label.setText(f"{count} queued job{'s' if count != 1 else ''} from last time.")
        self.show()
        return True

    def run(self) -> None:
        self.hide()
        self.controller.run_restored()

    def discard(self) -> None:
        self.hide()
        self.controller.discard_restored()
