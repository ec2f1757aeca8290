"""Composition root: QApplication, settings, engine thread, main window.

Nothing here imports torch or diffusers: the window is on screen before the engine thread
starts loading them.
"""

from __future__ import annotations

import os
import sys
import time

from studio import APP_NAME

APP_ID = "io.github.diffusionstudio.Studio"  # desktop entry, icon and Wayland app id


def _ensure_streams() -> None:
    """A windowed launch (gui-scripts, pythonw) has no stdout/stderr; tqdm and logging then
    crash on write. Point them at a log file instead."""
    if sys.stdout is None or sys.stderr is None:
        from studio.core.storage.paths import logs_dir

        logs_dir().mkdir(parents=True, exist_ok=True)
        log = open(logs_dir() / "console.log", "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        sys.stdout = sys.stdout or log
        sys.stderr = sys.stderr or log


def app_icon():
    """The icon in every size we ship (resources/icons/hicolor, as the desktop entry installs it)."""
    from PySide6.QtGui import QIcon

    from studio.core.storage.paths import resources_dir

    icon = QIcon()
    for png in sorted((resources_dir() / "icons" / "hicolor").glob(f"*/apps/{APP_ID}.png")):
        icon.addFile(str(png))
    return icon


def _missing_model_error(missing: str, demo_ok: bool):
    from studio.core.errors import ErrorKind, StudioError

    hint = ("The demo model is loaded instead; “Choose model…” picks another." if demo_ok
            else "Click “Choose model…” to pick another.")
    return StudioError(ErrorKind.MODEL_NOT_FOUND, f"The model you used last is no longer at {missing}.", hint)


def configure_app(app) -> None:
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("DiffusionStudio")
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(app_icon())


def build_controller(engine, settings, settings_path):
    """The application layer over the local engine thread (an EngineThread): a StudioController
    holding the generation state (`settings`, saved to `settings_path`), with the LocalBackend,
    the job queue saved in the data folder, and the writer for the output folder the state names
    at each image. Returns it with the queue's startup messages (a damaged queue file set aside,
    jobs left from last time)."""
    from studio.application.controller import StudioController
    from studio.application.generation_state import GenerationState
    from studio.backends.local.backend import LocalBackend
    from studio.core.storage.job_queue import JobQueue
    from studio.core.storage.output_folder import output_folder
    from studio.core.storage.outputs import OutputFolder

    # Saved off the GUI thread: encoding a hundred jobs at every step of a job's life cost the
    # GUI thread (and the job's start) ~4 ms a save.
    queue, messages = JobQueue.load(background=True)
    state = GenerationState(settings, settings_path)
    # The folder the artist chose, as the state has it at each image: one chosen a moment ago
    # takes the next image. The state's settings are replaced wholesale (presets): read them here.
    outputs = OutputFolder(lambda: output_folder(state.settings.outputs_dir))
    return StudioController(LocalBackend(engine), queue, outputs, state=state), messages


def _adopt_brush_file(settings) -> None:
    """The brush's hardness and opacity were kept in brush.json by an earlier build; they live in
    settings.json now. Taken over once (when settings.json has no brush of its own), then removed."""
    from studio.core.generation.settings import Settings, save_settings
    from studio.core.storage.jsonfile import read_json_object
    from studio.core.storage.paths import data_home, settings_file

    path = data_home() / "brush.json"
    if not path.is_file():
        return
    data = read_json_object(path, 4096) or {}
    if (settings.brush_hardness, settings.brush_opacity) == (Settings.brush_hardness, Settings.brush_opacity):
        for key in ("hardness", "opacity"):
            value = data.get(key)
            if type(value) in (int, float) and 0.0 <= value <= 1.0:
                setattr(settings, f"brush_{key}", float(value))
    try:
        save_settings(settings, settings_file())  # as loaded (this run's --model comes later), plus the brush
        path.unlink()
    except OSError:
        pass  # tried again at the next start


def build_main_window(engine, model: str | None = None, device: str | None = None):
    """Settings in, window on screen with its startup messages. `--model` and the fallback for a
    vanished model are for this run only: settings.json keeps just a model that loaded
    (GenerationState.remembered_model), so one bad choice cannot break every later start."""
    from studio.core.generation.settings import apply_model_defaults, effective_model, load_settings
    from studio.core.storage.paths import settings_file, startup_cleanup
    from studio.ui.main_window import MainWindow

    startup_cleanup()  # temp files a killed save left behind, before anything is written

    settings, warning = load_settings(settings_file())
    # No settings file now: a first run, or a damaged one was set aside (load_settings). Either
    # way the size, steps and guidance come from the model, never from Settings' own defaults
    # (512x512 at guidance 7 draws noise for minutes on the 64 px demo model).
    fresh = not settings_file().exists()
    if not fresh:
        _adopt_brush_file(settings)
    remembered = settings.model
    missing_model = None
    if model:
        settings.model = os.path.abspath(os.path.expanduser(model))
    elif settings.model and not os.path.exists(os.path.expanduser(settings.model)):
        missing_model, settings.model = settings.model, ""  # "" is the demo model
    if device:
        settings.device = device
    if fresh or model or missing_model:
        apply_model_defaults(settings, effective_model(settings))
    from studio.ui.theme import apply_theme

    settings.theme = apply_theme(settings.theme)  # before the window exists: every widget starts themed
    controller, queue_messages = build_controller(engine, settings, settings_file())
    controller.state.remembered_model = remembered
    window = MainWindow(controller)
    window.show()
    if warning:
        window.notify(warning)  # kept in front of the "Loading…" that follows at once
    damaged = [text for text in queue_messages if "last session" not in text]  # the Run/Discard bar says the rest
    if damaged:
        window.notify(" ".join(damaged))
    if missing_model:
        window.banner.show_error(_missing_model_error(missing_model, bool(effective_model(settings))))
    return window


def run_gui(model: str | None = None, device: str | None = None, exit_when_shown: bool = False,
            files: list[str] | None = None) -> int:
    launched = time.perf_counter()
    _ensure_streams()
    from studio.core.storage.log_file import start_log_file

    start_log_file()  # tracebacks of internal errors and failed jobs (Help -> Open log folder)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from studio.backends.local.worker import EngineThread, real_engine_factory

    app = QApplication.instance() or QApplication(sys.argv[:1])
    configure_app(app)
    engine = EngineThread(real_engine_factory)
    window = build_main_window(engine, model, device)
    if exit_when_shown:
        # Benchmark and test hook: report once the first frame has been painted, then quit.
        if files:
            window.open_files(files)

        def report() -> None:
            torch_loaded = "torch" in sys.modules
            document = window.canvas.document
            opened = "x".join(map(str, document.shape[1::-1])) if document is not None else "none"
            print(f"window-shown {time.perf_counter() - launched:.4f} torch-loaded={torch_loaded} "
                  f"icon={'none' if app.windowIcon().isNull() else 'set'} document={opened}", flush=True)
            app.quit()

        QTimer.singleShot(0, report)
        return app.exec()

    engine.start()
    window.start()
    if files:
        window.open_files(files)  # after start(): an image asked for wins over the restored session
    from studio.ui.quit_signals import QuitOnSignals

    QuitOnSignals(window.close, parent=window)  # Ctrl+C and SIGTERM close the window as its close button does
    return finish_engine(engine, app.exec())


def finish_engine(engine, code: int, timeout_ms: int = 1000) -> int:
    """After the event loop: the window's close already cancelled and waited for the engine
    (EngineCloser), saved settings and ended the session. A thread that still runs (a step or a
    model read on a stalled disk longer than the wait) is not waited for, and never destroyed
    running (Qt aborts the process then): the process ends here with os._exit instead of
    unwinding. Output files are written atomically, so nothing half-written is left under a
    final name; the next start removes the temp file."""
    if engine.stop(timeout_ms):
        return code
    import logging

    print("studio: the engine was still busy at exit; it was not waited for.", file=sys.stderr)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)
