"""The Queue dock: every job the controller knows, in run order, and the commands on them.

The list is a view of `StudioController.queue` and nothing more: it is rebuilt from the queue
at each `queueChanged`, and every action (cancel, pause, duplicate, drag to reorder, remove)
goes to the controller, which changes the queue and says so. Jobs show their prompt (elided),
their status and, once an image of theirs is on disk, a thumbnail; a double click on a finished one shows its image.

Also here: the bar that offers the jobs the last session left unrun ("N queued jobs from last
time: Run / Discard"), non-modal, as InvokeAI and Krita's job list do it.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.events import Event, StepProgress
from studio.core.storage.job_queue import Job, JobStatus
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


def job_label(job: Job, progress: str = "") -> str:
    """Two lines: the prompt (elided), then the status (with `progress`, e.g. "45%", while it
    runs), the size and steps."""
    prompt = " ".join(job.request.prompt.split()) or "(no prompt)"
    if len(prompt) > PROMPT_CHARS:
        prompt = prompt[: PROMPT_CHARS - 1] + "…"
    status = STATUS_TEXT[job.status] + (f" {progress}" if progress else "")
    if job.restored and job.status is JobStatus.PENDING:
        status = "From last time"
    size = f"{job.request.width}×{job.request.height}, {job.request.steps} steps"
    batch = f", {job.request.batch_count} images" if job.request.batch_count > 1 else ""
    return f"{prompt}\n{status} · {size}{batch}"


class QueuePanel(QWidget):
    """The list (objectName `queueView`) and its buttons. `jobSelected(job_id)` tells the window
    which job the artist looks at (the scrubber shows its steps while they are in memory)."""

    jobSelected = Signal(str)
    imageRequested = Signal(str)  # a finished job double-clicked: show its (last) image

    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.controller = controller
        self._thumbs: dict[str, QIcon] = {}  # by image path: read once, small
        self._blank: QIcon | None = None
        self._shown_step_at = 0.0  # when the running row last showed a step (time.monotonic)
        self._running_look: tuple[str, str, QIcon | None] | None = None  # (job id, progress, preview icon)
        self.view = QListWidget()
        self.view.setObjectName("queueView")
        self.view.setAccessibleName("Job queue")
        self.view.setIconSize(QSize(THUMB, THUMB))
        self.view.setUniformItemSizes(True)
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.view.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.view.model().rowsMoved.connect(self._rows_moved)
        self.view.currentItemChanged.connect(self._current_changed)
        self.view.itemDoubleClicked.connect(self._double_clicked)

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
        """Rebuild the list from the queue, keeping the selection."""
        selected = self.selected_id()
        self.view.blockSignals(True)  # not the model's: the view learns its rows from them
        self.view.clear()
        for job in self.controller.queue.jobs:
            item = QListWidgetItem(job_label(job))
            item.setData(JOB_ID_ROLE, job.id)
            item.setToolTip(job.request.prompt + (f"\n{job.error}" if job.error else ""))
            item.setIcon(self._thumbnail(job) or self._placeholder())  # an empty square keeps the text aligned
            if job.status is JobStatus.RUNNING:
                self._show_running(item, job)
            item.setSizeHint(QSize(0, THUMB + 8))
            self.view.addItem(item)
            if job.id == selected:
                self.view.setCurrentItem(item)
        self.view.blockSignals(False)
        self.pause_button.setText("Resume" if self.controller.paused else "Pause")
        self._sync_buttons()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, StepProgress):
            self._step(event)

    def _step(self, step: StepProgress) -> None:
        """The running job's row shows how far it is and its newest preview, as Krita's job
        list does (a latent-resolution frame: cheap to draw at thumbnail size)."""
        now = time.monotonic()
        if not step.newest or now - self._shown_step_at < ROW_UPDATE_SECONDS and step.step < step.total:
            return  # a glance at the list needs no more; the engine thread shares the GIL with this
        job = self.controller.job(step.job_id)
        item = self._item(step.job_id)
        if job is None or item is None or job.status is not JobStatus.RUNNING:
            return
        self._shown_step_at = now
        total = max(1, step.total * job.request.batch_count)
        done = step.image_index * step.total + step.step
        progress = f"{100 * done // total}%"
        icon = None
        if step.preview is not None:
            pixmap = QPixmap.fromImage(qimage_from_rgb(step.preview))
            icon = QIcon(pixmap.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio))
        elif self._running_look is not None and self._running_look[0] == job.id:
            icon = self._running_look[2]
        self._running_look = (job.id, progress, icon)
        self._show_running(item, job)

    def _show_running(self, item: QListWidgetItem, job: Job) -> None:
        """The running job's row as its last step left it (a refresh rebuilds every row)."""
        look = self._running_look
        if look is None or look[0] != job.id:
            return
        item.setText(job_label(job, look[1]))
        if look[2] is not None:
            item.setIcon(look[2])

    def _item(self, job_id: str) -> QListWidgetItem | None:
        for row in range(self.view.count()):
            item = self.view.item(row)
            if item.data(JOB_ID_ROLE) == job_id:
                return item
        return None

    def _placeholder(self) -> QIcon:
        if self._blank is None:
            pixmap = QPixmap(THUMB, THUMB)
            pixmap.fill(QColor(128, 128, 128, 40))  # a faint square in either theme
            self._blank = QIcon(pixmap)
        return self._blank

    def _thumbnail(self, job: Job) -> QIcon | None:
        path = job.thumbnail
        if not path:
            return None
        icon = self._thumbs.get(path)
        if icon is None:
            reader = QImageReader(path)
            size = reader.size()
            if size.isValid() and size.width() > 0 and size.height() > 0:
                reader.setScaledSize(size.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio))
            image = reader.read()
            if image.isNull():
                return None  # removed or unreadable since: the job is still listed
            icon = self._thumbs[path] = QIcon(QPixmap.fromImage(image))
        return icon

    def row_ids(self) -> list[str]:
        return [self.view.item(row).data(JOB_ID_ROLE) for row in range(self.view.count())]

    def selected_id(self) -> str | None:
        item = self.view.currentItem()
        return item.data(JOB_ID_ROLE) if item is not None else None

    def select(self, job_id: str) -> None:
        for row, found in enumerate(self.row_ids()):
            if found == job_id:
                self.view.setCurrentRow(row)

    def _selected_job(self) -> Job | None:
        job_id = self.selected_id()
        return self.controller.job(job_id) if job_id else None

    def _sync_buttons(self) -> None:
        job = self._selected_job()
        self.cancel_button.setEnabled(job is not None and not job.status.finished)
        self.duplicate_button.setEnabled(job is not None)
        self.remove_button.setEnabled(job is not None and job.status is not JobStatus.RUNNING)

    def _current_changed(self, *_args) -> None:
        self._sync_buttons()
        job_id = self.selected_id()
        if job_id:
            self.jobSelected.emit(job_id)

    def _double_clicked(self, item: QListWidgetItem) -> None:
        job = self.controller.job(item.data(JOB_ID_ROLE))
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

    def _rows_moved(self, _parent, start: int, _end: int, _dest, _row: int) -> None:
        """A drag dropped a job at a new row: the queue takes the order the list now shows."""
        before = [job.id for job in self.controller.queue.jobs]
        after = self.row_ids()
        if start >= len(before) or sorted(before) != sorted(after):
            QTimer.singleShot(0, self.refresh)
            return
        moved = before[start]
        # After the drop has finished with the list: refresh() rebuilds it.
        QTimer.singleShot(0, lambda: self.controller.move_job(moved, after.index(moved)))

    def _context_menu(self, pos) -> None:
        item = self.view.itemAt(pos)
        if item is not None:
            self.view.setCurrentItem(item)
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
