"""Generate, Cancel, and everything a job shows while it runs and when it ends: the previews on
the canvas (every one kept for the step scrubber), the progress bar and time left, the image
shown at once and marked saved when the writer has it on disk, an unsaved image kept with
"Save as…", and the closing line ("Done in 4.2 s. Saved …").

Job state lives in the controller's queue; this keeps only what it shows, between the
controller's signals (JobTracker).
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QObject, Signal

from studio.core.canvas.mask_ops import PreviewCompositor
from studio.core.errors import ErrorKind, StudioError
from studio.core.events import Event, ImageFinished, ImageSaved, ImageSaveFailed, JobFailed, JobStarted, StepProgress
from studio.core.generation.request import InvalidRequest
from studio.core.storage.output_folder import UnsavedImage
from studio.ui.progress import ProgressClock
from studio.ui.step_scrubber import PreviewCost, PreviewStore


class JobView(QObject):
    jobEnded = Signal(str)  # "finished", "cancelled" or "failed", once the window has shown it

    def __init__(self, window):
        """`window`: the MainWindow, for the widgets this shows things in (canvas, panel,
        progress bar, scrubber, banner) and its image input and output actions."""
        super().__init__(window)
        self.window = window
        self.controller = window.controller
        self.jobs = JobTracker()
        self.previews = PreviewStore()
        self.last_image_path = None
        self._clock = ProgressClock()
        self._compositor: PreviewCompositor | None = None  # inpaint previews onto the kept area
        c = self.controller  # lives in the GUI thread: its signals arrive here directly
        c.backendEvent.connect(self._on_event)
        c.jobEnded.connect(self._job_ended)
        # The scrubber belongs to the image on the canvas: every change of it (a result, an
        # undo, a reopened image, "Use as input") checks whose steps, if any, it shows.
        window.canvas.undo_stack.listeners.append(self.sync_scrubber)
        window.canvas.documentChanged.connect(self.sync_scrubber)

    @property
    def running(self) -> bool:
        return self.controller.running_job is not None

    # -- the artist's commands -----------------------------------------------------------------
    def generate(self, first: bool = False) -> str | None:
        """Queue a job from the panel: it starts at once when nothing runs, else it waits its
        turn (`first`: ahead of the waiting jobs). Returns its id (None when the request was
        refused, with the reason shown)."""
        w = self.window
        state = self.controller.state
        state.current()
        if not state.model_path():
            w.banner.show_error(StudioError(ErrorKind.BAD_INPUT, "No model chosen yet.",
                                            "Choose one in the Model list above."))
            return None
        try:
            request = self.controller.request(*w.image_input.save_inputs(state.settings.mode), w.panel.style_chip.style)
        except InvalidRequest as exc:
            w.banner.show_error(StudioError(ErrorKind.BAD_INPUT, str(exc)))
            return None
        except OSError as exc:  # the input image and mask could not be written (disk full...)
            w.banner.show_error(StudioError(ErrorKind.DISK, f"The input image could not be saved: {exc.strerror or exc}",
                                            "Free some disk space, then Generate again."))
            return None
        if not w.outputs.check_folder():
            return None
        if w.outputs.unsaved is None:  # an unsaved image keeps its banner and "Save as…" until it is saved
            w.banner.hide()
        w.model_status.clear_notice()
        state.save()
        compositor = self._preview_compositor(request)
        queued = self.running
        job_id = self.controller.generate(request, first)
        self.jobs.compositors[job_id] = compositor
        if self.controller.paused:
            w.say(self.paused_text())
        elif queued:
            place = "next, ahead of the others" if first else "last"
            w.say(f"Queued {place}: {len(self.controller.queue.run_order())} job(s) waiting.")
        return job_id

    def paused_text(self) -> str:
        waiting = len(self.controller.queue.run_order())
        return f"Queue paused: {waiting} waiting. Resume it in the Queue panel to run {'it' if waiting == 1 else 'them'}."

    def generate_first(self) -> str | None:
        """Ctrl+Shift+Enter: this job runs next, before the ones already waiting."""
        return self.generate(first=True)

    def cancel(self) -> None:
        """Cancel/Esc: the running job stops at its next step; queued jobs stay queued."""
        job_id = self.controller.running_job
        if job_id is not None:
            self.controller.cancel_job(job_id)
            self.window.say("Cancelling…")

    def _preview_compositor(self, request) -> PreviewCompositor | None:
        """Inpaint previews go onto the kept part of the input, blurred as the engine blends the
        final image; whatever the artist paints meanwhile, the job's own input and mask are used."""
        canvas = self.window.canvas
        if request.mode.value != "inpaint" or canvas.document is None or canvas.mask is None:
            return None
        return PreviewCompositor(canvas.document, canvas.mask.copy(), request.mask_blur, (request.width, request.height),
                                 request.inpaint_area.value == "only_masked", request.inpaint_padding)

    # -- a job runs ----------------------------------------------------------------------------
    def _running_request(self):
        job_id = self.controller.running_job
        job = self.controller.job(job_id) if job_id else None
        return job.request if job is not None else None

    def _on_event(self, event: Event) -> None:
        match event:
            case JobStarted():
                self._job_started(event.job_id)
            case StepProgress():
                self._step(event)
            case ImageFinished():
                self._image_ready(event)
            case ImageSaved():
                self._image_saved(event)
            case ImageSaveFailed():
                self._save_failed(event)
            case JobFailed():
                self._job_failed(event)

    def _job_started(self, job_id: str) -> None:
        job = self.controller.job(job_id)
        if job is None:
            return
        w = self.window
        self.jobs.started(job_id)
        self._compositor = self.jobs.compositors.get(job_id)
        w.scrubber.clear()
        w.panel.last_seed.setText(f"Seed used: {job.request.seed}")
        w.panel.cancel_button.setEnabled(True)
        w.progress.setRange(0, 0)  # busy until the first step reports its total
        self._clock.reset()
        w.say("Starting…")

    def _step(self, step) -> None:
        """Every step's preview goes into the scrubber's store; the canvas draws only the newest
        of those that arrive together (a GUI that fell behind catches up in one paint)."""
        request = self._running_request()
        if request is None or step.job_id != self.controller.running_job:
            return
        w = self.window
        if step.preview is not None:
            size = (request.width, request.height)
            self.previews.add_step(step.job_id, step.image_index, step.step, step.total, step.preview, size)
            if step.newest:
                started = time.perf_counter()
                if self._compositor is not None:  # inpainting: only the masked part is being made
                    w.canvas.show_pixels(self._compositor(step.preview))
                else:
                    w.canvas.show_pixels(step.preview, size)
                self.jobs.preview_cost.add(time.perf_counter() - started, step.seconds_per_step)
        if not step.newest:
            return  # the progress and time left follow the newest
        self._clock.add(step.seconds_per_step)
        total = step.total * request.batch_count
        done = step.image_index * step.total + step.step
        w.progress.setRange(0, total)
        w.progress.setValue(done)
        label = self._clock.text(step.step, step.total, total - done)
        if request.batch_count > 1:
            label = f"Image {step.image_index + 1}/{request.batch_count} · {label}"
        w.say(with_note(label, self.jobs.preview_cost.text()))

    def _image_ready(self, event: ImageFinished) -> None:
        """The decoded image, shown at once; it becomes the canvas's result (an undo step, with
        its file) when the writer thread has it on disk (_image_saved)."""
        w = self.window
        self.jobs.image_ready(event)
        self.previews.set_final(event.job_id, event.image_index, event.image)
        if event.path is None:
            w.canvas.show_pixels(event.image, what="unsaved")
        else:  # a backend that saved it itself
            w.canvas.show_result(event.image, event.path)
            w.canvas_toolbar.sync()
        if event.note and event.note not in self.jobs.notes:
            self.jobs.notes.append(event.note)
        w.say(with_note("Saving…", event.note))

    def _image_saved(self, event: ImageSaved) -> None:
        w = self.window
        ready = self.jobs.written(event.job_id, event.image_index)
        pixels = ready.image if ready is not None else None
        self.previews.set_path(event.job_id, event.image_index, event.path)
        if pixels is not None:
            w.canvas.show_result(pixels, event.path)  # one undo step per image
            w.canvas_toolbar.sync()
        self.last_image_path = event.path
        self.jobs.saved_paths.setdefault(event.job_id, []).append(event.path)
        w.say(with_note(f"Saved {event.path}", ready.note if ready is not None else ""))
        self._maybe_ended(event.job_id)

    def _save_failed(self, event: ImageSaveFailed) -> None:
        """Not on disk (disk full, read-only folder): the image stays on the canvas with the error
        and "Save as…"; nothing is lost."""
        self.jobs.written(event.job_id, event.image_index)
        self.jobs.write_failed.add(event.job_id)
        error = event.error
        self.window.outputs.keep_unsaved(UnsavedImage(error.message, error.hint, event.image, event.request, error.kind))
        self._maybe_ended(event.job_id)

    def _job_failed(self, event: JobFailed) -> None:
        error = event.error
        if isinstance(error, UnsavedImage):
            # A backend that saves itself could not write the image: it stays on the canvas.
            self.window.outputs.keep_unsaved(error)
            return
        self.window.banner.show_error(error)
        self.jobs.errors[event.job_id] = error

    # -- a job ends ----------------------------------------------------------------------------
    def _job_ended(self, job_id: str, status: str) -> None:
        """The backend is done with the job; the window says so once its images are written."""
        self.jobs.ended(job_id, status)
        if job_id == self.jobs.current and self.controller.running_job is None:
            self._idle()
        if status == "done":
            self.window.progress.setValue(self.window.progress.maximum())
        self._maybe_ended(job_id)

    def _maybe_ended(self, job_id: str) -> None:
        outcome = self.jobs.outcome(job_id)
        if outcome is None:
            return  # still running, or images of it still on their way to the disk
        status, seconds = outcome
        paths = self.jobs.saved_paths.pop(job_id, [])
        error = self.jobs.errors.get(job_id)
        self.jobs.forget(job_id)
        if job_id == self.jobs.current or self.controller.running_job is None:
            self._say_ended(status, seconds, paths, error)
        self.sync_scrubber()
        self.jobEnded.emit({"done": "finished"}.get(status, status))

    def _say_ended(self, status: str, seconds: float, paths: list, error=None) -> None:
        w = self.window
        if status == "failed":
            if w.outputs.unsaved is None:  # why, in a line (the banner has the hint)
                w.say(f"Generation failed: {error.message}" if isinstance(error, StudioError) else "Generation failed.")
            return
        if status == "cancelled":
            kept = f" ({len(paths)} image(s) of the batch were saved)" if paths else ""
            w.say(f"Cancelled{kept}.")
            if not paths:  # "Seed used" would name a seed no image was made with
                w.panel.last_seed.setText(w.panel.last_seed.text().replace("Seed used:", "Cancelled run's seed:"))
            return
        if w.outputs.unsaved is None:
            w.banner.hide()  # an error from an earlier job is history now
        saved = f"Saved {paths[-1]}" if paths else ""
        cost = self.jobs.preview_cost.text()
        text = with_note(f"Done in {seconds:.1f} s. {saved} {cost}".rstrip(), " ".join(self.jobs.notes))
        if self.controller.paused and self.controller.queue.run_order():
            text = f"{text} {self.paused_text()}"
        w.say(text)

    def _idle(self) -> None:
        """Nothing runs now: the canvas's own view back (after a cancel or failure), progress idle."""
        w = self.window
        if w.canvas.showing == "preview":
            w.canvas.show_current()
        self._compositor = None
        w.panel.set_running(False)
        w.progress.setRange(0, 1)
        w.progress.setValue(0)

    # -- the scrubber ----------------------------------------------------------------------------
    def show_step(self, pixels: np.ndarray, size: tuple[int, int] | None) -> None:
        self.window.canvas.show_pixels(pixels, size, what="step")

    def show_final(self) -> None:
        self.window.canvas.show_current()

    def sync_scrubber(self) -> None:
        """The steps of the image on the canvas, while they are in memory and no job runs (a
        run's previews take the canvas); hidden for any other image."""
        scrubber = getattr(self.window, "scrubber", None)
        if scrubber is None:
            return  # still building the window
        canvas = self.window.canvas
        job_id = None
        if self.controller.running_job is None and canvas.view == "result" and canvas.result is not None:
            job_id = self.previews.job_showing(canvas.result, canvas.result_path)
        if job_id is None:
            if scrubber.job_id is not None or scrubber.isVisible():
                scrubber.clear()
        elif job_id != scrubber.job_id:
            scrubber.show_run(job_id)

    def job_selected(self, job_id: str) -> None:
        """A job picked in the queue: the scrubber stays with the image on the canvas (a double
        click opens the job's image, and with it its steps)."""
        self.sync_scrubber()


def with_note(text: str, note: str) -> str:
    """A status line with the engine's note for the artist (memory, a VAE retried in fp32), if any."""
    return f"{text.rstrip()} {note}" if note else text


class JobTracker:
    """What the window remembers about the jobs it shows, between the controller's signals: the
    job on the canvas, its images on their way to the disk, and how each job ended. A job is
    "ended" for the artist once the backend is done with it *and* its images are written
    (or failed to be): only then is "Saved …" true."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.current: str | None = None  # the job whose previews the canvas shows
        self.compositors: dict[str, object] = {}  # inpaint preview compositors, by job
        self.notes: list[str] = []  # the current job's ImageFinished notes
        self.saved_paths: dict[str, list] = {}
        self.write_failed: set[str] = set()
        self.errors: dict[str, object] = {}  # why a job failed (JobFailed's error), until it is said
        self._started: dict[str, float] = {}
        self._unwritten: dict[tuple[str, int], object] = {}  # (job, image index) -> ImageFinished
        self._ended: dict[str, tuple[str, float]] = {}
        self.preview_cost = PreviewCost()

    def started(self, job_id: str) -> None:
        self.current = job_id
        self.notes = []
        self._started[job_id] = self.clock()
        self.preview_cost.reset()

    def image_ready(self, event) -> None:
        if event.path is None:
            self._unwritten[event.job_id, event.image_index] = event

    def written(self, job_id: str, index: int):
        """The ImageFinished of an image now written (or failed); None if unknown."""
        return self._unwritten.pop((job_id, index), None)

    def ended(self, job_id: str, status: str) -> None:
        started = self._started.pop(job_id, None)
        self._ended[job_id] = (status, self.clock() - started if started is not None else 0.0)

    def outcome(self, job_id: str) -> tuple[str, float] | None:
        """(status, seconds) once the job ended and its images are written; a failed write
        makes it "failed"."""
        if job_id not in self._ended or any(key[0] == job_id for key in self._unwritten):
            return None
        status, seconds = self._ended[job_id]
        return ("failed" if job_id in self.write_failed else status), seconds

    def forget(self, job_id: str) -> None:
        self._ended.pop(job_id, None)
        self.compositors.pop(job_id, None)
        self.write_failed.discard(job_id)
        self.errors.pop(job_id, None)
