"""Closing the window while the engine works ends cleanly: the job is cancelled, the window says
it is finishing the step and stays responsive, and a running QThread is never destroyed, even
when the step (or a model read from a FIFO) outlasts the wait."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer

import studio.application.closing as closing
import studio.backends.local.worker as worker_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def release(script):
    """Lets held steps and loads go at teardown (before the window fixture stops the thread)."""
    yield
    for event in (script.hold, script.hold_load):
        if event is not None:
            event.set()


def _start_held_job(qtbot, window, script) -> None:
    script.hold = threading.Event()
    window.job_view.generate()
    assert script.held.wait(5), "the fake step never started"


def test_close_waits_for_the_step_with_a_message_then_ends_the_thread(qtbot, make_window, script, release):
    window = make_window()
    _start_held_job(qtbot, window, script)
    started = time.monotonic()
    QTimer.singleShot(400, script.hold.set)  # the long step ends 0.4 s after the close
    window.close()
    assert window.isVisible(), "closed before the step ended"
    assert window.status_label.text() == "Finishing the current step…"
    assert window.closing_dialog.isVisible() and window.closing_dialog.labelText() == "Finishing the current step…"
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)  # the event loop kept running
    assert time.monotonic() - started < 3
    engine = window.controller.backend.engine
    assert window._closer.result is True and not engine.is_running()


def test_a_step_longer_than_the_wait_does_not_block_exit_or_destroy_the_thread(qtbot, make_window, script, release, monkeypatch):
    monkeypatch.setattr(closing, "CLOSE_WAIT_SECONDS", 0.5)
    window = make_window()
    _start_held_job(qtbot, window, script)
    started = time.monotonic()
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    assert 0.4 < time.monotonic() - started < 3
    engine = window.controller.backend.engine
    assert window._closer.result is False and engine.is_running()
    assert engine in worker_module._still_running  # referenced: garbage collection cannot destroy it
    script.hold.set()  # the step ends some day; then the thread stops (the fixture checks)
    assert engine.stop(5000)


def test_a_model_load_stuck_on_a_slow_disk_does_not_block_exit(qtbot, make_window, script, release, monkeypatch):
    monkeypatch.setattr(closing, "CLOSE_WAIT_SECONDS", 0.3)
    script.hold_load = threading.Event()
    window = make_window()
    assert script.held.wait(5)  # window.start() asked for the model: the read now hangs
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    assert window._closer.result is False
    script.hold_load.set()
    assert window.controller.backend.engine.stop(5000)


def test_quit_now_stops_waiting_at_once(qtbot, make_window, script, release):
    window = make_window()
    _start_held_job(qtbot, window, script)
    window.close()
    started = time.monotonic()
    window.closing_dialog.canceled.emit()  # the dialog's "Quit now" button
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=2000)
    assert time.monotonic() - started < 1
    script.hold.set()


def test_an_idle_engine_closes_at_once_without_a_message(qtbot, make_window):
    window = make_window()
    window.close()
    assert not window.isVisible() and not hasattr(window, "closing_dialog")
    assert not window.controller.backend.engine.is_running()


APP_SCRIPT = textwrap.dedent("""
    import sys, threading, time
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    import studio.backends.local.worker as worker_module
    from studio.launch import build_main_window, finish_engine
    from tests.fakes import FakeEngine, Script

    worker_module.CLOSE_WAIT_SECONDS = float(sys.argv[1])
    script = Script(hold=threading.Event())  # a step that never ends, as a hung driver call
    app = QApplication([])
    engine = worker_module.EngineThread(lambda emit: FakeEngine(emit, script, sys.argv[2]))
    window = build_main_window(engine, model="/models/fake")
    engine.start()
    window.start()
    window.panel.prompt.setPlainText("kept at exit")
    window.panel.width_spin.setValue(64); window.panel.height_spin.setValue(64)
    window.job_view.generate()

    def close_when_held():
        if not script.held.is_set():
            QTimer.singleShot(20, close_when_held)
            return
        print("closing", flush=True)
        window.close()

    QTimer.singleShot(0, close_when_held)
    code = finish_engine(engine, app.exec())
    print("returned normally", code, flush=True)
""")


def test_the_app_exits_cleanly_while_the_engine_hangs(tmp_path, studio_home):
    """The real exit path (studio.launch.finish_engine) in its own process: rc 0, no Qt fatal
    message, settings saved, within the wait plus a little."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "STUDIO_HOME": str(studio_home), "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", APP_SCRIPT, "0.5", str(tmp_path / "outputs")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "closing" in done.stdout and "returned normally" not in done.stdout  # ended through os._exit
    assert "QThread" not in done.stderr and "Fatal" not in done.stderr, done.stderr
    assert "not waited for" in done.stderr
    assert json.loads((studio_home / "settings.json").read_text())["prompt"] == "kept at exit"
    assert time.monotonic() - started < 30
