"""kill -9 the studio at random moments while its queue runs and its writer thread saves, relaunch,
and check that no image was lost: `python -m studio.dev.kill_loop --kills 200`.

Each launch is the real application layer (StudioController, JobQueue saved in the background,
the ImageWriter thread, HistoryService with its catch-up) over the real engine QThread, with a
quick engine that makes noise images without torch, so a launch takes about a second and the
kills land in every phase: starting, restoring the queue, denoising, encoding, fsync, renaming,
the history append. A launch runs the jobs left from the last one (the artist's "Run"), adds
jobs while fewer than a few wait, prints the ids it queued once queue.json holds them, and is
killed after a random delay. A last launch runs the queue to the end and closes cleanly.

No image is lost when every image of every job ever accepted (printed once queue.json held it)
is a complete PNG listed in History, and no job is left unfinished. A job interrupted before
its images were all written runs again, so an image may exist twice; that is counted, not a
loss. A PNG torn by a kill mid-write is never one the studio named: writes are atomic.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from studio.dev.child_process import python_module

BATCH = 2  # images per job
SIZE = 192  # pixels: noise encodes slowly enough that kills land inside writes
KEEP_WAITING = 4  # a launch adds jobs while fewer than this wait


# -- the child: one launch of the application layer --------------------------------------------
class QuickEngine:
    """The engine protocol without torch: each image is seeded noise after a short 'denoise'."""

    library_dirs: list[str] = []

    def __init__(self, emit):
        self.emit = emit

    def load(self, path, device_choice=None, vae=""):
        return None

    def set_memory(self, options):
        pass

    def generate(self, request, cancel, job_id="", save_images=True):
        import dataclasses

        import numpy as np

        from studio.core.events import ImageFinished, JobCancelled, JobFinished, JobStarted

        self.emit(JobStarted(request, job_id=job_id))
        for index in range(request.batch_count):
            time.sleep(0.02)
            if cancel.is_set():
                self.emit(JobCancelled(request, (), job_id=job_id))
                return
            single = dataclasses.replace(request, seed=request.seed + index, batch_count=1)
            pixels = np.random.default_rng(single.seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            self.emit(ImageFinished(index, single, None, pixels, "", job_id=job_id))
        self.emit(JobFinished(request, (), 0.02, job_id=job_id))


def child(home: Path, outputs: Path, drain: bool) -> int:
    os.environ["STUDIO_HOME"] = str(home)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication, QTimer

    from studio.application.history_service import HistoryService
    from studio.backends.local.worker import EngineThread
    from studio.core.generation.request import GenerationRequest
    from studio.core.generation.settings import Settings
    from studio.core.storage.job_queue import JobStatus
    from studio.launch import build_controller

    app = QCoreApplication.instance() or QCoreApplication(sys.argv[:1])
    engine = EngineThread(QuickEngine)
    engine.start()
    controller, _ = build_controller(engine, Settings(model="quick", outputs_dir=str(outputs)), home / "settings.json")
    history = HistoryService(controller)
    history.load(outputs)
    controller.run_restored()
    print("ready", flush=True)
    serial = [int(time.time() * 1000) % 1_000_000_000]

    def waiting() -> int:
        return sum(not job.status.finished for job in controller.queue.jobs)

    def top_up() -> None:
        if drain:
            if waiting() == 0 and not controller.writing:
                finish()
            return
        added = []
        while waiting() < KEEP_WAITING:
            serial[0] += 1
            request = GenerationRequest(prompt=f"kill loop {serial[0]}", seed=serial[0], steps=1, width=SIZE,
                                        height=SIZE, batch_count=BATCH, model="quick")
            added.append(controller.generate(request))
        if added:
            controller.queue.flush()  # on disk: from here on the job must not be lost
            print("accepted " + " ".join(f"{job_id}:{controller.queue.get(job_id).request.seed}" for job_id in added),
                  flush=True)

    def finish() -> None:
        timer.stop()
        controller.close()
        history.close()
        engine.stop(10000)
        done = sum(job.status is JobStatus.DONE for job in controller.queue.jobs)
        print(f"drained {done}", flush=True)
        app.quit()

    timer = QTimer()
    timer.timeout.connect(top_up)
    timer.start(20)
    app.exec()
    return 0


# -- the parent: kills, relaunches, checks -----------------------------------------------------
def _launch(home: Path, outputs: Path, drain: bool = False) -> subprocess.Popen:
    command = python_module("studio.dev.kill_loop", "--child", str(home), str(outputs))
    if drain:
        command.append("--drain")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _read_lines(process: subprocess.Popen, seconds: float, accepted: dict[str, int], until: str = "") -> bool:
    """Collect 'accepted' ids for `seconds` (or until a line starts with `until`); True when seen."""
    end = time.monotonic() + seconds
    assert process.stdout is not None
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select([process.stdout], [], [], left)
        if not ready:
            break
        line = process.stdout.readline()
        if not line:
            return False
        if line.startswith("accepted "):
            accepted.update((job_id, int(serial)) for job_id, serial in (w.split(":") for w in line.split()[1:]))
        if until and line.startswith(until):
            return True
    return False


def check(home: Path, outputs: Path, accepted: dict[str, int]) -> dict:
    """What became of every accepted job (id -> its serial). The queue forgets done jobs past
    its last hundred, so History is where their images are looked for: each image of each
    job (its prompt and seed) must be listed there and be a complete PNG on disk."""
    from PIL import Image

    queue = json.loads((home / "queue.json").read_text(encoding="utf-8"))
    unfinished = [job["id"] for job in queue["jobs"] if job["status"] != "done"]
    listed: dict[tuple[str, int], list[str]] = {}
    for line in (home / "history.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            listed.setdefault((entry["prompt"], int(entry["seed"])), []).append(entry["path"])
        except (ValueError, KeyError, TypeError):
            pass  # a torn last line is healed by the next load
    lost, broken, images = [], [], 0
    for job_id, serial in sorted(accepted.items()):
        for seed in range(serial, serial + BATCH):
            paths = listed.get((f"kill loop {serial}", seed), [])
            complete = False
            for path in paths:
                try:
                    with Image.open(path) as image:
                        image.load()
                    complete = True
                except OSError:
                    broken.append(path)
            images += complete
            if not complete:
                lost.append(f"{job_id} image {seed - serial + 1}")
    pngs = {str(p.resolve()) for p in outputs.rglob("*.png")}
    in_history = {str(Path(p).resolve()) for paths in listed.values() for p in paths}
    return {"accepted_jobs": len(accepted), "lost_images": lost, "broken_images": broken,
            "unfinished_jobs": unfinished, "not_in_history": sorted(pngs - in_history), "images": images,
            "pngs_on_disk": len(pngs), "written_twice": len(pngs) - images}


def kill_loop(root: Path, kills: int, seed: int = 0, max_delay: float = 1.5, progress=None) -> dict:
    rng = random.Random(seed)
    home, outputs = root / "home", root / "outputs"
    home.mkdir(parents=True, exist_ok=True)
    outputs.mkdir(parents=True, exist_ok=True)
    accepted: dict[str, int] = {}
    started = time.monotonic()
    for kill in range(kills):
        process = _launch(home, outputs)
        if rng.random() < 0.2:  # some kills land while it starts and restores the queue
            _read_lines(process, rng.uniform(0.0, 1.0), accepted)
        else:
            _read_lines(process, 30.0, accepted, until="ready")
            _read_lines(process, rng.uniform(0.0, max_delay), accepted)
        process.send_signal(signal.SIGKILL)
        process.wait()
        _read_lines(process, 0.5, accepted)  # what it printed before dying
        process.stdout.close()
        if progress is not None:
            progress(kill + 1, len(accepted))
    process = _launch(home, outputs, drain=True)
    drained = _read_lines(process, 300.0, accepted, until="drained")
    process.wait(60)
    process.stdout.close()
    # Jobs queued by a launch killed before it said so are checked too.
    for job in json.loads((home / "queue.json").read_text(encoding="utf-8"))["jobs"]:
        accepted.setdefault(job["id"], int(job["request"]["seed"]))
    report = check(home, outputs, accepted)
    report.update(kills=kills, drained=drained, seconds=round(time.monotonic() - started, 1))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a new temporary one)")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--drain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child[0], args.child[1], args.drain)
    import tempfile

    root = args.dir or Path(tempfile.mkdtemp(prefix="studio-kill-loop-"))
    report = kill_loop(root, args.kills, args.seed,
                       progress=lambda n, jobs: print(f"  {n:4d} kills, {jobs} jobs accepted", flush=True)
                       if n % 10 == 0 else None)
    print(json.dumps({k: (v if not isinstance(v, list) else v[:5] + ([f"… {len(v)} in all"] if len(v) > 5 else []))
                      for k, v in report.items()}, indent=2))
    ok = report["drained"] and not any(report[k] for k in ("lost_images", "unfinished_jobs", "not_in_history"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
