"""The job queue (issue 12 item 5): every operation, the run order, saving at every change,
crash restore (one queue writes the file, a fresh one reads it, as after a kill) and damaged files."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.core.generation.request import GenerationRequest
from studio.core.storage.job_queue import MAX_FINISHED_KEPT, JobQueue, JobStatus, queue_file


def req(n: int) -> GenerationRequest:
    return GenerationRequest(prompt=f"job {n}", seed=n, steps=2, width=64, height=64)


def prompts(jobs) -> list[str]:
    return [job.request.prompt for job in jobs]


@pytest.fixture
def path(tmp_path):
    return tmp_path / "queue.json"


def test_jobs_run_in_the_order_they_were_added(path):
    queue = JobQueue(path)
    ids = [queue.add(req(n)).id for n in range(3)]
    assert len(set(ids)) == 3
    assert prompts(queue.run_order()) == ["job 0", "job 1", "job 2"]
    assert queue.next_pending().id == ids[0]
    queue.start(ids[0])
    assert queue.next_pending() is None, "one job at a time"
    queue.finish(ids[0])
    assert queue.next_pending().id == ids[1]


def test_move_changes_the_run_order_and_clamps_the_index(path):
    queue = JobQueue(path)
    a, b, c = (queue.add(req(n)).id for n in range(3))
    assert queue.move(c, 0)
    assert [j.id for j in queue.run_order()] == [c, a, b]
    assert queue.move(c, 99)
    assert [j.id for j in queue.run_order()] == [a, b, c]
    assert queue.move(b, -5)
    assert [j.id for j in queue.jobs] == [b, a, c]
    assert not queue.move("nope", 0)


def test_cancel_pending_leaves_the_run_order_and_cancel_running_sets_its_event(path):
    queue = JobQueue(path)
    a, b, c = (queue.add(req(n)).id for n in range(3))
    queue.start(a)
    assert queue.cancel(b) is JobStatus.PENDING
    assert queue.get(b).status is JobStatus.CANCELLED
    assert queue.get(b).cancel_event.is_set()
    assert [j.id for j in queue.run_order()] == [c]
    assert queue.cancel(a) is JobStatus.RUNNING
    assert queue.get(a).status is JobStatus.RUNNING, "running until the backend reports the end"
    assert queue.get(a).cancel_event.is_set()
    assert not queue.get(c).cancel_event.is_set(), "each job has its own cancel event"
    queue.mark_cancelled(a)
    assert queue.get(a).status is JobStatus.CANCELLED
    assert queue.cancel("nope") is None


def test_cancel_all(path):
    queue = JobQueue(path)
    a, b, c = (queue.add(req(n)).id for n in range(3))
    queue.start(a)
    running = queue.cancel_all()
    assert running.id == a and running.cancel_event.is_set()
    assert [queue.get(x).status for x in (b, c)] == [JobStatus.CANCELLED] * 2
    assert queue.run_order() == []


def test_pause_lets_nothing_start_and_resume_continues(path):
    queue = JobQueue(path)
    a = queue.add(req(0)).id
    queue.set_paused(True)
    assert queue.next_pending() is None
    queue.set_paused(False)
    assert queue.next_pending().id == a


def test_duplicate_goes_right_after_the_original_with_a_new_id(path):
    queue = JobQueue(path)
    a, b = (queue.add(req(n)).id for n in range(2))
    queue.start(a)
    queue.finish(a)
    copy = queue.duplicate(a)
    assert copy.id not in (a, b)
    assert copy.request == queue.get(a).request
    assert copy.status is JobStatus.PENDING
    assert [j.id for j in queue.jobs] == [a, copy.id, b]
    assert queue.duplicate("nope") is None


def test_results_errors_and_thumbnail(path):
    queue = JobQueue(path)
    a, b = (queue.add(req(n)).id for n in range(2))
    queue.start(a)
    queue.add_path(a, "/out/1.png")
    queue.add_path(a, "/out/2.png")
    queue.finish(a)
    assert queue.get(a).paths == ["/out/1.png", "/out/2.png"]
    assert queue.get(a).thumbnail == "/out/1.png"
    queue.start(b)
    queue.fail(b, "The device ran out of memory.")
    assert (queue.get(b).status, queue.get(b).error) == (JobStatus.FAILED, "The device ran out of memory.")
    with pytest.raises(ValueError):
        queue.start(b)


def test_remove_and_clear_finished(path):
    queue = JobQueue(path)
    a, b, c = (queue.add(req(n)).id for n in range(3))
    queue.start(a)
    assert not queue.remove(a), "the running job cannot be removed"
    queue.finish(a)
    assert queue.remove(b)
    assert queue.clear_finished() == 1
    assert [j.id for j in queue.jobs] == [c]


def test_every_change_is_on_disk_at_once(path):
    queue = JobQueue(path)
    a = queue.add(req(0)).id
    assert json.loads(path.read_text())["jobs"][0]["id"] == a
    queue.set_paused(True)
    assert json.loads(path.read_text())["paused"] is True
    queue.start(a)
    assert json.loads(path.read_text())["jobs"][0]["status"] == "running"
    assert not list(path.parent.glob(".queue.json.*.tmp")), "written atomically, nothing left over"


def test_crash_restore_brings_pending_and_interrupted_jobs_back_held(path):
    first = JobQueue(path)
    done, running, pending, cancelled = (first.add(req(n)).id for n in range(4))
    first.start(done)
    first.add_path(done, "/out/1.png")
    first.finish(done)
    first.start(running)
    first.cancel(cancelled)
    # The process dies here: nothing closes `first`. A fresh queue reads what it left.
    second, messages = JobQueue.load(path)
    assert [j.id for j in second.jobs] == [done, running, pending, cancelled]
    assert [j.status for j in second.jobs] == [JobStatus.DONE, JobStatus.PENDING, JobStatus.PENDING, JobStatus.CANCELLED]
    assert {j.id for j in second.restored_jobs()} == {running, pending}
    assert second.get(done).paths == ["/out/1.png"]
    assert second.next_pending() is None, "restored jobs wait for the artist"
    assert any("2 job(s)" in m for m in messages)
    second.add(req(9))
    assert prompts(second.run_order()) == ["job 9"], "new jobs run meanwhile"
    assert [j.id for j in second.accept_restored()] == [running, pending]
    assert prompts(second.run_order()) == ["job 1", "job 2", "job 9"]
    saved = {job["id"]: job["restored"] for job in json.loads(path.read_text())["jobs"]}
    assert saved[running] is False and saved[pending] is False, "the decision is saved"


def test_discard_restored(path):
    first = JobQueue(path)
    first.add(req(0))
    second, _ = JobQueue.load(path)
    assert len(second.discard_restored()) == 1
    assert len(JobQueue.load(path)[0]) == 0


def test_default_location_is_the_data_folder(studio_home):
    queue, messages = JobQueue.load()
    assert (queue.path, messages) == (queue_file(), [])
    queue.add(req(0))
    assert (studio_home / "queue.json").is_file()


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"jobs": 5}', b"\xff\xfe", b'{"format": 99, "jobs": []}'])
def test_a_damaged_file_is_set_aside_and_the_queue_starts_empty(path, content):
    path.write_bytes(content)
    queue, messages = JobQueue.load(path)
    assert len(queue) == 0
    assert len(messages) == 1 and "set aside as queue-damaged-" in messages[0]
    aside = list(path.parent.glob("queue-damaged-*.json"))
    assert len(aside) == 1 and aside[0].read_bytes() == content, "the damaged file is kept as it was"
    queue.add(req(0))
    assert JobQueue.load(path)[0].jobs[0].request == req(0)


def test_damaged_jobs_are_skipped_and_the_others_kept(path):
    good = JobQueue(path)
    a = good.add(req(0)).id
    data = json.loads(path.read_text())
    data["jobs"] += [{"id": "x"}, {"id": 5, "request": {}}, {"id": "y", "request": {"steps": "many"}}, dict(data["jobs"][0])]
    path.write_text(json.dumps(data))
    queue, messages = JobQueue.load(path)
    assert [j.id for j in queue.jobs] == [a]
    assert "4 damaged job(s)" in messages[0]


def test_a_failed_save_is_reported_once_and_the_queue_keeps_working(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    said = []
    queue = JobQueue(blocker / "queue.json", on_save_failed=said.append)  # a folder that is a file
    a = queue.add(req(0)).id
    queue.add(req(1))
    assert len(said) == 1 and "could not be saved" in said[0]
    assert queue.next_pending().id == a


def test_finished_jobs_kept_are_bounded(path):
    queue = JobQueue(path)
    for n in range(MAX_FINISHED_KEPT + 5):
        job = queue.add(req(n))
        queue.start(job.id)
        queue.finish(job.id)
    assert len(queue) == MAX_FINISHED_KEPT
    assert queue.jobs[0].request.prompt == "job 5", "the oldest go first"


operations = st.lists(
    st.tuples(st.sampled_from(["add", "move", "cancel", "cancel_all", "pause", "resume", "duplicate", "start", "finish",
                               "fail", "remove"]), st.integers(0, 7)),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_any_sequence_of_operations_keeps_the_invariants_and_survives_a_restart(tmp_path_factory, ops):
    path = tmp_path_factory.mktemp("q") / "queue.json"
    queue = JobQueue(path)
    for op, n in ops:
        ids = [j.id for j in queue.jobs]
        target = ids[n % len(ids)] if ids else "none"
        if op == "add":
            queue.add(req(n))
        elif op == "move":
            queue.move(target, n)
        elif op == "cancel":
            queue.cancel(target)
        elif op == "cancel_all":
            queue.cancel_all()
        elif op in ("pause", "resume"):
            queue.set_paused(op == "pause")
        elif op == "duplicate":
            queue.duplicate(target)
        elif op == "start":
            job = queue.next_pending()
            if job is not None:
                queue.start(job.id)
        elif op in ("finish", "fail"):
            running = queue.running()
            if running is not None:
                queue.finish(running.id) if op == "finish" else queue.fail(running.id, "x")
        elif op == "remove":
            queue.remove(target)
        assert len({j.id for j in queue.jobs}) == len(queue.jobs), "ids are unique"
        assert sum(j.status is JobStatus.RUNNING for j in queue.jobs) <= 1
        assert queue.run_order() == [j for j in queue.jobs if j.status is JobStatus.PENDING]
        if queue.paused:
            assert queue.next_pending() is None
    restored, _ = JobQueue.load(path)
    assert [j.id for j in restored.jobs] == [j.id for j in queue.jobs], "the order survives"
    assert restored.paused == queue.paused
    for before, after in zip(queue.jobs, restored.jobs, strict=True):
        assert after.request == before.request
        if before.status in (JobStatus.PENDING, JobStatus.RUNNING):
            assert (after.status, after.restored) == (JobStatus.PENDING, True)
        else:
            assert (after.status, after.restored) == (before.status, False)


def test_in_the_background_the_newest_snapshot_is_written_and_a_burst_is_written_once(path, monkeypatch):
    import threading

    import studio.core.storage.job_queue as job_queue

    gate, writes = threading.Event(), []
    real_write = job_queue.write_text_atomic

    def slow_write(target, text):
        gate.wait(5)  # the disk is slow: changes pile up meanwhile
        writes.append(threading.current_thread().name)
        real_write(target, text)

    monkeypatch.setattr(job_queue, "write_text_atomic", slow_write)
    queue = JobQueue(path, background=True)
    ids = [queue.add(req(n)).id for n in range(5)]
    queue.start(ids[0])
    queue.finish(ids[0])  # 7 changes, none waited for by this thread
    gate.set()
    assert queue.flush(5)
    assert 1 <= len(writes) <= 2 and set(writes) == {"queue-saver"}
    fresh, _ = JobQueue.load(path)
    assert [job.status for job in fresh.jobs] == [JobStatus.DONE] + [JobStatus.PENDING] * 4
    assert queue.close(5)
    assert not any(t.name == "queue-saver" for t in threading.enumerate())


def test_a_background_save_that_fails_is_said_once(path, tmp_path):
    said = []
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    queue = JobQueue(blocked / "queue.json", on_save_failed=said.append, background=True)
    for n in range(3):
        queue.add(req(n))
        queue.flush(5)
    assert len(said) == 1 and "could not be saved" in said[0]
    assert len(queue.jobs) == 3  # it goes on in memory
    queue.close(5)


def test_the_background_saver_survives_an_unexpected_error(path, monkeypatch, caplog):
    import studio.core.storage.job_queue as job_queue

    real_write, failures = job_queue.write_text_atomic, []

    def write_once_broken(target, text):
        if not failures:
            failures.append(True)
            raise TypeError("something unexpected")
        real_write(target, text)

    monkeypatch.setattr(job_queue, "write_text_atomic", write_once_broken)
    queue = JobQueue(path, background=True)
    queue.add(req(0))
    assert queue.flush(5)
    queue.add(req(1))  # the next change is still written
    assert queue.flush(5) and queue.close(5)
    assert prompts(JobQueue.load(path)[0].jobs) == ["job 0", "job 1"]
    assert "could not be saved" in caplog.text
