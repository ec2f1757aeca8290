"""`studio soak`: many generations with cancels through the real window and engine thread,
watching what a leak would grow: resident memory, threads, open files and the references to
None (a PySide6/CPython pair that drops them aborts the app after a few hundred jobs).

The reliability tests run the same loop (`soak_window`) for a few hundred jobs on the fake
engine; this command runs the long version, by default 2,000 jobs on a tiny random model on the
CPU, in a scratch data folder (no outputs of yours are touched).

What still grows, and why it is no leak: references to None rise by about 8 per finished job,
the None-valued fields of the History entry each image adds (the engine alone adds none over
100 jobs); RSS settles after about 800 jobs, once the canvas's undo stack (200 steps) and the
queue's finished jobs (100) are full, then grows about 1 KB a job, the same History entries.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Caches, allocator pools, lazy imports and the history panel's first pages settle first (on the
# fake engine RSS climbs ~45 MB over the first ~130 jobs, then a steady ~30 KB per job: the
# history entries the jobs add); growth is measured after them.
WARMUP_JOBS = 100


@dataclass
class Sample:
    jobs: int
    rss_mb: float
    threads: int
    os_threads: int
    fds: int
    none_refs: int


@dataclass
class SoakReport:
    jobs: int = 0
    finished: int = 0
    cancelled: int = 0
    failed: int = 0
    seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)

    @property
    def baseline(self) -> Sample:
        return self.samples[0]

    @property
    def last(self) -> Sample:
        return self.samples[-1]

    def growth(self) -> dict[str, float]:
        a, b = self.baseline, self.last
        return {"rss_mb": round(b.rss_mb - a.rss_mb, 1), "rss_percent": round(100 * (b.rss_mb / a.rss_mb - 1), 1),
                "rss_kb_per_job": round((b.rss_mb - a.rss_mb) * 1024 / max(1, b.jobs - a.jobs), 1),
                "late_rss_kb_per_job": self.late_rss_kb_per_job(),
                "threads": b.threads - a.threads, "os_threads": b.os_threads - a.os_threads,
                "fds": b.fds - a.fds, "none_refs": b.none_refs - a.none_refs}

    def late_rss_kb_per_job(self) -> float:
        """RSS growth per job over the second half of the samples: a leak's steady slope,
        without what the first jobs settle (pools, caches)."""
        middle = self.samples[len(self.samples) // 2]
        return round((self.last.rss_mb - middle.rss_mb) * 1024 / max(1, self.last.jobs - middle.jobs), 1)

    def lines(self) -> list[str]:
        g, a, b = self.growth(), self.baseline, self.last
        return [
            f"jobs {self.jobs}: {self.finished} finished, {self.cancelled} cancelled, {self.failed} failed "
            f"in {self.seconds:.1f} s ({self.seconds / max(self.jobs, 1) * 1000:.0f} ms/job)",
            f"RSS        {a.rss_mb:8.1f} MB after {a.jobs} jobs -> {b.rss_mb:8.1f} MB ({g['rss_mb']:+.1f} MB, "
            f"{g['rss_percent']:+.1f}%, {g['rss_kb_per_job']:+.1f} KB/job; last half {g['late_rss_kb_per_job']:+.1f} KB/job)",
            f"threads    {a.threads:8d} -> {b.threads:8d} (OS threads {a.os_threads} -> {b.os_threads})",
            f"open files {a.fds:8d} -> {b.fds:8d}",
            f"None refs  {a.none_refs:8d} -> {b.none_refs:8d} ({g['none_refs']:+d})",
        ]


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource  # peak, not current: still shows a leak as steady growth

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (2**20 if sys.platform == "darwin" else 2**10)


def _count(folder: str) -> int:
    try:
        return len(os.listdir(folder))
    except OSError:
        return -1  # not Linux: not measured


def sample(jobs: int) -> Sample:
    import gc

    gc.collect()
    return Sample(jobs, round(_rss_mb(), 1), threading.active_count(), _count("/proc/self/task"),
                  _count("/proc/self/fd"), sys.getrefcount(None))


def soak_window(window, jobs: int, cancel_every: int = 5, timeout_s: float = 3600.0,
                samples: int = 10, progress=None, warmup: int | None = None) -> SoakReport:
    """Run `jobs` generations through `window` (a started MainWindow with a model), cancelling
    every `cancel_every`-th right after it was sent; one job at a time, as an artist would.
    Returns the figures; samples are taken after `warmup` jobs (WARMUP_JOBS, at most a third)
    and evenly after."""
    from PySide6.QtCore import QEventLoop, QTimer

    report = SoakReport(jobs=jobs)
    warmup = min(WARMUP_JOBS if warmup is None else warmup, max(1, jobs // 3))
    every = max(1, (jobs - warmup) // max(1, samples))
    loop = QEventLoop()
    state = {"sent": 0}

    def send() -> None:
        if state["sent"] >= jobs:
            loop.quit()
            return
        state["sent"] += 1
        window.job_view.generate()
        if not window.job_view.running:  # refused (no model, bad input): stop rather than spin
            report.failed += 1
            loop.quit()
            return
        if cancel_every and state["sent"] % cancel_every == 0:
            window.job_view.cancel()  # the cancel event is set at once; the engine sees it at the next step

    def ended(how: str) -> None:
        setattr(report, how, getattr(report, how) + 1)
        done = report.finished + report.cancelled + report.failed
        if done == warmup or (done > warmup and (done - warmup) % every == 0) or done == jobs:
            # The job queue saves in the background: a file it has open for a moment is not a leak.
            window.controller.queue.flush()
            report.samples.append(sample(done))
            if progress is not None:
                progress(report)
        QTimer.singleShot(0, send)

    window.job_view.jobEnded.connect(ended)
    guard = QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(loop.quit)
    guard.start(int(timeout_s * 1000))
    started = time.perf_counter()
    QTimer.singleShot(0, send)
    loop.exec()
    report.seconds = time.perf_counter() - started
    guard.stop()
    window.job_view.jobEnded.disconnect(ended)
    if not report.samples or report.samples[-1].jobs != report.finished + report.cancelled + report.failed:
        window.controller.queue.flush()
        report.samples.append(sample(report.finished + report.cancelled + report.failed))
    return report


def run_soak(args) -> int:
    """The `studio soak` command."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="studio-soak-") as scratch_dir:
        scratch = Path(scratch_dir)
        os.environ["STUDIO_HOME"] = str(scratch / "home")  # the soak never touches real outputs
        from PySide6.QtWidgets import QApplication

        from studio.backends.local.worker import EngineThread, real_engine_factory
        from studio.core.generation.settings import Settings
        from studio.launch import build_controller
        from studio.ui.main_window import MainWindow

        model = args.soak_model
        if not model:
            from studio.engine.tiny_model import save_tiny_model

            print("building a tiny random model (no download)…", flush=True)
            model = str(save_tiny_model(scratch / "tiny-model"))
        app = QApplication.instance() or QApplication(sys.argv[:1])
        engine = EngineThread(real_engine_factory)
        engine.start()
        settings = Settings(model=model, device=args.soak_device or "cpu", prompt="a red circle", steps=args.steps,
                            width=args.size, height=args.size, random_seed=True)
        window = MainWindow(build_controller(engine, settings, scratch / "home" / "settings.json")[0])
        window.show()
        window.start()

        def show(report: SoakReport) -> None:
            last = report.last
            print(f"  {last.jobs:6d} jobs  RSS {last.rss_mb:8.1f} MB  threads {last.threads}  fds {last.fds}  "
                  f"None refs {last.none_refs}", flush=True)

        print(f"soak: {args.jobs} jobs, every {args.cancel_every}th cancelled, {args.steps} steps at "
              f"{args.size}x{args.size}, model {model}", flush=True)
        report = soak_window(window, args.jobs, args.cancel_every, progress=show)
        window.close()
        app.processEvents()
        engine.stop(30000)
    print("\n".join(report.lines()))
    if args.json:
        import json

        args.json.write_text(json.dumps({**asdict(report), "growth": report.growth()}, indent=2) + "\n")
    return 0 if report.failed == 0 and report.finished + report.cancelled == report.jobs else 1
