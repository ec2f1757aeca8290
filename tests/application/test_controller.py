"""StudioController without a window (issue 12 items 1, 5 and 7), driven through the fake
backend: queue order, cancel one of three, pause/resume, duplicate, crash restore, a failed job
that does not stop the queue, images written off the critical path and added to the history."""

from __future__ import annotations

import numpy as np
import pytest

from studio.application.controller import StudioController
from studio.core.events import (
    ImageFinished,
    ImageSaved,
    ImageSaveFailed,
    JobStarted,
    ModelFailed,
    ModelLoaded,
    StepProgress,
)
from studio.core.generation.request import GenerationRequest
from studio.core.storage.history import History
from studio.core.storage.job_queue import JobQueue, JobStatus
from studio.core.storage.outputs import OutputWriter, read_request
from tests.fakes import FakeBackend, Script


def req(n: int, **changes) -> GenerationRequest:
    return GenerationRequest(prompt=f"job {n}", seed=n, steps=3, width=64, height=64, model="/models/fake", **changes)


# The events of `backendEvent` the tests follow, by the name they are recorded under.
EVENT_NAMES = {JobStarted: "jobStarted", ImageFinished: "imageReady", ImageSaved: "imageSaved",
               ImageSaveFailed: "saveFailed", ModelLoaded: "modelLoaded", ModelFailed: "modelFailed"}


class Recorder:
    """Every controller signal, and the events above, in order."""

    def __init__(self, controller: StudioController):
        self.log: list[tuple] = []
        for name in ("jobQueued", "jobEnded", "message", "historyAdded"):
            getattr(controller, name).connect(self._recorder(name))
        controller.backendEvent.connect(self._event)

    def _event(self, event) -> None:
        name = EVENT_NAMES.get(type(event))
        if name == "jobStarted":
            self.log.append((name, event.job_id))
        elif name is not None:
            self.log.append((name, event))

    def _recorder(self, name):
        def record(*args):
            self.log.append((name, *args))
        return record

    def of(self, name):
        return [entry[1:] for entry in self.log if entry[0] == name]


@pytest.fixture
def make(qapp, tmp_path):
    made = []

    def make_controller(script: Script | None = None, queue: JobQueue | None = None, history: History | None = None):
        backend = FakeBackend(script)
        queue = queue if queue is not None else JobQueue(tmp_path / "queue.json")
        controller = StudioController(backend, queue, OutputWriter(tmp_path / "outputs"), history)
        made.append(controller)
        return controller, backend, Recorder(controller)

    yield make_controller
    for controller in made:
        controller.close(10)


def settle(qtbot, controller):
    """Wait for the writer thread's results to reach the GUI thread: a job is done only once its
    images are on disk."""
    assert controller.writer.flush(10)
    qtbot.waitUntil(lambda: not controller.writer.pending and not controller.writing, timeout=5000)
    qtbot.wait(1)  # the queued results


def test_generate_while_a_job_runs_queues_and_jobs_run_in_order(make, qtbot):
    controller, backend, rec = make()
    a = controller.generate(req(0))
    b = controller.generate(req(1))
    c = controller.generate(req(2))
    assert backend.calls == [("run_job", a)], "one job at a time: the others wait in the queue"
    assert [j.status for j in controller.queue.jobs] == [JobStatus.RUNNING, JobStatus.PENDING, JobStatus.PENDING]
    backend.run_all()
    settle(qtbot, controller)
    assert [call[1] for call in backend.calls] == [a, b, c]
    assert rec.of("jobEnded") == [(a, "done"), (b, "done"), (c, "done")]
    assert rec.of("jobStarted") == [(a,), (b,), (c,)]
    assert controller.running_job is None


def test_reorder_changes_what_runs_next(make, qtbot):
    controller, backend, rec = make()
    a, b, c = (controller.generate(req(n)) for n in range(3))
    controller.move_job(c, 1)  # right after the running job
    backend.run_all()
    settle(qtbot, controller)
    assert [call[1] for call in backend.calls] == [a, c, b]


def test_a_job_queued_first_and_run_next_jump_the_waiting_ones(make, qtbot):
    controller, backend, rec = make()
    a, b, c = (controller.generate(req(n)) for n in range(3))
    d = controller.generate(req(3), first=True)  # Ctrl+Shift+Enter: ahead of b and c, not of the running a
    controller.run_next(c)  # then c ahead of d
    controller.run_next(c)  # first already: nothing moves
    backend.run_all()
    settle(qtbot, controller)
    assert [call[1] for call in backend.calls if call[0] == "run_job"] == [a, c, d, b]


def test_cancel_one_of_three(make, qtbot):
    controller, backend, rec = make()
    a, b, c = (controller.generate(req(n)) for n in range(3))
    controller.cancel_job(b)
    backend.run_all()
    settle(qtbot, controller)
    assert [call[1] for call in backend.calls if call[0] == "run_job"] == [a, c]
    assert [controller.job(x).status for x in (a, b, c)] == [JobStatus.DONE, JobStatus.CANCELLED, JobStatus.DONE]
    assert (b, "cancelled") in rec.of("jobEnded")


def test_cancel_the_running_job_mid_run_then_the_next_starts(make, qtbot):
    controller, backend, rec = make()
    a, b = controller.generate(req(0)), controller.generate(req(1))

    def cancel_at_step_2(event):
        if isinstance(event, StepProgress) and event.job_id == a and event.step == 2:
            controller.cancel_job(a)

    controller.backendEvent.connect(cancel_at_step_2)
    backend.run_all()
    settle(qtbot, controller)
    assert ("cancel_job", a) in backend.calls
    assert rec.of("jobEnded") == [(a, "cancelled"), (b, "done")]
    assert backend.script.job_ids == [a, b]


def test_cancel_all(make, qtbot):
    controller, backend, rec = make()
    a, b, c = (controller.generate(req(n)) for n in range(3))
    controller.cancel_all()
    backend.run_all()
    settle(qtbot, controller)
    assert [controller.job(x).status for x in (a, b, c)] == [JobStatus.CANCELLED] * 3
    assert [call for call in backend.calls if call[0] == "run_job"] == [("run_job", a)]


def test_pause_lets_the_running_job_finish_and_resume_starts_the_next(make, qtbot):
    controller, backend, rec = make()
    a, b = controller.generate(req(0)), controller.generate(req(1))
    controller.pause()
    backend.run_all()
    settle(qtbot, controller)
    assert controller.job(a).status is JobStatus.DONE
    assert controller.job(b).status is JobStatus.PENDING
    assert [call[1] for call in backend.calls] == [a]
    c = controller.generate(req(2))
    assert controller.job(c).status is JobStatus.PENDING, "Generate while paused only queues"
    controller.resume()
    backend.run_all()
    settle(qtbot, controller)
    assert [call[1] for call in backend.calls] == [a, b, c]


def test_duplicate_runs_the_same_request_again(make, qtbot):
    controller, backend, rec = make()
    a = controller.generate(req(0))
    backend.run_all()
    settle(qtbot, controller)
    copy = controller.duplicate_job(a)
    backend.run_all()
    settle(qtbot, controller)
    assert copy != a and controller.job(copy).status is JobStatus.DONE
    assert backend.script.requests[0] == backend.script.requests[1]


def test_a_failed_job_does_not_stop_the_queue(make, qtbot):
    controller, backend, rec = make(Script(raise_at_step=1))  # an engine fault in the first job
    a, b, c = (controller.generate(req(n)) for n in range(3))
    backend.run_next()
    settle(qtbot, controller)
    backend.script.raise_at_step = None
    backend.script.fail_at_step = 2  # the second runs out of memory (a JobFailed event)
    backend.run_next()
    settle(qtbot, controller)
    backend.script.fail_at_step = None
    backend.run_all()
    settle(qtbot, controller)
    assert controller.job(a).status is JobStatus.FAILED and "fake engine fault" in controller.job(a).error
    assert controller.job(b).status is JobStatus.FAILED and "ran out of memory" in controller.job(b).error
    assert controller.job(c).status is JobStatus.DONE
    assert rec.of("jobEnded") == [(a, "failed"), (b, "failed"), (c, "done")]


def test_images_are_shown_at_once_then_written_and_added_to_the_history(make, qtbot, tmp_path):
    history = History(tmp_path / "history.jsonl")
    controller, backend, rec = make(history=history)
    ready = []
    controller.backendEvent.connect(lambda event: ready.append(event) if isinstance(event, ImageFinished) else None)
    a = controller.generate(req(0, batch_count=2))
    backend.run_all()
    settle(qtbot, controller)
    assert [e.path for e in ready] == [None, None], "shown before they are on disk"
    assert all(isinstance(e, ImageFinished) and e.job_id == a for e in ready)
    settle(qtbot, controller)
    saved = [args[0] for args in rec.of("imageSaved")]
    assert [s.image_index for s in saved] == [0, 1]
    assert controller.job(a).paths == [str(s.path) for s in saved]
    assert controller.job(a).thumbnail == str(saved[0].path)
    assert [read_request(s.path).seed for s in saved] == [0, 1]
    assert [e.path for e in history.entries()] == [str(saved[1].path), str(saved[0].path)]
    assert len(rec.of("historyAdded")) == 2


def test_a_failed_write_keeps_the_pixels_and_says_so(make, qtbot, tmp_path):
    controller, backend, rec = make()
    (tmp_path / "outputs").write_text("a file where the folder should be")
    controller.generate(req(0))
    backend.run_all()
    settle(qtbot, controller)
    settle(qtbot, controller)
    (failed,) = [args[0] for args in rec.of("saveFailed")]
    assert failed.image.shape == (64, 64, 3) and np.any(failed.image)
    assert "could not be saved" in failed.error.message and "Save as" in failed.error.hint
    assert rec.of("imageSaved") == []


def test_crash_restore_of_the_queue(make, qtbot, tmp_path):
    controller, backend, rec = make()
    a, b, c = (controller.generate(req(n)) for n in range(3))
    backend.run_next()  # a finished; b was running when the studio was killed, c pending
    settle(qtbot, controller)
    assert controller.job(b).status is JobStatus.RUNNING
    queue, messages = JobQueue.load(tmp_path / "queue.json")  # what a fresh start reads
    restarted, backend2, _ = make(queue=queue)
    assert [j.id for j in restarted.restored_jobs()] == [b, c]
    assert backend2.calls == [], "restored jobs do not run on their own"
    restarted.run_restored()
    backend2.run_all()
    settle(qtbot, restarted)
    assert [call[1] for call in backend2.calls] == [b, c]
    assert [restarted.job(x).status for x in (a, b, c)] == [JobStatus.DONE] * 3


def test_discarding_restored_jobs(make, tmp_path):
    controller, backend, rec = make()
    controller.generate(req(0))
    restarted, backend2, _ = make(queue=JobQueue.load(tmp_path / "queue.json")[0])
    restarted.discard_restored()
    assert len(restarted.queue) == 0 and backend2.calls == []


def test_model_events_and_events_of_other_jobs(make, qtbot):
    controller, backend, rec = make()
    controller.load_model("/models/fake", "cpu")
    backend.run_all()
    settle(qtbot, controller)
    assert rec.of("modelLoaded")[0][0].model == "/models/fake"
    backend.run_job("someone-elses", req(9))  # not queued by the controller
    backend.run_all()
    settle(qtbot, controller)
    assert rec.of("jobEnded") == [], "events of unknown jobs are ignored"


def test_a_model_that_fails_to_load(make, qtbot):
    from studio.core.errors import ErrorKind, StudioError

    controller, backend, rec = make(Script(load_error=StudioError(ErrorKind.BAD_MODEL, "Not a model.")))
    controller.load_model("/models/broken")
    backend.run_all()
    settle(qtbot, controller)
    (failed,) = rec.of("modelFailed")
    assert failed[0].error.message == "Not a model." and failed[0].model == "/models/broken"


def test_close_cancels_the_running_job_and_keeps_pending_ones_for_next_time(make, tmp_path):
    controller, backend, rec = make()
    a, b = controller.generate(req(0)), controller.generate(req(1))
    assert controller.close(5)
    assert ("cancel_job", a) in backend.calls and backend.closed
    restored = JobQueue.load(tmp_path / "queue.json")[0].restored_jobs()
    assert [j.id for j in restored] == [a, b]
