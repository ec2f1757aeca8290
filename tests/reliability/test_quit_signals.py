"""Ctrl+C and SIGTERM quit as the window's close does (settings saved, the step cancelled,
exit 0), instead of a KeyboardInterrupt traceback from inside a Qt slot and an app that ran on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QWidget

from studio.ui.quit_signals import QuitOnSignals

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")


def test_a_signal_closes_the_window_from_the_event_loop(qtbot):
    widget = QWidget()
    qtbot.addWidget(widget)
    widget.show()
    quitter = QuitOnSignals(widget.close, parent=widget)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        qtbot.waitUntil(lambda: not widget.isVisible(), timeout=3000)
        assert quitter.received == [signal.SIGTERM]
    finally:
        quitter.uninstall()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


APP_SCRIPT = textwrap.dedent("""
    import sys, threading
    from PySide6.QtCore import QTimer
    import studio.application.closing as closing
    import studio.backends.local.worker as worker_module
    import studio.launch as launch
    from tests.fakes import FakeEngine, Script

    closing.CLOSE_WAIT_SECONDS = 0.5
    script = Script(hold=threading.Event())  # a step that never ends
    worker_module.real_engine_factory = lambda emit: FakeEngine(emit, script, sys.argv[1])
    build = launch.build_main_window

    def build_and_queue(*args, **kwargs):
        window = build(*args, **kwargs)
        def queue():
            window.panel.prompt.setPlainText("kept at exit")
            window.panel.width_spin.setValue(64); window.panel.height_spin.setValue(64)
            window.job_view.generate()
            def say_when_held():
                if script.held.is_set():
                    print("held", flush=True)
                else:
                    QTimer.singleShot(20, say_when_held)
            say_when_held()
        QTimer.singleShot(200, queue)
        return window

    launch.build_main_window = build_and_queue
    print("exit", launch.run_gui(model="/models/fake"), flush=True)
""")


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_app_quits_on_a_signal_mid_step_saving_what_it_holds(tmp_path, studio_home, number):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "STUDIO_HOME": str(studio_home), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", APP_SCRIPT, str(tmp_path / "outputs")], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held", child.stderr.read()
        child.send_signal(number)
        started = time.monotonic()
        out, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    assert time.monotonic() - started < 10  # the step's wait (0.5 s) and the exit
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "not waited for" in err  # the hung step was cancelled, waited for briefly, then left
    assert json.loads((studio_home / "settings.json").read_text())["prompt"] == "kept at exit"
