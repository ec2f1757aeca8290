"""How many CPU threads torch may use.

torch's default is one thread per physical core. On a desktop that is a bad bargain: the GUI
thread and every other program then compete with a full team of spinning OpenMP workers, and a
single busy process made 20 demo steps take 6-17 s instead of 0.7-1.0 s. Leaving one core free
costs little when the machine is idle and keeps generation (and the window) fast when it is not.

The choice, strongest first: an explicit setting (`--threads N`, a settings field once there is
one), the STUDIO_CPU_THREADS environment variable, OMP_NUM_THREADS (a person or a test runner
that set it meant it), then automatic: usable cores minus one, at least one.
"""

from __future__ import annotations

import logging
import os

ENV_VAR = "STUDIO_CPU_THREADS"

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """Cores this process may run on: physical cores when known (hyper-threads add little to
    matrix maths), never more than the CPUs the scheduler lets us use (containers, taskset)."""
    try:
        logical = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        logical = os.cpu_count() or 1
    try:
        import psutil  # optional; not a dependency

        physical = psutil.cpu_count(logical=False)
    except Exception:  # noqa: BLE001 - missing module or an unreadable /proc: fall back
        physical = None
    return max(1, min(logical, physical) if physical else logical)


def _positive_int(text: str | None) -> int | None:
    try:
        value = int(text) if text is not None else 0
    except ValueError:
        return None
    return value if value > 0 else None


def cpu_threads(setting: int | None = None) -> int:
    """The thread count to use; `setting` None or 0 means automatic."""
    if setting is not None and setting > 0:
        return setting
    for name in (ENV_VAR, "OMP_NUM_THREADS"):
        value = _positive_int(os.environ.get(name))
        if value:
            return value
    return max(1, usable_cores() - 1)


def apply_cpu_threads(n: int) -> None:
    """Set torch's intra-op and inter-op thread counts. Call it in the thread that will run the
    model, before it does any work: OpenMP keeps the count per thread, and torch refuses to
    change the inter-op count once any parallel work has started (RuntimeError), which is
    harmless to skip since diffusers pipelines do not use inter-op parallelism."""
    import torch

    n = max(1, int(n))
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError as exc:  # already set, or parallel work already ran
        log.debug("inter-op threads left as they are: %s", exc)
