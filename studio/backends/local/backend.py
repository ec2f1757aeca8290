"""The local engine thread as a Backend: a thin adapter over studio.backends.local.worker.EngineWorker.

The worker already runs jobs one at a time in its QThread and delivers its signals queued to
the GUI thread; this object (which lives in the GUI thread) turns them back into the typed
events of the Backend protocol and hands them to its listeners. Each job's cancel event is the
one the worker made for it, kept here by job id.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from studio.backends.local.worker import EngineWorker
from studio.core.backend import Backend, BackendModel, EventListener
from studio.core.errors import StudioError
from studio.core.events import JOB_END_EVENTS, Event, ModelFailed
from studio.core.generation.request import GenerationRequest
from studio.core.models.model_library import model_folders, scan_models


def _no_extra_folders() -> list[str]:
    return []


class LocalBackend(QObject):
    def __init__(self, worker: EngineWorker, model_dirs: Callable[[], list[str]] = _no_extra_folders,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.worker = worker
        self.model_dirs = model_dirs  # the artist's model folders, for list_models
        self._listeners: list[EventListener] = []
        self._cancels: dict[str, threading.Event] = {}
        self._model = ""
        # Bound methods of an object in the GUI thread: queued, so listeners run there (DESIGN.md, rule 9).
        for signal in (worker.modelLoading, worker.modelLoaded, worker.jobStarted, worker.imageFinished,
                       worker.jobFinished, worker.jobCancelled, worker.jobFailed):
            signal.connect(self._deliver)
        worker.modelFailed.connect(self._model_failed)
        worker.stepReady.connect(self._step_ready)

    # -- the Backend protocol ---------------------------------------------------------------
    def subscribe(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def load_model(self, model: str, device: str = "auto", vae: str = "") -> None:
        self._model = model
        self.worker.load_model(model, device, vae)

    def run_job(self, job_id: str, request: GenerationRequest) -> None:
        self._cancels[job_id] = self.worker.generate(request, job_id=job_id, save_images=False)

    def cancel_job(self, job_id: str) -> None:
        cancel = self._cancels.get(job_id)
        if cancel is not None:
            cancel.set()

    def list_models(self) -> list[BackendModel]:
        models, _problems = scan_models(model_folders(self.model_dirs()))
        return [BackendModel(model.path, model.name, model.label) for model in models]

    def set_memory(self, options: Mapping[str, object]) -> None:
        self.worker.set_memory(dict(options))

    def close(self) -> None:
        for cancel in self._cancels.values():
            cancel.set()
        self._cancels.clear()
        self._listeners.clear()

    # -- from the worker (GUI thread) ---------------------------------------------------------
    def _deliver(self, event: Event) -> None:
        if isinstance(event, JOB_END_EVENTS):
            self._cancels.pop(event.job_id, None)
        for listener in list(self._listeners):
            listener(event)

    def _model_failed(self, error: StudioError) -> None:
        self._deliver(ModelFailed(error, self._model))

    def _step_ready(self) -> None:
        steps = self.worker.take_steps()  # all of them: several at once when the GUI fell behind
        for number, step in enumerate(steps, start=1):
            self._deliver(step if number == len(steps) else dataclasses.replace(step, newest=False))


if TYPE_CHECKING:  # the type checker proves LocalBackend is a Backend (.ci/run runs mypy)

    def _is_a_backend(backend: LocalBackend) -> Backend:
        return backend
