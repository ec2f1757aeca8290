"""The main window: generation panel on the left, canvas in the middle, queue and history
docked on the right, progress below.

Widgets edit Settings (the view-model); Generate freezes them into a GenerationRequest and
hands it to the StudioController, which queues and runs the jobs, writes the images and adds
them to the history; the window shows what its signals say. Only this thread touches widgets
or makes pixmaps.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QByteArray, QEvent, QMimeData, QObject, Qt, QUrl, Signal
from PySide6.QtGui import QActionGroup, QGuiApplication, QImage, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from studio import APP_NAME
from studio.core.atomic import write_text_atomic
from studio.core.errors import ErrorKind, StudioError
from studio.core.events import (
    ImageFinished,
    ImageSaved,
    ImageSaveFailed,
    JobFailed,
    ModelFailed,
    ModelLoaded,
    ModelLoading,
)
from studio.core.jsonfile import read_json_object
from studio.core.mask_ops import PreviewCompositor
from studio.core.metadata import export_image
from studio.core.output_folder import UnsavedImage, check_output_folder, output_folder
from studio.core.outputs import png_bytes, save_input
from studio.core.paths import data_home, inputs_dir
from studio.core.presets import apply_style
from studio.core.request import InvalidRequest
from studio.core.settings import (
    Settings,
    apply_model_defaults,
    effective_model,
    request_from_settings,
    save_settings,
)
from studio.ui.canvas import CanvasView
from studio.ui.canvas_toolbar import CanvasToolbar
from studio.ui.drop import has_dropped_images
from studio.ui.generation_panel import GenerationPanel
from studio.ui.images import rgb_from_qimage
from studio.ui.model_picker import MemoryButton, ModelPicker, memory_options
from studio.ui.progress import ProgressClock
from studio.ui.queue_panel import JobTracker, QueuePanel, RestoredJobsBar
from studio.ui.recall import Recall
from studio.ui.step_scrubber import PreviewStore, StepScrubber
from studio.ui.theme import THEMES, apply_theme, canvas_background, current_theme
from studio.ui.worker import EngineWorker

DEVICES = ("auto", "cuda", "mps", "cpu")
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp);;All files (*)"
NO_MODEL_TEXT = (
    "No model chosen yet.\n\nOpen the Model list above: “Choose file or folder…” opens a Stable Diffusion "
    "1.x, 2.x or SDXL checkpoint (.safetensors) or a diffusers folder; “Add model folder…” lists every "
    "model in a folder you keep them in, such as A1111's models/Stable-diffusion or ComfyUI's "
    "models/checkpoints."
)
# What the empty canvas says once a model is ready: in the modes that need an input image,
# typing a prompt is not the next step.
READY_TEXT = {
    "txt2img": "Type a prompt and press Generate (Ctrl+Enter).",
    "img2img": "Image to image needs an input image: open one (Ctrl+O), paste it (Ctrl+V) or drop it here.",
    "inpaint": "Inpainting needs an input image: open one (Ctrl+O), paste it (Ctrl+V) or drop it here, "
               "then paint over the part to change.",
}


def brush_file() -> Path:
    """The mask brush's hardness and opacity, kept for the next start."""
    return data_home() / "brush.json"


class ErrorBanner(QFrame):
    """A calm, dismissable message above the canvas; never a blocking dialog."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setStyleSheet("#errorBanner { background: #5a2020; border-radius: 4px; } QLabel { color: #fbeaea; }")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("Dismiss")
        close.clicked.connect(self.hide)
        self._layout = layout = QHBoxLayout(self)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.action_buttons: list[QPushButton] = []
        self.hide()

    def show_error(self, error: StudioError, actions: tuple = ()) -> None:
        """`actions`: (button text, callable) pairs offered beside the message, e.g. "Save as…"."""
        hint = f"<br>{html.escape(error.hint)}" if error.hint else ""
        self.label.setText(f"<b>{html.escape(error.message)}</b>{hint}")
        for button in self.action_buttons:
            button.deleteLater()
        self.action_buttons = []
        for position, (text, slot) in enumerate(actions, start=1):
            button = QPushButton(text)
            button.clicked.connect(slot)
            self._layout.insertWidget(position, button)
            self.action_buttons.append(button)
        self.show()

    def button(self, text: str) -> QPushButton | None:
        return next((b for b in self.action_buttons if b.text() == text), None)


class _DragLeaveBalancer(QObject):
    """Eats drag-leave events on the canvas viewport. CanvasView accepts drags in its own
    dragEnterEvent without QGraphicsView's, which would have recorded the drag; so each time a
    drag left the canvas (or one it refused passed over it), QGraphicsView.dragLeaveEvent
    printed "drag leave received before drag enter". Nothing on the canvas needs the leave."""

    def eventFilter(self, watched, event) -> bool:
        return event.type() == QEvent.Type.DragLeave


class MainWindow(QMainWindow):
    HISTORY_AREA = Qt.DockWidgetArea.RightDockWidgetArea
    closing = Signal()
    jobEnded = Signal(str)  # "finished", "cancelled" or "failed", once the window has shown it

    def __init__(self, settings: Settings, settings_path: Path, worker: EngineWorker, controller=None):
        """`controller`: the StudioController the composition root (studio.app) built; without
        one, the window builds the same one around `worker` (tests, scripts)."""
        super().__init__()
        self.setWindowTitle(APP_NAME)
        self.resize(1280, 820)
        self.settings = settings
        self.settings_path = settings_path
        # What settings.json says about the model: only a model that loaded is remembered, so a
        # wrong folder or `studio --model /nope` cannot break every later start.
        self.remembered_model = settings.model
        self.worker = worker  # the engine thread's worker: what closing stops (EngineCloser)
        if controller is None:
            from studio.app import build_controller

            controller, _messages = build_controller(worker)
        self.controller = controller
        self.jobs = JobTracker()
        self.previews = PreviewStore()
        self.model_ready = False
        self.last_image_path: Path | None = None
        self._clock = ProgressClock()
        self._load_note = ""  # what ModelLoading said about memory; kept if the load fails
        self._previews: PreviewCompositor | None = None  # inpaint previews onto the kept area
        self._notice = ""  # a startup message kept in front of the loading status until the model is ready
        self.unsaved: UnsavedImage | None = None  # a finished image whose file could not be written

        self.panel = GenerationPanel()
        self.panel.load(settings)
        self.canvas = CanvasView()
        self.banner = ErrorBanner()
        self._build_toolbar()
        self.addToolBarBreak()
        self.canvas_toolbar = CanvasToolbar(self.canvas, self)
        self.addToolBar(self.canvas_toolbar)
        self.canvas.set_mask_color(settings.mask_color)
        self._build_edit_menu()
        self._build_layout()
        self._build_status()
        self.recall = Recall(self)
        self._build_queue_dock()
        self._left_column.insertWidget(0, self.recall.preset_bar)
        self.recall.preset_bar.styleApplied.connect(self.panel.style_chip.set_style)
        self._connect()
        self._build_file_and_view_menus()
        self._show_model_state()
        self.setAcceptDrops(True)
        self._drag_leave_balancer = _DragLeaveBalancer(self)
        self.canvas.viewport().installEventFilter(self._drag_leave_balancer)
        self._restore_window_state()
        self._restore_brush()

    # -- construction ---------------------------------------------------------------------
    def _build_toolbar(self) -> None:
        bar = QToolBar("Model")
        bar.setObjectName("modelToolbar")
        bar.setMovable(False)
        # Bound methods, not a captured Settings: Recall replaces self.settings wholesale.
        self.picker = ModelPicker(self._live_settings, self._save_settings, self)
        self.model_combo = self.picker.model_combo
        self.vae_combo = self.picker.vae_combo
        self.memory_button = MemoryButton(self._live_settings, self._save_settings, self)
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("deviceCombo")
        self.device_combo.setAccessibleName("Device")
        self.device_combo.addItems(DEVICES)
        self.device_combo.setCurrentText(self.settings.device if self.settings.device in DEVICES else "auto")
        bar.addWidget(QLabel(" Model: "))
        bar.addWidget(self.model_combo)
        bar.addWidget(QLabel("  VAE: "))
        bar.addWidget(self.vae_combo)
        bar.addSeparator()
        bar.addWidget(self.memory_button)
        bar.addSeparator()
        bar.addWidget(QLabel(" Device: "))
        bar.addWidget(self.device_combo)
        self.addToolBar(bar)

    def _build_edit_menu(self) -> None:
        """Undo/Redo act on the canvas wherever the focus is; a focused prompt box still takes
        Ctrl+Z for its own text (Qt offers the key to it first), the menu items never do."""
        self.edit_menu = self.menuBar().addMenu("&Edit")
        self.edit_menu.setObjectName("editMenu")
        self.edit_menu.addAction(self.canvas_toolbar.undo_action)
        self.edit_menu.addAction(self.canvas_toolbar.redo_action)
        self.edit_menu.addSeparator()
        self.edit_menu.addAction(self.canvas_toolbar.extend_action)

    def _build_file_and_view_menus(self) -> None:
        """File (open, output folder) before Edit; View with the theme."""
        self.file_menu = QMenu("&File", self)
        self.file_menu.setObjectName("fileMenu")
        self.menuBar().insertMenu(self.edit_menu.menuAction(), self.file_menu)
        self.file_menu.addAction(self.canvas_toolbar.open_action)
        self.file_menu.addAction(self.canvas_toolbar.export_action)
        self.file_menu.addSeparator()
        self.output_folder_action = self.file_menu.addAction("Output folder…", self.choose_output_folder)
        self.output_folder_action.setObjectName("outputFolderAction")
        self.output_folder_action.setToolTip("Choose the folder finished images are saved in")
        self.view_menu = self.menuBar().addMenu("&View")
        self.view_menu.setObjectName("viewMenu")
        themes = QActionGroup(self)
        self.theme_actions = {}
        for name in THEMES:
            action = self.view_menu.addAction(f"{name.capitalize()} theme")
            action.setObjectName(f"{name}ThemeAction")
            action.setCheckable(True)
            action.setChecked(name == self.settings.theme)
            action.triggered.connect(lambda _=False, theme=name: self.set_theme(theme))
            themes.addAction(action)
            self.theme_actions[name] = action
        self.view_menu.addSeparator()
        self.view_menu.addAction(self.recall.dock.toggleViewAction())
        self.view_menu.addAction(self.queue_dock.toggleViewAction())
        self._sync_canvas_background()

    def set_theme(self, name: str) -> None:
        """Switch the whole application's look now and remember it."""
        self.settings.theme = apply_theme(name)
        self.theme_actions[self.settings.theme].setChecked(True)
        self._sync_canvas_background()
        self._save_settings()

    def _sync_canvas_background(self) -> None:
        self.canvas.setBackgroundBrush(canvas_background(current_theme() or self.settings.theme))

    def _restore_window_state(self) -> None:
        """Dock widths, toolbars and the window's size as the last quit left them."""
        for text, restore in ((self.settings.window_geometry, self.restoreGeometry),
                              (self.settings.window_state, self.restoreState)):
            if text:
                try:
                    restore(QByteArray(base64.b64decode(text.encode("ascii"), validate=True)))
                except (ValueError, UnicodeEncodeError):
                    pass  # a hand-edited value: the default layout

    def _restore_brush(self) -> None:
        """The brush's hardness and opacity as the last quit left them (its size comes back with
        the session, the mask colour with the settings)."""
        data = read_json_object(brush_file(), 4096) if brush_file().exists() else None
        if not data:
            return
        changes = {key: min(1.0, max(0.0, float(data[key]))) for key in ("hardness", "opacity")
                   if type(data.get(key)) in (int, float)}
        if changes:
            self.canvas.set_brush(**changes)

    def _store_brush(self) -> None:
        brush = self.canvas.brush
        try:
            write_text_atomic(brush_file(), json.dumps({"hardness": brush.hardness, "opacity": brush.opacity}))
        except OSError:
            pass  # best effort, as the session is: the defaults next time

    def _store_window_state(self) -> None:
        self.settings.window_state = base64.b64encode(bytes(self.saveState().data())).decode("ascii")
        self.settings.window_geometry = base64.b64encode(bytes(self.saveGeometry().data())).decode("ascii")

    def _build_layout(self) -> None:
        left = QWidget()
        self._left_column = QVBoxLayout(left)
        self._left_column.setContentsMargins(0, 0, 0, 0)
        self._left_column.addWidget(self.panel)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(left)
        scroll.setMinimumWidth(320)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        self.restored_bar = RestoredJobsBar(self.controller)
        self.scrubber = StepScrubber(self.previews, self._show_step, self._show_final)
        right_layout.addWidget(self.banner)
        right_layout.addWidget(self.restored_bar)
        right_layout.addWidget(self.canvas, 1)
        right_layout.addWidget(self.scrubber)
        splitter = QSplitter()
        splitter.addWidget(scroll)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([360, 920])
        self.setCentralWidget(splitter)

    def _build_queue_dock(self) -> None:
        """The Queue dock under the History dock; part of the saved window state (its objectName)."""
        self.queue_panel = QueuePanel(self.controller)
        dock = QDockWidget("Queue", self)
        dock.setObjectName("queueDock")
        dock.setWidget(self.queue_panel)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(self.HISTORY_AREA, dock)
        self.splitDockWidget(self.recall.dock, dock, Qt.Orientation.Vertical)
        self.queue_dock = dock

    def _show_step(self, pixels: np.ndarray, size: tuple[int, int] | None) -> None:
        self.canvas.show_pixels(pixels, size, what="step")

    def _show_final(self) -> None:
        self.canvas.show_current()

    def _job_selected(self, job_id: str) -> None:
        """A job picked in the queue: its steps in the scrubber while they are in memory."""
        if job_id != self.controller.running_job and self.scrubber.show_run(job_id):
            self.scrubber.slider.setValue(self.scrubber.slider.maximum())

    def _build_status(self) -> None:
        self.progress = QProgressBar()
        self.progress.setObjectName("progressBar")
        self.progress.setAccessibleName("Progress")
        self.progress.setMaximumWidth(320)
        self.progress.setTextVisible(False)
        self.status_label = QLabel()
        self.status_label.setObjectName("statusLabel")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.progress)

    def _connect(self) -> None:
        self.panel.generateClicked.connect(self.generate)
        self.panel.cancelClicked.connect(self.cancel)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, self.generate)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.cancel)
        self.canvas.imagesDropped.connect(self._canvas_drop)
        self.panel.mode.currentIndexChanged.connect(self._show_ready_text)
        self.canvas.maskColorChanged.connect(self._mask_color_chosen)
        self.canvas.extended.connect(self._canvas_extended)
        self.picker.modelChosen.connect(self.set_model)
        self.picker.message.connect(self._status)
        self.picker.problem.connect(self.banner.show_error)
        self.memory_button.changed.connect(self._memory_changed)
        self.device_combo.currentTextChanged.connect(self._device_changed)
        c = self.controller  # lives in the GUI thread: its signals arrive here directly
        c.modelLoading.connect(self._model_loading)
        c.modelLoaded.connect(self._model_loaded)
        c.modelFailed.connect(self._model_failed)
        c.jobStarted.connect(self._job_started)
        c.stepProgress.connect(self._step)
        c.imageReady.connect(self._image_ready)
        c.imageSaved.connect(self._image_saved)
        c.saveFailed.connect(self._save_failed)
        c.jobFailed.connect(self._job_failed)
        c.jobEnded.connect(self._controller_job_ended)
        c.message.connect(self._status)
        self.queue_panel.jobSelected.connect(self._job_selected)
        self.scrubber.message.connect(self._status)

    # -- model ----------------------------------------------------------------------------
    def model_path(self) -> str:
        return effective_model(self.settings)

    def _live_settings(self) -> Settings:
        return self.settings

    def _show_model_state(self) -> None:
        model = self.model_path()
        self.picker.show_current(model)
        if not model:
            self.canvas.show_message(NO_MODEL_TEXT)
            self._status("Choose a model to start.")

    def _show_ready_text(self) -> None:
        """The empty canvas says what the chosen mode needs next."""
        if self.model_ready and self.canvas.image_size is None and self.canvas.document is None:
            self.canvas.show_message(READY_TEXT.get(self.panel.current_mode(), READY_TEXT["txt2img"]))

    def notify(self, text: str) -> None:
        """A startup message (a restored session, settings set aside) that the model's loading
        and ready lines that follow at once must not wipe out: they are said after it."""
        self._notice = " ".join(t for t in (self._notice, text) if t)
        self._status(self._notice)

    def start(self) -> None:
        """Called once the window is on screen: bring back an unsaved session, start
        autosaving, and warm the model up in the background."""
        if self.recall.restore_session():
            self.notify("Restored your last session.")
        self.check_output_folder()
        self.recall.watch()
        self.picker.sync()  # a restored session may name another VAE or memory options
        self.memory_button.sync()
        if memory_options(self.settings) != memory_options(Settings()):
            # The engine starts with the defaults; only a change needs saying (and the first
            # message imports the engine's memory module, i.e. torch, in the engine thread).
            self.controller.set_memory(self.memory_button.options())
        self.picker.rescan()
        self.restored_bar.offer()  # jobs the last session left: the artist says whether to run them
        if self.model_path():
            self.controller.load_model(self.model_path(), self.settings.device, self.settings.vae)

    def set_model(self, path: str) -> None:
        self.panel.store(self.settings)
        self.settings.model = path
        if apply_model_defaults(self.settings, path):
            self.panel.load(self.settings)
        self._save_settings()
        self.model_ready = False
        self._show_model_state()
        self.banner.hide()
        self.controller.load_model(path, self.settings.device, self.settings.vae)

    def choose_model(self) -> None:
        """The picker's "Choose file or folder…": a .safetensors file or a diffusers folder."""
        self.picker.choose_file()

    def _memory_changed(self) -> None:
        self.controller.set_memory(self.memory_button.options())
        offload = "on: the model reloads at the next generation" if self.settings.cpu_offload else "off"
        self._status(f"Memory options: attention slicing {'on' if self.settings.attention_slicing else 'off'}, "
                     f"VAE tiling {self.settings.vae_tiling}, model CPU offload {offload}.")

    def _device_changed(self, device: str) -> None:
        self.settings.device = device
        self._save_settings()
        if self.model_path():
            self.controller.load_model(self.model_path(), device, self.settings.vae)

    def _model_loading(self, event: ModelLoading) -> None:
        self._load_note = event.note
        self._status(_with_note(f"{self._notice} Loading {Path(event.model).name} on {event.device}…".strip(), event.note))

    def _model_loaded(self, event: ModelLoaded) -> None:
        self.model_ready = True
        self._load_note = ""
        if Path(event.model) == Path(self.model_path()).expanduser().resolve() and self.remembered_model != self.settings.model:
            self.remembered_model = self.settings.model
            self._save_settings()
        ready = f"Ready: {Path(event.model).name} on {event.device} ({event.dtype}), loaded in {event.seconds:.1f} s."
        self._status(f"{self._notice} {ready}".strip())
        self._notice = ""
        self._show_ready_text()

    def _model_failed(self, event: ModelFailed) -> None:
        error = event.error
        self.model_ready = False
        self.banner.show_error(error)
        self._status(_with_note(f"{self._notice} The model could not be loaded.".strip(), self._load_note))
        self._load_note = ""
        self._notice = ""

    # -- jobs -----------------------------------------------------------------------------
    # Job state lives in the controller's queue; the window keeps only what it shows.
    @property
    def running(self) -> bool:
        return self.controller.running_job is not None

    @property
    def _request(self):
        """The running job's request (None when nothing runs)."""
        job_id = self.controller.running_job
        job = self.controller.job(job_id) if job_id else None
        return job.request if job is not None else None

    def generate(self) -> None:
        """Queue a job from the panel: it starts at once when nothing runs, else it waits its turn."""
        self.panel.store(self.settings)
        model = self.model_path()
        if not model:
            self.banner.show_error(StudioError(ErrorKind.BAD_INPUT, "No model chosen yet.",
                                               "Choose one in the Model list above."))
            return
        try:
            request = request_from_settings(self.settings, model, *self._save_inputs())
            # The style on the chip wraps the prompts here, so the image's metadata holds the
            # final prompt (as A1111 writes it) while the prompt box keeps the artist's words.
            prompt, negative = apply_style(self.panel.style_chip.style, request.prompt, request.negative_prompt)
            request = dataclasses.replace(request, prompt=prompt, negative_prompt=negative).validated()
        except InvalidRequest as exc:
            self.banner.show_error(StudioError(ErrorKind.BAD_INPUT, str(exc)))
            return
        if not self.check_output_folder():
            return
        if self.unsaved is None:  # an unsaved image keeps its banner and "Save as…" until it is saved
            self.banner.hide()
        self._notice = ""
        self._save_settings()
        compositor = self._preview_compositor(request)
        queued = self.running
        job_id = self.controller.generate(request)
        self.jobs.compositors[job_id] = compositor
        if queued:
            self._status(f"Queued: {self.controller.queue.run_order().__len__()} job(s) waiting.")

    def _save_inputs(self) -> tuple[str | None, str | None]:
        """Write the canvas image and mask to disk for the request (img2img / inpaint)."""
        mode = self.settings.mode
        if mode == "txt2img":
            return None, None
        canvas = self.canvas
        if canvas.document is None:
            raise InvalidRequest("This mode needs an input image: open one (Ctrl+O), paste it, or use a result as input.")
        if mode == "inpaint" and not canvas.mask.any():
            raise InvalidRequest("The mask is empty: paint over the part to change with the brush (B).")
        init = save_input(canvas.document, inputs_dir())
        mask = save_input(canvas.mask, inputs_dir()) if mode == "inpaint" else None
        return str(init), (str(mask) if mask else None)

    def cancel(self) -> None:
        """Cancel/Esc: the running job stops at its next step; queued jobs stay queued."""
        job_id = self.controller.running_job
        if job_id is not None:
            self.controller.cancel_job(job_id)
            self._status("Cancelling…")

    def _job_started(self, job_id: str) -> None:
        job = self.controller.job(job_id)
        if job is None:
            return
        self.jobs.started(job_id)
        self._previews = self.jobs.compositors.get(job_id)
        self.scrubber.clear()
        self.panel.last_seed.setText(f"Seed used: {job.request.seed}")
        self.panel.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)  # busy until the first step reports its total
        self._clock.reset()
        self._status("Starting…")

    def _step(self, step) -> None:
        request = self._request
        if request is None or step.job_id != self.controller.running_job:
            return
        if step.preview is not None:
            started = time.perf_counter()
            size = (request.width, request.height)
            if self._previews is not None:  # inpainting: only the masked part is being made
                frame = self._previews(step.preview)
                self.canvas.show_pixels(frame)
            else:
                self.canvas.show_pixels(step.preview, size)
            self.previews.add_step(step.job_id, step.image_index, step.step, step.total, step.preview, size)
            self.jobs.preview_cost.add(time.perf_counter() - started, step.seconds_per_step)
        self._clock.add(step.seconds_per_step)
        total = step.total * request.batch_count
        done = step.image_index * step.total + step.step
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        label = self._clock.text(step.step, step.total, total - done)
        if request.batch_count > 1:
            label = f"Image {step.image_index + 1}/{request.batch_count} · {label}"
        self._status(_with_note(label, self.jobs.preview_cost.text()))

    def _preview_compositor(self, request) -> PreviewCompositor | None:
        """Inpaint previews go onto the kept part of the input, blurred as the engine blends the
        final image; whatever the artist paints meanwhile, the job's own input and mask are used."""
        canvas = self.canvas
        if request.mode.value != "inpaint" or canvas.document is None or canvas.mask is None:
            return None
        return PreviewCompositor(canvas.document, canvas.mask.copy(), request.mask_blur, (request.width, request.height),
                                 request.inpaint_area.value == "only_masked", request.inpaint_padding)

    def _image_ready(self, event: ImageFinished) -> None:
        """The decoded image, shown at once; it becomes the canvas's result (an undo step, with
        its file) when the writer thread has it on disk (_image_saved)."""
        self.jobs.image_ready(event)
        self.previews.set_final(event.job_id, event.image_index, event.image)
        if event.path is None:
            self.canvas.show_pixels(event.image, what="unsaved")
        else:  # a backend that saved it itself
            self.canvas.show_result(event.image, event.path)
            self.canvas_toolbar.sync()
        if event.note and event.note not in self.jobs.notes:
            self.jobs.notes.append(event.note)
        self._status(_with_note("Saving…", event.note))

    def _image_saved(self, event: ImageSaved) -> None:
        ready = self.jobs.written(event.job_id, event.image_index)
        pixels = ready.image if ready is not None else None
        if pixels is not None:
            self.canvas.show_result(pixels, event.path)  # one undo step per image
            self.canvas_toolbar.sync()
        self.last_image_path = event.path
        self.jobs.saved_paths.setdefault(event.job_id, []).append(event.path)
        self._status(_with_note(f"Saved {event.path}", ready.note if ready is not None else ""))
        self._maybe_ended(event.job_id)

    def _save_failed(self, event: ImageSaveFailed) -> None:
        """Not on disk (disk full, read-only folder): the image stays on the canvas with the error
        and "Save as…"; nothing is lost."""
        self.jobs.written(event.job_id, event.image_index)
        self.jobs.write_failed.add(event.job_id)
        self._keep_unsaved(UnsavedImage(event.error.message, event.error.hint, event.image, event.request))
        self._maybe_ended(event.job_id)

    def _keep_unsaved(self, unsaved: UnsavedImage) -> None:
        self.unsaved = unsaved
        self.canvas.show_result(unsaved.image, None, "Unsaved result")  # Export and "Use as input" work on it too
        self.canvas_toolbar.sync()
        self.banner.show_error(unsaved, (("Save as…", self.save_unsaved_as),
                                         ("Choose output folder…", self.choose_output_folder)))
        self._status("The image was made but not saved: “Save as…” keeps it.")

    def _job_failed(self, event: JobFailed) -> None:
        error = event.error
        if isinstance(error, UnsavedImage):
            # A backend that saves itself could not write the image: it stays on the canvas.
            self._keep_unsaved(error)
            return
        self.banner.show_error(error)

    def _controller_job_ended(self, job_id: str, status: str) -> None:
        """The backend is done with the job; the window says so once its images are written."""
        self.jobs.ended(job_id, status)
        if job_id == self.jobs.current and self.controller.running_job is None:
            self._end_job()
        if status == "done":
            self.progress.setValue(self.progress.maximum())
        self._maybe_ended(job_id)

    def _maybe_ended(self, job_id: str) -> None:
        outcome = self.jobs.outcome(job_id)
        if outcome is None:
            return  # still running, or images of it still on their way to the disk
        status, seconds = outcome
        paths = self.jobs.saved_paths.pop(job_id, [])
        self.jobs.forget(job_id)
        if job_id == self.jobs.current or self.controller.running_job is None:
            self._say_ended(status, seconds, paths)
        if status == "done" and job_id in self.previews:
            self.scrubber.show_run(job_id)
        self.jobEnded.emit({"done": "finished"}.get(status, status))

    def _say_ended(self, status: str, seconds: float, paths: list) -> None:
        if status == "failed":
            if self.unsaved is None:
                self._status("Generation failed.")
            return
        if status == "cancelled":
            kept = f" ({len(paths)} image(s) of the batch were saved)" if paths else ""
            self._status(f"Cancelled{kept}.")
            return
        if self.unsaved is None:
            self.banner.hide()  # an error from an earlier job is history now
        saved = f"Saved {paths[-1]}" if paths else ""
        cost = self.jobs.preview_cost.text()
        self._status(_with_note(f"Done in {seconds:.1f} s. {saved} {cost}".rstrip(), " ".join(self.jobs.notes)))

    # -- the output folder ----------------------------------------------------------------
    def output_folder(self) -> Path:
        return output_folder(self.settings.outputs_dir)

    def check_output_folder(self) -> bool:
        """At start and before each job: a folder images cannot be written to is said now,
        with a way out, not after a whole run."""
        problem = check_output_folder(self.output_folder())
        if problem is None:
            return True
        self.banner.show_error(problem, (("Choose output folder…", self.choose_output_folder),))
        self._status("Images cannot be saved in the output folder.")
        return False

    def choose_output_folder(self, folder: str | None = None) -> bool:
        """Ask for (or take) a folder, check it, and use it from the next image on."""
        if not folder:
            folder = QFileDialog.getExistingDirectory(self, "Save images in", str(self.output_folder()))
        if not folder:
            return False
        problem = check_output_folder(Path(folder))
        if problem is not None:
            self.banner.show_error(problem, (("Choose output folder…", self.choose_output_folder),))
            return False
        self.settings.outputs_dir = str(Path(folder).expanduser())
        self._save_settings()
        if self.unsaved is None:
            self.banner.hide()
        self._status(f"Images are saved in {self.settings.outputs_dir} from now on.")
        return True

    def save_unsaved_as(self, path: str | None = None) -> bool:
        """Write the image whose save failed (with its full metadata) where the artist says."""
        unsaved = self.unsaved
        if unsaved is None:
            return False
        if not path:
            start = Path.home() / f"{unsaved.request.seed}.png"
            path, _ = QFileDialog.getSaveFileName(self, "Save the image as", str(start), "PNG image (*.png)")
        if not path:
            return False
        try:
            Path(path).write_bytes(png_bytes(Image.fromarray(unsaved.image), unsaved.request))
        except OSError as exc:
            self.banner.show_error(StudioError(ErrorKind.BAD_INPUT, f"Could not save {path}: {exc.strerror or exc}",
                                               "Choose another folder."),
                                   (("Save as…", self.save_unsaved_as),))
            return False
        self.unsaved = None
        self.banner.hide()
        self._status(f"Saved {path}")
        return True

    def _end_job(self) -> None:
        """Nothing runs now: the canvas's own view back (after a cancel or failure), progress idle."""
        if self.canvas.showing == "preview":
            self.canvas.show_current()
        self._previews = None
        self.panel.set_running(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)

    # -- images in and out ----------------------------------------------------------------
    def open_image(self) -> None:
        """Open… is a drop of the chosen file: a studio image offers its settings too. The
        dialog starts where the results are."""
        start = self.output_folder()
        path, _ = QFileDialog.getOpenFileName(self, "Open an image", str(start if start.is_dir() else Path.home()),
                                              IMAGE_FILTER)
        if path and not self.open_files([path]):
            self.load_image_file(path)  # not an image the drop takes: say why it cannot be opened

    def load_image_file(self, path: str) -> bool:
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB")).copy()
        except (OSError, ValueError) as exc:
            self.banner.show_error(StudioError(ErrorKind.BAD_INPUT, f"Could not open {Path(path).name}: {exc}",
                                               "Open a PNG, JPEG or WebP image."))
            return False
        self.set_input_image(pixels, f"Open {Path(path).name}")
        return True

    def paste_image(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        if mime.hasImage():
            image = QGuiApplication.clipboard().image().convertToFormat(QImage.Format.Format_RGB888)
            self.set_input_image(rgb_from_qimage(image), "Paste image")
        elif mime.hasUrls() and mime.urls()[0].isLocalFile():
            self.load_image_file(mime.urls()[0].toLocalFile())
        else:
            self._status("The clipboard holds no image.")

    def set_input_image(self, pixels: np.ndarray, label: str) -> None:
        """A new input image (opened, dropped, pasted) starts clean: an empty mask, and Image to
        image rather than an Inpaint mode left from the last picture (one undo step)."""
        self.canvas.set_document(pixels, label, np.zeros(pixels.shape[:2], np.uint8))
        if self.panel.current_mode() == "inpaint":
            self.panel.set_mode("img2img")
        self._adopt_input_size(pixels)

    def use_result_as_input(self) -> None:
        if self.canvas.use_result_as_input():
            self._adopt_input_size(self.canvas.document)

    def _adopt_input_size(self, pixels: np.ndarray) -> None:
        """An input image sets the size (multiples of 8) and leaves txt2img, as A1111's
        "Send to img2img" does."""
        height, width = pixels.shape[:2]
        self.panel.width_spin.setValue(max(64, round(width / 8) * 8))
        self.panel.height_spin.setValue(max(64, round(height / 8) * 8))
        if self.panel.current_mode() == "txt2img":
            self.panel.set_mode("img2img")
        self.banner.hide()

    def _mask_color_chosen(self, color: str) -> None:
        self.settings.mask_color = color
        self._save_settings()

    def _canvas_extended(self) -> None:
        """The canvas grew for outpainting: its size becomes the size, and Generate inpaints
        the new area."""
        self._adopt_input_size(self.canvas.document)
        self.panel.set_mode("inpaint")
        self._status(f"Canvas extended to {self.canvas.document.shape[1]}×{self.canvas.document.shape[0]}: "
                     "Generate paints the new area (Inpaint).")

    def export_image(self) -> None:
        canvas = self.canvas
        pixels = canvas.result if canvas.showing == "result" else canvas.document
        if pixels is None:
            self._status("Nothing to export yet.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export image", str(Path.home() / "image.png"), IMAGE_FILTER)
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> None:
        canvas = self.canvas
        try:
            if canvas.showing == "result" and canvas.result_path:
                export_image(canvas.result_path, path)  # PNG, JPEG or WebP, metadata kept
            else:
                pixels = canvas.result if canvas.showing == "result" else canvas.document
                Image.fromarray(pixels).save(path)
        except (OSError, ValueError) as exc:
            self.banner.show_error(StudioError(ErrorKind.BAD_INPUT, f"Could not export to {path}: {exc}"))
            return
        self._status(f"Exported {path}")

    # -- misc -----------------------------------------------------------------------------
    def _status(self, text: str) -> None:
        self.status_label.setText(text)

    def _save_settings(self) -> None:
        try:
            save_settings(dataclasses.replace(self.settings, model=self.remembered_model), self.settings_path)
        except OSError as exc:
            self._status(f"Could not save settings: {exc}")

    def dragEnterEvent(self, event) -> None:
        if has_dropped_images(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if has_dropped_images(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        """An image dropped anywhere (the prompt boxes pass theirs on): its settings, or the
        image as input, or both, as the artist picks (Recall.restore_from_image)."""
        if has_dropped_images(event.mimeData()):
            event.acceptProposedAction()
            self.recall.handle_drop(event.mimeData())

    def _canvas_drop(self, paths: list[str]) -> None:
        """Dropped on the canvas: the same as anywhere else on the window."""
        if not self.open_files(paths):
            self.load_image_file(paths[0])  # not an image the drop takes: say why it cannot be opened

    def open_files(self, paths: list[str]) -> bool:
        """Open image files as a drop on the window does (`studio FILE...`, the desktop entry)."""
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
        return self.recall.handle_drop(mime)

    def closeEvent(self, event) -> None:
        """Save first, then stop the engine without freezing: a running step is cancelled and
        waited for with a visible message (EngineCloser); the window closes when it ended or
        the wait ran out. A running QThread is never destroyed (EngineThread.keep_alive)."""
        closer = getattr(self, "_closer", None)
        if closer is None:
            self.panel.store(self.settings)
            self._store_window_state()
            self._store_brush()
            self._save_settings()
            self.controller.close()  # cancels the running job; the images already made are written
            self.recall.end_session()
            self.closing.emit()
            engine = getattr(self.worker, "engine_thread", None)
            if engine is not None:
                from PySide6.QtWidgets import QProgressDialog

                from studio.ui.worker import EngineCloser

                self._closer = closer = EngineCloser(engine, parent=self)
                if not closer.begin():
                    self._status("Finishing the current step…")
                    dialog = QProgressDialog("Finishing the current step…", "Quit now", 0, 0, self)
                    dialog.setObjectName("closingDialog")
                    dialog.setWindowTitle(APP_NAME)
                    dialog.setWindowModality(Qt.WindowModality.WindowModal)
                    dialog.setMinimumDuration(0)
                    dialog.canceled.connect(closer.give_up)
                    closer.done.connect(dialog.reset)
                    closer.done.connect(self.close)
                    dialog.show()
                    self.closing_dialog = dialog
        if closer is not None and closer.result is None:
            event.ignore()  # still finishing the step; `done` closes the window
            return
        super().closeEvent(event)


def _with_note(text: str, note: str) -> str:
    """A status line with the engine's note for the artist (memory, a VAE retried in fp32), if any."""
    return f"{text.rstrip()} {note}" if note else text
