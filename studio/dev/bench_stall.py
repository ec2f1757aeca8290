"""The GUI stall of a cold start: the window opens, Generate is clicked at once, and the engine
thread imports torch, loads the demo model and runs the first job meanwhile.

`studio bench`'s StallProbe (a 10 ms timer's lateness on the GUI thread) covers only warm
generations; this one runs from the moment the window is shown, in a fresh process (torch not
yet imported: that import is part of what the artist waits through), and splits the samples
into the load phase (shown -> model loaded) and the first generation (loaded -> job ended).

Run: `.venv/bin/python -m studio.dev.bench_stall` (offscreen Qt when there is no display);
`--model FILE` for a single-file checkpoint (its CLIP tokenizers are built at load, the demo
folder brings its own), `--size 256 --steps 4` to keep a CPU's first generation short, and
`--runs 5` for five cold starts, each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from studio.dev.child_process import python_module

GOAL_MAX_MS = 50.0
STACK_DEPTH = 6  # innermost frames kept per thread at a late tick


def _summary(lateness: list[float]) -> dict:
    from studio.dev.stall_probe import percentile

    return {
        "max_ms": max(lateness) if lateness else 0.0,
        "p99_ms": percentile(lateness, 0.99),
        "samples": len(lateness),
    }


def _other_threads_at() -> list[str]:
    """Where the other threads are the moment a late tick arrives: the one that held the GIL
    has just let go, so its innermost frames name (or follow) what held it."""
    import threading
    import traceback

    here = threading.get_ident()
    names = {t.ident: t.name for t in threading.enumerate()}
    places = []
    for ident, frame in sys._current_frames().items():
        if ident != here:
            stack = [f"{os.path.basename(f.f_code.co_filename)}:{line}" for f, line in traceback.walk_stack(frame)]
            places.append(f"[{names.get(ident, ident)}] " + " < ".join(stack[:STACK_DEPTH]))
    return places


def _timed_probe_class():
    from studio.dev.stall_probe import StallProbe

    class TimedProbe(StallProbe):
        """StallProbe that also keeps when each late tick arrived, to match it to the engine's work."""

        def __init__(self):
            super().__init__()
            self.late: list[tuple[float, float, list[str]]] = []  # (s since start, ms late, other threads)
            self._started = 0.0

        def start(self) -> None:
            self._started = time.perf_counter()
            super().start()

        def _tick(self) -> None:
            super()._tick()
            if self.lateness_ms[-1] > 20:
                self.late.append((round(time.perf_counter() - self._started, 3), round(self.lateness_ms[-1], 1),
                                  _other_threads_at()))

    return TimedProbe


def measure_cold_stall(model: str | None = None, timeout_s: float = 300.0, size: int | None = None,
                       steps: int | None = None) -> dict:
    """Open the real window on `model` (default: the demo model), click Generate at once and
    return the GUI timer's lateness for the load and the first generation separately.
    `size`/`steps` replace the model's own (a fresh start adopts its native size: 1024 px for
    SDXL, minutes of CPU time on a tiny random model)."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    torch_before = "torch" in sys.modules
    with tempfile.TemporaryDirectory() as home:
        os.environ["STUDIO_HOME"] = home  # a first run: no settings, session or queue to restore
        from PySide6.QtCore import QEventLoop, QTimer
        from PySide6.QtWidgets import QApplication

        from studio.backends.local.worker import EngineThread, real_engine_factory
        from studio.core.storage.paths import demo_model_dir
        from studio.launch import build_main_window, configure_app

        _TimedProbe = _timed_probe_class()
        model = model or str(demo_model_dir())
        app = QApplication.instance() or QApplication([])
        configure_app(app)
        engine = EngineThread(real_engine_factory)
        probe = _TimedProbe()
        marks: dict[str, float] = {}
        loaded_at: list[int] = []  # the probe's sample count when the model was ready
        outcome: list[str] = []
        loop = QEventLoop()

        def loaded(event) -> None:
            if type(event).__name__ == "ModelLoaded" and not loaded_at:
                loaded_at.append(len(probe.lateness_ms))
                marks["loaded_s"] = time.perf_counter() - marks["start"]

        def ended(result: str) -> None:
            outcome.append(result)
            marks["ended_s"] = time.perf_counter() - marks["start"]
            loop.quit()

        window = build_main_window(engine, model, None)  # builds and shows it
        if size or steps:
            from dataclasses import replace

            state = window.controller.state
            changes = {"width": size, "height": size, "steps": steps}
            state.replace(replace(state.settings, **{k: v for k, v in changes.items() if v}))
        marks["start"] = time.perf_counter()
        probe.start()  # from the moment the window is shown, as an artist sees it
        window.controller.backendEvent.connect(loaded)
        window.job_view.jobEnded.connect(ended)
        engine.start()
        window.start()  # asks the engine thread to load the model
        QTimer.singleShot(0, window.job_view.generate)  # the click on Generate right after the window opens
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        loop.exec()
        probe.stop()
        window.close()
        engine.stop()
        app.processEvents()

    samples = list(probe.lateness_ms)
    split = loaded_at[0] if loaded_at else len(samples)
    return {
        "model": model,
        "outcome": outcome[0] if outcome else "timed out",
        "torch_imported_before": torch_before,
        "loaded_s": marks.get("loaded_s"),
        "ended_s": marks.get("ended_s"),
        "load": _summary(samples[:split]),
        "first_generation": _summary(samples[split:]),
        "late_ticks": probe.late,  # (s since shown, ms late, other threads) of each tick over 20 ms
    }


def _print_phases(result: dict, label: str = "") -> None:
    for phase in ("load", "first_generation"):
        r = result[phase]
        verdict = "ok" if r["max_ms"] <= GOAL_MAX_MS else "MISSED"
        print(f"{label}{phase:<17} max {r['max_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  ({r['samples']} ticks)  "
              f"goal max <= {GOAL_MAX_MS:.0f} ms {verdict}")


def cold_stall_in_fresh_process(model: str | None = None, size: int | None = None,
                                steps: int | None = None) -> dict:
    """measure_cold_stall in its own process: a cold start imports torch and builds everything
    anew (`studio bench` calls this too)."""
    command = python_module("studio.dev.bench_stall", "--json")
    for flag, value in (("--model", model), ("--size", size), ("--steps", steps)):
        if value:
            command += [flag, str(value)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout[done.stdout.index("{"):])


def _fresh_runs(args: argparse.Namespace) -> list[dict]:
    results = []
    for run in range(args.runs):
        result = cold_stall_in_fresh_process(args.model, args.size, args.steps)
        _print_phases(result, f"run {run + 1}: ")
        for at, late, places in result["late_ticks"]:
            engine = [p for p in places if p.startswith("[")] or ["?"]
            print(f"    {at:7.3f} s  {late:6.1f} ms late  " + " | ".join(engine))
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.dev.bench_stall",
                                     description="The GUI stall of a cold start (load, then the first generation).")
    parser.add_argument("model_arg", nargs="?", help=argparse.SUPPRESS)  # the old positional form
    parser.add_argument("--model", help="a model folder or single-file checkpoint (default: the demo model)")
    parser.add_argument("--size", type=int, help="width and height of the first generation (default: the model's)")
    parser.add_argument("--steps", type=int, help="steps of the first generation (default: the model's)")
    parser.add_argument("--runs", type=int, default=1, help="cold starts, each in a fresh process (default 1)")
    parser.add_argument("--json", action="store_true", help="print only the result as JSON")
    args = parser.parse_args(argv)
    args.model = args.model or args.model_arg
    if args.runs > 1:
        results = _fresh_runs(args)
        for phase in ("load", "first_generation"):
            maxima = sorted(r[phase]["max_ms"] for r in results)
            p99s = sorted(r[phase]["p99_ms"] for r in results)
            print(f"{phase:<17} over {len(results)} runs: max {maxima[0]:.1f}-{maxima[-1]:.1f} ms, "
                  f"p99 {p99s[0]:.1f}-{p99s[-1]:.1f} ms")
        return 0
    result = measure_cold_stall(args.model, size=args.size, steps=args.steps)
    if not args.json:
        _print_phases(result)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
