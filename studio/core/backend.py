"""What the application layer needs from whatever generates its images: the `Backend` protocol.

The local engine thread (studio.backends.local.backend.LocalBackend) is one implementation,
the scripted fake in tests/fakes.py another; a remote engine (a ComfyUI server) must fit too.
So the protocol speaks only in plain data: models are named by id (a path for the local
engine, a name for a server), requests are GenerationRequests, and images come back as pixels
in the events (ImageFinished with path None): the caller writes them, wherever they came from.

Threading contract: every method is called from one thread (the GUI thread), returns at once
and never blocks on the work; listeners are called on that same thread, in the order the
events happened. Qt is not part of the contract: a backend may use it to cross threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from studio.core.events import Event
from studio.core.generation.request import GenerationRequest

EventListener = Callable[[Event], None]


@dataclass(frozen=True)
class BackendModel:
    """A model a backend can load: `id` is what load_model and GenerationRequest.model take."""

    id: str
    name: str
    label: str = ""  # family, e.g. "SDXL"


@runtime_checkable
class Backend(Protocol):
    def subscribe(self, listener: EventListener) -> None:
        """Call `listener` with every event from now on: model events (no job id) and the
        events of each job, tagged with the id run_job was given."""
        ...

    def load_model(self, model: str, device: str = "auto", vae: str = "") -> None:
        """Load (or keep) a model; ModelLoading/ModelLoaded or ModelFailed follow."""
        ...

    def run_job(self, job_id: str, request: GenerationRequest) -> None:
        """Start one job. Its images arrive unsaved (ImageFinished with path None); it ends with
        exactly one of JobFinished, JobCancelled or JobFailed. The caller runs one job at a
        time: it waits for that end before the next run_job."""
        ...

    def cancel_job(self, job_id: str) -> None:
        """Stop that job at its next step (JobCancelled follows); no effect on any other job,
        and none at all when it has already ended."""
        ...

    def set_model_folders(self, folders: Sequence[str]) -> None:
        """The artist's model folders (settings.model_dirs): where list_models looks, and where
        LoRAs and embeddings are found for the jobs run after this call. A remote backend has
        its own folders and ignores them."""
        ...

    def list_models(self) -> list[BackendModel]:
        """The models this backend can load (may read folders: call it off the GUI thread
        when there can be many)."""
        ...

    def set_memory(self, options: Mapping[str, object]) -> None:
        """Memory options by name (studio.engine.memory.MemoryOptions' fields for the local
        engine); a backend ignores the ones it has no use for."""
        ...

    def close(self) -> None:
        """Cancel the running job and deliver no more events."""
        ...

    def stop(self, wait_ms: int = 0) -> bool:
        """Stop the worker (a thread, a connection) after close(): the running step is
        cancelled. Waits at most `wait_ms`; True when it has stopped. Safe to call twice."""
        ...

    def stopped(self) -> bool:
        """Whether the worker has stopped since stop() (polled while the window closes)."""
        ...
