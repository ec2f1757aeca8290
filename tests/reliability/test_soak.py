"""A short soak through the real window and worker thread on the fake engine: 300 jobs, every
fifth cancelled. Nothing may grow per job: memory (beyond the history the jobs add), threads,
open files, or the references to None (a broken PySide6/CPython pair drops one per Qt call)."""

from __future__ import annotations

import sys

from studio.core.generation.settings import Settings
from studio.dev.soak import soak_window

JOBS = 300


def test_300_jobs_with_cancels_leak_nothing(qtbot, make_window, script):
    script.step_seconds = 0.001
    window = make_window(Settings(model="/models/fake", steps=3, width=64, height=64, random_seed=True))
    report = soak_window(window, JOBS, cancel_every=5, timeout_s=120)
    print("\n".join(report.lines()))
    assert report.finished + report.cancelled == JOBS and report.failed == 0
    assert report.cancelled >= JOBS // 5 * 0.9  # the cancels took effect
    growth = report.growth()
    assert growth["threads"] <= 0 and growth["fds"] <= 0, report.lines()
    # After the warm-up only the history grows (~30 KB a job here); a leaked result image or
    # preview per job, or a pipeline per cancel, is far more.
    assert growth["late_rss_kb_per_job"] < 100, report.lines()
    assert growth["os_threads"] <= 2, report.lines()  # Qt's pool threads come and go; a thread per job would not
    if sys.version_info < (3, 12):  # 3.12+ reports a huge constant for the immortal None
        assert growth["none_refs"] > -500, report.lines()
    assert len(report.samples) >= 5
