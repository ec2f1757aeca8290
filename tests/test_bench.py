"""`studio bench` measures generation with one competing busy process too (issue 13, item 1)."""

import json
import time

from studio.dev.bench import GOALS, BusyProcess, _report


def test_busy_process_runs_during_the_block_and_is_stopped_after():
    with BusyProcess() as busy:
        process = busy._process
        assert process.is_alive()
        time.sleep(0.05)
        assert process.is_alive()  # still spinning, not exited early
    assert not process.is_alive()


def _results(busy_ratio: float) -> dict:
    return {
        "model": "demo", "model_kind": "demo", "device": "cpu", "dtype": "float32", "size": "64x64", "steps": 20,
        "sampler": "Euler a", "machine": "test", "threads": 1,
        "bare_s": [1.0], "studio_s": [1.0], "busy_s": [busy_ratio], "overhead": 1.0, "busy_ratio": busy_ratio,
        "stall_p99_ms": 1.0, "stall_max_ms": 1.0, "cancel_latency_s": [0.01], "cancel_budget_s": 0.1,
        "launch_s": 1.0, "brush_move_ms_max": 1.0, "mode_switch_ms": 1.0, "mode_switch_shares_weights": True,
    }


def test_report_has_the_busy_row_and_judges_it_against_the_goal(tmp_path, capsys):
    out = tmp_path / "bench.json"
    _report(_results(2.0), out)
    row = next(line for line in capsys.readouterr().out.splitlines() if "busy process / idle" in line)
    assert "2.00x" in row and row.rstrip().endswith("MISSED")
    saved = json.loads(out.read_text())
    assert saved["busy_ratio"] == 2.0 and saved["pass"]["with 1 busy process / idle"] is False

    _report(_results(GOALS["busy_ratio"]), out)
    assert json.loads(out.read_text())["pass"]["with 1 busy process / idle"] is True


def test_report_judges_the_cold_start_stall_and_decode_to_screen(tmp_path, capsys):
    out = tmp_path / "bench.json"
    results = {**_results(1.0), "cold_stall_load_ms": 80.0, "cold_stall_first_ms": 12.0,
               "decode_to_screen_ms": [11.0, 35.0]}
    _report(results, out)
    lines = capsys.readouterr().out.splitlines()
    loading = next(line for line in lines if "stall while loading" in line)
    assert "80.0 ms" in loading and loading.rstrip().endswith("MISSED")
    passed = json.loads(out.read_text())["pass"]
    assert passed["cold start: first generation (max)"] is True
    assert passed["decode to image on screen (worst)"] is False  # the worst of the images counts
