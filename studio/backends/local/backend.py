"""The local engine thread as a Backend: a thin layer over the EngineThread's worker.

The worker runs jobs one at a time in its QThread and delivers the engine's typed events
queued to the GUI thread; this object (which lives in the GUI thread) passes them on unchanged
to its listeners, with the steps from the worker's mailbox. Each job's cancel event is the one
the worker made for it, kept here by job id.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from studio.backends.local.worker import EngineThread
from studio.core.backend import Backend, BackendModel, EventListener
from studio.core.events import JOB_END_EVENTS, Event
from studio.core.generation.request import GenerationRequest
from studio.core.models.model_library import model_folders, scan_models


class LocalBackend(QObject):
    def __init__(self, engine: EngineThread, parent: QObject | None = None):
        super().__init__(parent)
        self.engine = engine
        self.worker = engine.worker
        self._model_dirs: list[str] = []  # the artist's model folders, as the controller last said
        self._listeners: list[EventListener] = []
        self._cancels: dict[str, threading.Event] = {}
        # Bound methods of an object in the GUI thread: queued, so listeners run there (DESIGN.md, rule 9).
        self.worker.engineEvent.connect(self._deliver)
        self.worker.stepReady.connect(self._step_ready)

    # -- the Backend protocol ---------------------------------------------------------------
    def subscribe(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def load_model(self, model: str, device: str = "auto", vae: str = "") -> None:
        self.worker.load_model(model, device, vae)

    def run_job(self, job_id: str, request: GenerationRequest) -> None:
        self._cancels[job_id] = self.worker.generate(request, job_id=job_id)

    def cancel_job(self, job_id: str) -> None:
        cancel = self._cancels.get(job_id)
        if cancel is not None:
            cancel.set()

    def set_model_folders(self, folders: Sequence[str]) -> None:
        self._model_dirs = list(folders)
        self.worker.set_model_folders(self._model_dirs)

    def list_models(self) -> list[BackendModel]:
        models, _problems = scan_models(model_folders(self._model_dirs))
        return [BackendModel(model.path, model.name, model.label) for model in models]

    def set_memory(self, options: Mapping[str, object]) -> None:
        self.worker.set_memory(dict(options))

    def close(self) -> None:
        for cancel in self._cancels.values():
            cancel.set()
        self._cancels.clear()
        self._listeners.clear()

    def stop(self, wait_ms: int = 0) -> bool:
        self.engine.request_stop()
        self.engine.thread.wait(wait_ms)
        return self.stopped()

    def stopped(self) -> bool:
        self.engine.keep_alive()  # a thread still running is never destroyed (EngineThread.keep_alive)
        return not self.engine.is_running()

    # -- from the worker (GUI thread) ---------------------------------------------------------
    def _deliver(self, event: Event) -> None:
        if isinstance(event, JOB_END_EVENTS):
            self._cancels.pop(event.job_id, None)
        for listener in list(self._listeners):
            listener(event)

    def _step_ready(self) -> None:
        steps = self.worker.take_steps()  # all of them: several at once when the GUI fell behind
        for number, step in enumerate(steps, start=1):
            self._deliver(step if number == len(steps) else dataclasses.replace(step, newest=False))


if TYPE_CHECKING:  # the type checker proves LocalBackend is a Backend (.ci/run runs mypy)

    def _is_a_backend(backend: LocalBackend) -> Backend:
        return backend
