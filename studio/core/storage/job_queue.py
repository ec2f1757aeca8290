"""The job queue: what will run, what runs, and what ran, saved to disk at every change.

Pure Python (no Qt): the controller (studio.application.controller) drives it, tests drive it
directly. Jobs keep their place in one list, in the order the artist sees them; the run order is
that list's pending jobs, top to bottom, so dragging a job up runs it sooner.

Saved to `queue.json` in the data folder, atomically, after every change: a crash or a kill
loses nothing that was queued. The app's queue saves on a background thread (`background=True`):
the snapshot is taken at the change, the encoding and writing happen off the GUI thread, and a
burst of changes is written once (the newest snapshot wins); `flush()` waits for it.

At the next start, jobs that were pending, or running when the app died, come back as pending
and marked `restored`: they are held (never started on their own) until the artist says to run
them (`accept_restored`) or drops them (`discard_restored`). A damaged file is set aside under a
new name, never overwritten, and the queue starts empty.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from studio.core.generation.request import GenerationRequest, InvalidRequest
from studio.core.storage.atomic import set_aside, write_text_atomic
from studio.core.storage.jsonfile import read_json_object
from studio.core.storage.paths import data_home

log = logging.getLogger(__name__)

QUEUE_FORMAT = 1
MAX_FINISHED_KEPT = 100  # done/failed/cancelled jobs kept for the panel; older ones are forgotten
MAX_QUEUE_BYTES = 50_000_000  # a few KB per job; anything larger is not a file we wrote


def queue_file() -> Path:
    return data_home() / "queue.json"


class JobStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    # Denoised, but its images are not all on disk yet (the writer thread is behind). Not done:
    # a restart runs it again. It does not hold up the next job.
    SAVING = "saving"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]  # unique across restarts: restored jobs keep theirs


@dataclass
class Job:
    id: str
    request: GenerationRequest
    status: JobStatus = JobStatus.PENDING
    created: float = 0.0  # seconds since the epoch
    paths: list[str] = field(default_factory=list)  # images on disk, in batch order of arrival
    error: str = ""  # one line, for a failed job
    thumbnail: str = ""  # an image of the job to show (its first saved image)
    restored: bool = False  # came back after a restart: held until the artist decides
    # Set when the job is cancelled; not saved. The backend's own cancel is what stops a
    # running job (Backend.cancel_job); this lets anything else holding the job see it too.
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    _request_dict: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def runnable(self) -> bool:
        return self.status is JobStatus.PENDING and not self.restored

    def to_dict(self) -> dict[str, Any]:
        if self._request_dict is None:  # the request never changes: encoded once, not at every save
            self._request_dict = self.request.to_dict()
        return {
            "id": self.id,
            "request": self._request_dict,
            "status": self.status.value,
            "created": self.created,
            "paths": list(self.paths),
            "error": self.error,
            "thumbnail": self.thumbnail,
            "restored": self.restored,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Job:
        """ValueError/TypeError/InvalidRequest for anything that is not a job we wrote."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
            raise ValueError("not a job")
        if not isinstance(data.get("request"), dict):
            raise ValueError("a job without a request")
        request = GenerationRequest.from_dict(data["request"])
        status = JobStatus(data.get("status", "pending"))
        paths = data.get("paths", [])
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ValueError("bad paths")
        created = data.get("created", 0.0)
        texts = {key: data.get(key, "") for key in ("error", "thumbnail")}
        if not all(isinstance(value, str) for value in texts.values()):
            raise ValueError("bad text")
        return cls(
            id=data["id"],
            request=request,
            status=status,
            created=float(created) if type(created) in (int, float) and abs(created) < 1e12 else 0.0,
            paths=paths,
            restored=bool(data.get("restored", False)),
            **texts,
        )


class JobQueue:
    """The jobs in display order. Every change is saved at once (`path` None: memory only).

    A failed save keeps the queue working in memory; `on_save_failed` hears why (once per
    failure streak, so a full disk is one message, not one per step)."""

    def __init__(self, path: Path | None = None, on_save_failed: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time, background: bool = False):
        self.path = path
        self.on_save_failed = on_save_failed  # in background mode, called on the saver's thread
        self.clock = clock
        self.jobs: list[Job] = []
        self.paused = False
        self._save_failing = False
        self._saver = _BackgroundSaver(self._write) if background and path is not None else None

    # -- reading ----------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        return next((job for job in self.jobs if job.id == job_id), None)

    def __len__(self) -> int:
        return len(self.jobs)

    def running(self) -> Job | None:
        return next((job for job in self.jobs if job.status is JobStatus.RUNNING), None)

    def run_order(self) -> list[Job]:
        """The jobs that will run, in the order they will (restored ones wait for a decision)."""
        return [job for job in self.jobs if job.runnable]

    def next_pending(self) -> Job | None:
        """The job to start now: None while paused or while a job runs."""
        if self.paused or self.running() is not None:
            return None
        return next(iter(self.run_order()), None)

    def restored_jobs(self) -> list[Job]:
        return [job for job in self.jobs if job.restored and job.status is JobStatus.PENDING]

    # -- the artist's operations ---------------------------------------------------------------
    def add(self, request: GenerationRequest, job_id: str | None = None) -> Job:
        job = Job(job_id or new_job_id(), request, created=self.clock())
        if self.get(job.id) is not None:
            raise ValueError(f"job {job.id} is already queued")
        self.jobs.append(job)
        self._changed()
        return job

    def move(self, job_id: str, index: int) -> bool:
        """Put the job at `index` of the list (clamped into range); False for an unknown job."""
        job = self._take(job_id)
        if job is None:
            return False
        self.jobs.insert(max(0, min(index, len(self.jobs))), job)
        self._changed()
        return True

    def cancel(self, job_id: str) -> JobStatus | None:
        """Cancel one job. A pending one leaves the run order at once (shown as cancelled); a
        running one gets its cancel event set and stays running until the backend reports the
        end (`mark_cancelled`). Returns the status the job had (None: unknown job)."""
        job = self.get(job_id)
        if job is None:
            return None
        was = job.status
        job.cancel_event.set()
        if was is JobStatus.PENDING:
            job.status = JobStatus.CANCELLED
            job.restored = False
            self._changed()
        return was

    def cancel_all(self) -> Job | None:
        """Cancel every pending job (restored ones too) and the running one; returns the running job."""
        running = None
        for job in self.jobs:
            if job.status is JobStatus.PENDING:
                job.status = JobStatus.CANCELLED
                job.restored = False
                job.cancel_event.set()
            elif job.status is JobStatus.RUNNING:
                job.cancel_event.set()
                running = job
        self._changed()
        return running

    def set_paused(self, paused: bool) -> None:
        """Paused: the running job finishes, no new one starts."""
        if self.paused != paused:
            self.paused = paused
            self._changed()

    def duplicate(self, job_id: str) -> Job | None:
        """A new pending job with the same request, right after the original."""
        original = self.get(job_id)
        if original is None:
            return None
        copy = Job(new_job_id(), original.request, created=self.clock())
        self.jobs.insert(self.jobs.index(original) + 1, copy)
        self._changed()
        return copy

    def remove(self, job_id: str) -> bool:
        """Forget a job that is not running (the panel's "Remove"); False otherwise."""
        job = self.get(job_id)
        if job is None or job.status is JobStatus.RUNNING:
            return False
        self._take(job_id)
        self._changed()
        return True

    def clear_finished(self) -> int:
        """Forget every done, failed and cancelled job; returns how many."""
        before = len(self.jobs)
        self.jobs = [job for job in self.jobs if not job.status.finished]
        if len(self.jobs) != before:
            self._changed()
        return before - len(self.jobs)

    def accept_restored(self) -> list[Job]:
        """Run the restored jobs (they join the run order where they stand)."""
        jobs = self.restored_jobs()
        for job in jobs:
            job.restored = False
        if jobs:
            self._changed()
        return jobs

    def discard_restored(self) -> list[Job]:
        """Drop the restored jobs."""
        jobs = self.restored_jobs()
        ids = {job.id for job in jobs}
        self.jobs = [job for job in self.jobs if job.id not in ids]
        if jobs:
            self._changed()
        return jobs

    # -- what the backend reports -------------------------------------------------------------
    def start(self, job_id: str) -> Job:
        job = self._job(job_id)
        if job.status is not JobStatus.PENDING:
            raise ValueError(f"job {job_id} is {job.status.value}, not pending")
        job.status = JobStatus.RUNNING
        job.restored = False
        self._changed()
        return job

    def add_path(self, job_id: str, path: Path | str) -> None:
        """An image of the job is on disk (may come after the job ended: the writer is behind)."""
        job = self.get(job_id)
        if job is None:
            return
        job.paths.append(str(path))
        job.thumbnail = job.thumbnail or str(path)
        self._changed()

    def mark_saving(self, job_id: str) -> None:
        """The backend finished the job; its images are still being written."""
        job = self.get(job_id)
        if job is not None and job.status is JobStatus.RUNNING:
            job.status = JobStatus.SAVING
            self._changed()

    def finish(self, job_id: str) -> None:
        self._end(job_id, JobStatus.DONE)

    def fail(self, job_id: str, error: str) -> None:
        self._end(job_id, JobStatus.FAILED, error)

    def mark_cancelled(self, job_id: str) -> None:
        self._end(job_id, JobStatus.CANCELLED)

    # -- files ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": QUEUE_FORMAT, "paused": self.paused, "jobs": [job.to_dict() for job in self.jobs]}

    def save(self) -> bool:
        """Write the queue now (atomic); False when it could not be written."""
        if self._saver is not None:
            self._saver.submit(self.to_dict())
            return self._saver.flush()
        return self._write(self.to_dict())

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the last change is on disk (background mode); False if it took longer."""
        return self._saver.flush(timeout) if self._saver is not None else True

    def close(self, timeout: float = 10.0) -> bool:
        """Write what is pending and end the saver's thread (the queue saves in place after)."""
        saver, self._saver = self._saver, None
        return saver.close(timeout) if saver is not None else True

    def _write(self, snapshot: dict[str, Any]) -> bool:
        if self.path is None:
            return True
        try:
            write_text_atomic(self.path, json.dumps(snapshot, ensure_ascii=False))
        except OSError as exc:
            if not self._save_failing and self.on_save_failed is not None:
                self.on_save_failed(f"The job queue could not be saved ({exc.strerror or exc}); it still runs, "
                                    "but jobs not yet run would be lost if the studio closed now.")
            self._save_failing = True
            return False
        self._save_failing = False
        return True

    @classmethod
    def load(cls, path: Path | None = None, on_save_failed: Callable[[str], None] | None = None,
             clock: Callable[[], float] = time.time, background: bool = False) -> tuple[JobQueue, list[str]]:
        """The queue saved at `path` (default: the data folder's queue.json) and messages for the
        artist. Pending and interrupted jobs come back pending and restored; a damaged file is
        set aside (queue-damaged-TIME.json beside it) and the queue starts empty."""
        path = queue_file() if path is None else Path(path)
        queue = cls(path, on_save_failed, clock, background)
        if not path.exists() and not path.is_symlink():
            return queue, []
        data = read_json_object(path, MAX_QUEUE_BYTES)
        jobs = data.get("jobs") if data is not None else None
        if data is None or not isinstance(jobs, list) or data.get("format", QUEUE_FORMAT) != QUEUE_FORMAT:
            return queue, [queue._set_aside(path, data)]
        loaded, bad = _jobs_from(jobs)
        queue.jobs = loaded
        queue.paused = data.get("paused") is True
        messages = []
        if bad:
            messages.append(f"{bad} damaged job(s) in the saved queue were skipped.")
        restored = queue.restored_jobs()
        if restored:
            messages.append(f"{len(restored)} job(s) from the last session were not run; run or discard them.")
        queue._trim()
        queue.save()
        return queue, messages

    def _set_aside(self, path: Path, data: dict[str, Any] | None) -> str:
        reason = "is from a newer studio" if data is not None and isinstance(data.get("format"), int) \
            and data["format"] > QUEUE_FORMAT else "was damaged"
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.clock()))
        try:
            target = set_aside(path, f"queue-damaged-{stamp}.json")
        except OSError as exc:
            return f"The saved job queue {reason} and could not be set aside ({exc.strerror or exc}); the queue starts empty."
        return f"The saved job queue {reason}; it was set aside as {target.name} and the queue starts empty."

    # -- inside ----------------------------------------------------------------------------
    def _job(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def _take(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        if job is not None:
            self.jobs.remove(job)
        return job

    def _end(self, job_id: str, status: JobStatus, error: str = "") -> None:
        job = self.get(job_id)
        if job is None:
            return
        job.status = status
        job.error = error
        job.restored = False
        self._trim()
        self._changed()

    def _trim(self) -> None:
        finished = [job for job in self.jobs if job.status.finished]
        if len(finished) > MAX_FINISHED_KEPT:
            drop = {job.id for job in finished[: len(finished) - MAX_FINISHED_KEPT]}
            self.jobs = [job for job in self.jobs if job.id not in drop]

    def _changed(self) -> None:
        if self._saver is not None:
            self._saver.submit(self.to_dict())  # the snapshot now; encoded and written on the thread
        else:
            self.save()


class _BackgroundSaver:
    """One daemon thread that writes the newest snapshot handed to it; snapshots that arrive
    while it writes replace each other, so a burst of changes costs one write."""

    def __init__(self, write: Callable[[dict[str, Any]], bool]):
        self._write = write
        self._lock = threading.Condition()
        self._snapshot: dict[str, Any] | None = None
        self._writing = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def submit(self, snapshot: dict[str, Any]) -> None:
        with self._lock:
            self._snapshot = snapshot
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="queue-saver", daemon=True)
                self._thread.start()
            self._lock.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._snapshot is None and not self._writing, timeout)

    def close(self, timeout: float = 10.0) -> bool:
        written = self.flush(timeout)
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return written

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._snapshot is not None or self._stopping)
                if self._snapshot is None:  # stopping, nothing left to write
                    return
                snapshot, self._snapshot, self._writing = self._snapshot, None, True
            try:
                self._write(snapshot)
            except Exception:  # noqa: BLE001 - a dead saver would drop every later change unsaid
                log.exception("the job queue could not be saved")
            finally:
                with self._lock:
                    self._writing = False
                    self._lock.notify_all()


def _jobs_from(items: Iterable[Any]) -> tuple[list[Job], int]:
    """The readable jobs of a saved queue (ids unique; interrupted ones pending and restored),
    and how many were not readable."""
    jobs: list[Job] = []
    seen: set[str] = set()
    bad = 0
    for item in items:
        try:
            job = Job.from_dict(item)
        except (ValueError, TypeError, InvalidRequest, RecursionError):
            bad += 1
            continue
        if job.id in seen:
            bad += 1
            continue
        seen.add(job.id)
        if job.status in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.SAVING):
            job = replace(job, status=JobStatus.PENDING, restored=True, cancel_event=threading.Event())
        jobs.append(job)
    return jobs, bad
