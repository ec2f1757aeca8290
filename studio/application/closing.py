"""Closing the window while the backend works, without freezing it.

The backend is asked to stop (the running job is cancelled); then a QTimer polls it, so the
window keeps painting its "Finishing the current step…" message while a step or a model load
ends. `done` fires once the backend's worker stopped, or when the wait ran out: the local
engine thread is then kept alive and the app exits without waiting for it
(studio.launch.finish_engine).
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer, Signal

from studio.core.backend import Backend

# How long closing waits for the running step (or model load) to end after the cancel. A step
# on a big model on the CPU can take this long; longer than this, an artist wants the window
# gone, and nothing is lost: finished images and settings are already saved.
CLOSE_WAIT_SECONDS = 20.0
CLOSE_POLL_MS = 50


class BackendCloser(QObject):
    done = Signal(bool)  # True: the backend's worker stopped; False: gave up waiting

    def __init__(self, backend: Backend, wait_seconds: float | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.backend = backend
        self.wait_seconds = CLOSE_WAIT_SECONDS if wait_seconds is None else wait_seconds
        self.result: bool | None = None  # None while waiting
        self._deadline = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(CLOSE_POLL_MS)
        self._timer.timeout.connect(self._poll)

    def begin(self, quick_ms: int = 100) -> bool:
        """Ask the backend to stop; True when it already has (an idle engine ends at once).
        Otherwise polling starts and `done` follows."""
        if self.backend.stop(quick_ms):
            self.result = True
            return True
        self._deadline = time.monotonic() + self.wait_seconds
        self._timer.start()
        return False

    def give_up(self) -> None:
        """Stop waiting now (the artist's "Quit now")."""
        self._deadline = 0.0
        self._poll()

    def _poll(self) -> None:
        if self.result is not None:
            return
        stopped = self.backend.stopped()
        if not stopped and time.monotonic() < self._deadline:
            return
        self._timer.stop()
        self.result = stopped
        self.done.emit(self.result)
