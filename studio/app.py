"""Composition root: QApplication, settings, engine thread, main window.

Nothing here imports torch or diffusers: the window is on screen before the engine thread
starts loading them.
"""

from __future__ import annotations

import os
import sys
import time

from studio import APP_NAME


def _ensure_streams() -> None:
    """A windowed launch (gui-scripts, pythonw) has no stdout/stderr; tqdm and logging then
    crash on write. Point them at a log file instead."""
    if sys.stdout is None or sys.stderr is None:
        from studio.core.paths import data_home

        data_home().mkdir(parents=True, exist_ok=True)
        log = open(data_home() / "studio.log", "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        sys.stdout = sys.stdout or log
        sys.stderr = sys.stderr or log


def run_gui(model: str | None = None, device: str | None = None, exit_when_shown: bool = False) -> int:
    launched = time.perf_counter()
    _ensure_streams()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from studio.core.paths import settings_file
    from studio.core.settings import apply_model_defaults, effective_model, load_settings
    from studio.ui.main_window import MainWindow
    from studio.ui.worker import EngineThread, real_engine_factory

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("DiffusionStudio")
    app.setDesktopFileName("io.github.diffusionstudio.Studio")

    first_run = not settings_file().exists()
    settings, warning = load_settings(settings_file())
    if model:
        settings.model = os.path.abspath(model)
    if device:
        settings.device = device
    if first_run or model:
        apply_model_defaults(settings, effective_model(settings))
    engine = EngineThread(real_engine_factory)
    window = MainWindow(settings, settings_file(), engine.worker)
    window.show()
    if warning:
        window.status_label.setText(warning)
    if exit_when_shown:
        # Benchmark hook: report once the first frame has been painted, then quit.
        def report() -> None:
            torch_loaded = "torch" in sys.modules
            print(f"window-shown {time.perf_counter() - launched:.4f} torch-loaded={torch_loaded}", flush=True)
            app.quit()

        QTimer.singleShot(0, report)
        return app.exec()

    engine.start()
    window.start()
    app.aboutToQuit.connect(lambda: engine.stop())
    return app.exec()
