"""Progress text: step i of n, iterations per second and time left."""

from __future__ import annotations

from collections import deque


class ProgressClock:
    """Rolling average of recent step times; robust to the slow first step."""

    def __init__(self, window: int = 8):
        self._times: deque[float] = deque(maxlen=window)

    def reset(self) -> None:
        self._times.clear()

    def add(self, seconds_per_step: float) -> None:
        if seconds_per_step > 0:
            self._times.append(seconds_per_step)

    def text(self, step: int, total: int, steps_left: int) -> str:
        if not self._times:
            return f"Step {step}/{total}"
        per_step = sum(self._times) / len(self._times)
        rate = f"{1 / per_step:.1f} it/s" if per_step < 1 else f"{per_step:.1f} s/it"
        return f"Step {step}/{total} · {rate} · {format_seconds(per_step * steps_left)} left"


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s"
