"""A few rounds of studio.dev.kill_loop: the real application layer (queue, writer thread,
History) killed with SIGKILL at random moments and relaunched; every job it accepted ends done
with complete images listed in History. `python -m studio.dev.kill_loop --kills 200` is the long run."""

from __future__ import annotations

import sys

import pytest

from studio.dev.kill_loop import BATCH, kill_loop

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def test_kills_at_random_moments_lose_no_image(tmp_path):
    report = kill_loop(tmp_path, kills=6, seed=3)
    assert report["drained"], report
    assert report["accepted_jobs"] >= 4, report
    assert report["lost_images"] == [] and report["unfinished_jobs"] == [] and report["not_in_history"] == [], report
    assert report["broken_images"] == [], report
    assert report["images"] == BATCH * report["accepted_jobs"]
