"""Ctrl+C and SIGTERM quit the studio as closing its window does: settings and session saved,
the running step cancelled and waited for (briefly), then the process ends.

Python runs a signal handler only between bytecodes, and while Qt's event loop waits in C++
no bytecode runs: the default SIGINT handler's KeyboardInterrupt then surfaced later, inside
whatever slot ran next, as a traceback, and the app kept running. So the signal's C-level
handler writes its number to one end of a socket pair (signal.set_wakeup_fd), and a
QSocketNotifier on the other end wakes the event loop in the GUI thread, which closes the window.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable

from PySide6.QtCore import QObject, QSocketNotifier

QUIT_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)


class QuitOnSignals(QObject):
    """While it lives (and until `uninstall()`), each SIGINT or SIGTERM calls `close` in the GUI
    thread; a second one while the window finishes its step calls it again (closing is safe
    to ask twice). Create it in the GUI thread: Python signal handlers belong to the main thread."""

    def __init__(self, close: Callable[[], object], signals: tuple[int, ...] = QUIT_SIGNALS,
                 parent: QObject | None = None):
        super().__init__(parent)
        self._close = close
        self.received: list[int] = []  # signal numbers, in order (for the log and tests)
        self._reader, self._writer = socket.socketpair()
        for end in (self._reader, self._writer):
            end.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        # A Python-level handler is needed too: the default one raises KeyboardInterrupt.
        self._previous = {number: signal.signal(number, _noted) for number in signals}
        self._notifier = QSocketNotifier(self._reader.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._woken)
        self.destroyed.connect(self._reader.close)

    def _woken(self, *_args) -> None:
        try:
            numbers = self._reader.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._notifier.setEnabled(False)
            return
        quits = [n for n in numbers if n in self._previous]
        self.received += quits
        if quits:
            self._close()

    def uninstall(self) -> None:
        """Put back the handlers and wakeup descriptor found at install, and close the pair."""
        self._notifier.setEnabled(False)
        signal.set_wakeup_fd(self._previous_fd)
        for number, handler in self._previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        self._writer.close()
        self._reader.close()


def _noted(_number: int, _frame) -> None:
    """The Python-level handler: nothing to do, the wakeup byte carries the signal to Qt."""
