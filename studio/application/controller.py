"""StudioController: the studio without its window. Owns the generation state (the view-model
the panel edits) and the job queue, drives a Backend, writes the finished images off the
critical path and adds them to the history; the window only sends it the artist's commands
and connects to its signals.

It lives in the GUI thread. Backend events arrive there (the Backend contract); the image
writer's results come from its own thread through a queued signal (`_written`), so every slot
here, and every signal it emits, runs in the GUI thread.

Jobs run one at a time: Generate while a job runs queues the new one; when the backend reports
the end of a job (finished, cancelled or failed, whichever), the next runnable job starts unless
the queue is paused. A failed job is marked failed and the queue goes on.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, Signal

from studio.application.closing import BackendCloser
from studio.application.generation_state import GenerationState
from studio.core.backend import Backend, BackendModel
from studio.core.errors import ErrorKind, StudioError
from studio.core.events import (
    JOB_EVENTS,
    Event,
    ImageFinished,
    ImageSaved,
    ImageSaveFailed,
    JobCancelled,
    JobFailed,
    JobFinished,
)
from studio.core.generation.model_fields import fit_request
from studio.core.generation.request import GenerationRequest
from studio.core.generation.settings import Settings, request_from_settings
from studio.core.storage.history import History, HistoryEntry
from studio.core.storage.image_writer import ImageWriter, WriteResult
from studio.core.storage.job_queue import Job, JobQueue, JobStatus
from studio.core.storage.outputs import OutputFolder, OutputWriter
from studio.core.storage.paths import unsaved_dir
from studio.core.storage.presets import Style, apply_style

log = logging.getLogger(__name__)
WRITER_CLOSE_SECONDS = 30.0  # closing waits this long for queued images to reach the disk


class StudioController(QObject):
    # Every backend event and every write result, unchanged, once the controller has handled it
    # (the typed events of studio.core.events: model loading/loaded/failed, job started, steps,
    # images finished, saved or not saved, job finished/cancelled/failed).
    backendEvent = Signal(object)
    # What the controller itself works out:
    jobQueued = Signal(str)  # job id
    jobEnded = Signal(str, str)  # job id, JobStatus value ("done", "failed", "cancelled"), once its images are written
    queueChanged = Signal()
    historyAdded = Signal(object)  # HistoryEntry
    message = Signal(str)  # something for the status line (queue file trouble, history trouble, a paused queue)

    _written = Signal(object)  # WriteResult, from the writer thread
    _rescued = Signal(object)  # WriteResult of the fallback folder, from its writer thread

    def __init__(self, backend: Backend, queue: JobQueue, outputs: OutputWriter | OutputFolder,
                 history: History | None = None, state: GenerationState | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.state = state if state is not None else GenerationState(Settings(), parent=self)
        self.backend = backend
        self.queue = queue
        self.history = history
        self.queue.on_save_failed = self.message.emit
        self.writer = ImageWriter(outputs, self._written.emit)
        # Images the output folder refused: kept in the data folder until the artist saves them elsewhere.
        self.fallback = ImageWriter(OutputWriter(unsaved_dir()), self._rescued.emit)
        self._written.connect(self._on_written)  # bound methods of a GUI-thread object: queued
        self._rescued.connect(self._on_rescued)
        self._running: str | None = None  # the job the backend runs now
        self._unwritten: dict[str, int] = {}  # images of a job handed to the writer and not yet reported
        self._ended: dict[str, JobStatus] = {}  # how the backend ended a job whose images are still being written
        self._unsaved: dict[str, str] = {}  # job id -> why one of its images is not in the output folder
        self._closed = False
        backend.subscribe(self._on_event)
        backend.set_model_folders(self.state.settings.model_dirs)

    # -- the artist's commands ---------------------------------------------------------------
    def request(self, init_image: str | None = None, mask: str | None = None,
                style: Style | None = None) -> GenerationRequest:
        """The generation state as a checked request (InvalidRequest says what is wrong).
        `init_image`/`mask`: the input files of img2img and inpaint. The style wraps the
        prompts here, so the image's metadata holds the final prompt (as A1111 writes it) while
        the state keeps the artist's words."""
        model = self.state.model_path()
        request = request_from_settings(self.state.current(), model, init_image, mask)
        prompt, negative = apply_style(style, request.prompt, request.negative_prompt)
        request = dataclasses.replace(request, prompt=prompt, negative_prompt=negative)
        # What the model does not read is not sent: the panel shows those fields as unused.
        return fit_request(request, self.state.facts_for(model)).validated()

    def generate(self, request: GenerationRequest, first: bool = False) -> str:
        """Queue a job; it starts at once when nothing runs and the queue is not paused.
        `first`: ahead of every waiting job (InvokeAI's "Add to front of queue")."""
        job = self.queue.add(request)
        if first:
            self._put_first(job.id)
        self.jobQueued.emit(job.id)
        self.queueChanged.emit()
        self._start_next()
        return job.id

    def run_next(self, job_id: str) -> None:
        """A waiting job moves ahead of every other waiting job."""
        job = self.queue.get(job_id)
        if job is not None and job.runnable and self._put_first(job_id):
            self.queueChanged.emit()

    def cancel_job(self, job_id: str) -> None:
        """A pending job leaves the run order; the running one stops at its next step."""
        was = self.queue.cancel(job_id)
        if was is JobStatus.RUNNING:
            self.backend.cancel_job(job_id)
        elif was is JobStatus.PENDING:
            self.jobEnded.emit(job_id, JobStatus.CANCELLED.value)
        self.queueChanged.emit()

    def cancel_all(self) -> None:
        pending = [job.id for job in self.queue.jobs if job.status is JobStatus.PENDING]
        running = self.queue.cancel_all()
        if running is not None:
            self.backend.cancel_job(running.id)
        for job_id in pending:
            self.jobEnded.emit(job_id, JobStatus.CANCELLED.value)
        self.queueChanged.emit()

    def pause(self) -> None:
        """The running job finishes; no new one starts until resume()."""
        self.queue.set_paused(True)
        self.queueChanged.emit()

    def resume(self) -> None:
        self.queue.set_paused(False)
        self.queueChanged.emit()
        self._start_next()

    @property
    def paused(self) -> bool:
        return self.queue.paused

    def move_job(self, job_id: str, index: int) -> None:
        if self.queue.move(job_id, index):
            self.queueChanged.emit()

    def duplicate_job(self, job_id: str) -> str | None:
        copy = self.queue.duplicate(job_id)
        if copy is None:
            return None
        self.jobQueued.emit(copy.id)
        self.queueChanged.emit()
        self._start_next()
        return copy.id

    def remove_job(self, job_id: str) -> None:
        if self.queue.remove(job_id):
            self.queueChanged.emit()

    def clear_finished(self) -> None:
        if self.queue.clear_finished():
            self.queueChanged.emit()

    def restored_jobs(self) -> list[Job]:
        """Jobs the last session left unrun: the window asks whether to run them."""
        return self.queue.restored_jobs()

    def run_restored(self) -> None:
        if self.queue.accept_restored():
            self.queueChanged.emit()
            self._start_next()

    def discard_restored(self) -> None:
        if self.queue.discard_restored():
            self.queueChanged.emit()

    def job(self, job_id: str) -> Job | None:
        return self.queue.get(job_id)

    @property
    def running_job(self) -> str | None:
        return self._running

    @property
    def writing(self) -> bool:
        """Some job's images are still on their way to the disk (that job is not done yet)."""
        return any(self._ended.values()) or any(count > 0 for count in self._unwritten.values())

    # -- models ---------------------------------------------------------------------------
    def load_model(self, model: str, device: str = "auto", vae: str = "") -> None:
        self.backend.load_model(model, device, vae)

    def set_memory(self, options: Mapping[str, object]) -> None:
        self.backend.set_memory(options)

    def list_models(self) -> list[BackendModel]:
        return self.backend.list_models()

    # -- history --------------------------------------------------------------------------
    def add_to_history(self, path: Path | str, request: GenerationRequest) -> HistoryEntry | None:
        """Record a saved image in the history (what the window's Recall does today); None
        when there is no history or its index could not be written (said on `message`)."""
        if self.history is None:
            return None
        try:
            entry = self.history.add(path, request)
        except OSError as exc:
            self.message.emit(f"The history could not be updated: {exc.strerror or exc}")
            return None
        self.historyAdded.emit(entry)
        return entry

    # -- closing ----------------------------------------------------------------------------
    def close(self, timeout: float = WRITER_CLOSE_SECONDS) -> bool:
        """Cancel the running job and write the images already made. Pending jobs stay in the
        saved queue for the next start. False when the writes did not end within `timeout`."""
        if self._closed:
            return True
        self._closed = True
        if self._running is not None:
            self.backend.cancel_job(self._running)
        self.backend.close()
        written = self.writer.close(timeout)
        self._deliver_written_now()  # the paths of those images go into the queue too (and refused ones to the fallback)
        written = self.fallback.close(timeout) and written
        self._deliver_written_now()
        return self.queue.close(timeout) and written

    def closer(self, parent: QObject | None = None) -> BackendCloser:
        """After close(): stops the backend's worker, waiting for the running step without
        freezing the window (`begin`, then `done`)."""
        return BackendCloser(self.backend, parent=parent)

    # -- inside ----------------------------------------------------------------------------
    def _put_first(self, job_id: str) -> bool:
        """Move a runnable job to where the first runnable job stands now (the running one is
        not runnable: it stays where it is). False when it is first already."""
        order = [job.id for job in self.queue.run_order()]
        if not order or order[0] == job_id:
            return False
        ids = [job.id for job in self.queue.jobs]
        return self.queue.move(job_id, ids.index(order[0]))  # it stands after that one: no shift

    def _start_next(self) -> None:
        if self._closed or self._running is not None:
            return
        job = self.queue.next_pending()
        if job is None:
            return
        self.queue.start(job.id)
        self._running = job.id
        self.queueChanged.emit()
        self.backend.set_model_folders(self.state.settings.model_dirs)  # LoRAs and embeddings are found beside them
        self.backend.run_job(job.id, job.request)

    def _on_event(self, event: Event) -> None:
        """Every backend event, in the order they happened; the one place they are handled.
        The window sees each event before what follows from it (the job's end, the next job)."""
        if isinstance(event, JOB_EVENTS) and self.queue.get(event.job_id) is None:
            return  # not one of ours (another caller's job, or one removed meanwhile)
        if not isinstance(event, ImageSaved | ImageSaveFailed):
            self.backendEvent.emit(event)  # write results are passed on by _on_written, once handled
        match event:
            case ImageFinished():
                self._image_finished(event)
            case ImageSaved() | ImageSaveFailed():  # a backend that saved (or failed to save) it itself
                self._on_written(event)
            case JobFinished():
                self._backend_ended(event.job_id, JobStatus.DONE)
            case JobCancelled():
                self._backend_ended(event.job_id, JobStatus.CANCELLED)
            case JobFailed():
                log.error("Job failed (%s): %s", event.error.kind.value, event.error.one_line())
                self._backend_ended(event.job_id, JobStatus.FAILED, event.error.one_line())

    def _image_finished(self, event: ImageFinished) -> None:
        if event.path is not None:  # a backend that saved it itself
            self._on_written(ImageSaved(event.job_id, event.image_index, event.path, event.request))
            return
        try:
            self.writer.submit(event.job_id, event.image_index, event.image, event.request)
        except RuntimeError:  # closed meanwhile: the image is not lost, the window still has it
            self.backendEvent.emit(ImageSaveFailed(event.job_id, event.image_index, _closed_error(), event.image,
                                            event.request))
            return
        self._unwritten[event.job_id] = self._unwritten.get(event.job_id, 0) + 1

    def _on_written(self, result: WriteResult) -> None:
        if result.job_id in self._unwritten:
            self._unwritten[result.job_id] -= 1
        if isinstance(result, ImageSaved):
            self.queue.add_path(result.job_id, result.path)
            self.add_to_history(result.path, result.request)
        else:
            self._save_failed(result)
        self.backendEvent.emit(result)
        self.queueChanged.emit()
        self._end_when_written(result.job_id)

    def _save_failed(self, result: ImageSaveFailed) -> None:
        """The output folder refused an image: the queue pauses (every later image would fail the
        same way), the image goes to the fallback folder, and its job is not counted as done."""
        self._unsaved[result.job_id] = result.error.one_line()
        if not self.queue.paused:
            self.queue.set_paused(True)
            self.message.emit(f"Queue paused: {result.error.one_line()} Images are kept in {unsaved_dir()} "
                              "until you save them; Resume when the output folder works again.")
        try:
            self.fallback.submit(result.job_id, result.image_index, result.image, result.request)
        except RuntimeError:
            pass  # closing: the window still holds the pixels ("Save as…")

    def _on_rescued(self, result: WriteResult) -> None:
        if isinstance(result, ImageSaved):
            self.message.emit(f"An image the output folder refused is kept at {result.path}.")
        else:
            log.error("An image could not be kept in the fallback folder either: %s", result.error.one_line())

    def _deliver_written_now(self) -> None:
        """Results the writer reported while closing are still queued for the event loop."""
        QCoreApplication.sendPostedEvents(self)

    def _backend_ended(self, job_id: str, status: JobStatus, error: str = "") -> None:
        """The backend is free for the next job; this one ends once its images are written."""
        if self._running == job_id:
            self._running = None
        self._ended[job_id] = status
        if status is JobStatus.FAILED:
            self._unsaved.setdefault(job_id, error)
        if not self._end_when_written(job_id) and status is JobStatus.DONE:
            self.queue.mark_saving(job_id)
            self.queueChanged.emit()
        self._start_next()

    def _end_when_written(self, job_id: str) -> bool:
        """End the job if the backend has and none of its images is still being written."""
        status = self._ended.get(job_id)
        if status is None or self._unwritten.get(job_id, 0) > 0:
            return False
        del self._ended[job_id]
        self._unwritten.pop(job_id, None)
        error = self._unsaved.pop(job_id, "")
        if status is JobStatus.DONE and error:
            status = JobStatus.FAILED  # not in the output folder: not done
        if status is JobStatus.DONE:
            self.queue.finish(job_id)
        elif status is JobStatus.FAILED:
            self.queue.fail(job_id, error)
        else:
            self.queue.mark_cancelled(job_id)
        self.jobEnded.emit(job_id, status.value)
        self.queueChanged.emit()
        return True


def _closed_error() -> StudioError:
    return StudioError(ErrorKind.INTERNAL, "The image was made while the studio was closing and was not saved.",
                       "Use Save as… to keep it.")
