"""How late the GUI thread answers: a 10 ms timer's lateness (`studio bench` and
`python -m studio.dev.bench_stall` both measure with it)."""

from __future__ import annotations

import time


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


class StallProbe:
    """A 10 ms precise timer on the GUI thread; records how late each tick arrives."""

    def __init__(self):
        from PySide6.QtCore import Qt, QTimer

        self.lateness_ms: list[float] = []
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(10)
        self._timer.timeout.connect(self._tick)
        self._last = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lateness_ms.append(max(0.0, (now - self._last) * 1000 - 10))
        self._last = now

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
