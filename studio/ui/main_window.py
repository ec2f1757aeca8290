"""The main window: generation panel on the left, canvas in the middle, queue and history
docked on the right, progress below. Layout and connections only.

Who does what: the StudioController (studio.application) owns the generation state, the job
queue, output writing and history; the services beside it restore presets, history entries
and the session. In the window: JobView (Generate, Cancel, what a job shows), ModelStatus (the
model's choice and loading), ImageInput (the input image), OutputActions (the output folder,
"Save as…", Export) and Recall (presets, the History dock, dropped images). Only this thread
touches widgets or makes pixmaps.
"""

from __future__ import annotations

import base64

from PySide6.QtCore import QByteArray, QEvent, QMimeData, QObject, Qt, QUrl, Signal
from PySide6.QtGui import QActionGroup, QDesktopServices, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFrame,
    QLabel,
    QMainWindow,
    QMenu,
    QProgressBar,
    QProgressDialog,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from studio import APP_NAME
from studio.application.controller import StudioController
from studio.application.history_service import HistoryService
from studio.application.session_service import CanvasSnapshot, SessionService
from studio.core.errors import ErrorKind, StudioError
from studio.core.events import Event, ModelFailed, ModelLoaded
from studio.core.generation.settings import Settings
from studio.core.storage.paths import logs_dir
from studio.ui.banner import ErrorBanner
from studio.ui.canvas import CanvasView
from studio.ui.canvas_toolbar import CanvasToolbar
from studio.ui.drop import has_dropped_images
from studio.ui.elided_label import ElidedLabel
from studio.ui.generation_panel import GenerationPanel
from studio.ui.image_input import ImageInput
from studio.ui.job_view import JobView
from studio.ui.model_picker import MemoryButton, ModelPicker, memory_options
from studio.ui.model_status import ModelStatus
from studio.ui.output_actions import OutputActions
from studio.ui.queue_panel import QueuePanel, RestoredJobsBar
from studio.ui.recall import Recall
from studio.ui.step_scrubber import StepScrubber
from studio.ui.theme import THEMES, apply_theme, canvas_background, current_theme

DEVICES = ("auto", "cuda", "mps", "cpu")


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

    def __init__(self, controller: StudioController):
        """`controller`: the studio without its window (studio.launch.build_controller): the
        generation state the panels edit, the queue, and the backend that runs the jobs."""
        super().__init__()
        self.setWindowTitle(APP_NAME)
        self.resize(1280, 820)
        self.controller = controller
        self.state = controller.state

        self.panel = GenerationPanel()
        self.panel.load(self.state.settings)
        self.panel.lora_button.use_model_dirs(self._model_dirs)
        self.canvas = CanvasView()
        self.banner = ErrorBanner()
        self.outputs = OutputActions(self)
        self.image_input = ImageInput(self)
        self.job_view = JobView(self)
        self._build_toolbar()
        self.model_status = ModelStatus(self)
        self.addToolBarBreak()
        self.canvas_toolbar = CanvasToolbar(self.canvas, self)
        self.addToolBar(self.canvas_toolbar)
        self.canvas.set_mask_color(self.settings.mask_color)
        self._build_edit_menu()
        self._build_layout()
        self._build_status()
        self.history = HistoryService(controller)
        self.recall = Recall(self, self.history)
        self.session = SessionService(self.state, self._canvas_snapshot, self)
        warnings = self.recall.load()
        if warnings:
            self.say(" ".join(warnings))
        self._build_queue_dock()
        self._left_column.insertWidget(0, self.recall.preset_bar)
        self._connect()
        self._build_file_and_view_menus()
        self.model_status.show_state()
        self.setAcceptDrops(True)
        self._drag_leave_balancer = _DragLeaveBalancer(self)
        self.canvas.viewport().installEventFilter(self._drag_leave_balancer)
        self._restore_window_state()
        self.canvas.set_brush(hardness=self.settings.brush_hardness, opacity=self.settings.brush_opacity)

    def _model_dirs(self) -> list[str]:
        return list(self.settings.model_dirs)

    @property
    def settings(self) -> Settings:
        """The generation state's settings (replaced wholesale by a preset or a recalled image:
        read them here, never keep them)."""
        return self.state.settings

    # -- construction ---------------------------------------------------------------------
    def _build_toolbar(self) -> None:
        bar = QToolBar("Model")
        bar.setObjectName("modelToolbar")
        bar.setMovable(False)
        # Bound methods, not a captured Settings: the state's settings are replaced wholesale.
        self.picker = ModelPicker(self._live_settings, self.state.save, self)
        self.model_combo = self.picker.model_combo
        self.vae_combo = self.picker.vae_combo
        self.memory_button = MemoryButton(self._live_settings, self.state.save, self)
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

    def _live_settings(self) -> Settings:
        return self.state.settings

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
        self.output_folder_action = self.file_menu.addAction("Output folder…", self.outputs.choose_folder)
        self.output_folder_action.setObjectName("outputFolderAction")
        self.output_folder_action.setToolTip("Choose the folder finished images are saved in")
        self.file_menu.addSeparator()
        self.quit_action = self.file_menu.addAction("Quit", self.close)
        self.quit_action.setObjectName("quitAction")
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        if self.quit_action.shortcut().isEmpty():  # platforms without a standard Quit key
            self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
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
        self.help_menu = self.menuBar().addMenu("&Help")
        self.help_menu.addAction("Open log folder", self.open_log_folder)

    def open_log_folder(self) -> bool:
        """The studio's log (tracebacks of internal errors and failed jobs), for a bug report."""
        folder = logs_dir()
        folder.mkdir(parents=True, exist_ok=True)
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def set_theme(self, name: str) -> None:
        """Switch the whole application's look now and remember it."""
        self.settings.theme = apply_theme(name)
        self.theme_actions[self.settings.theme].setChecked(True)
        self._sync_canvas_background()
        self.state.save()

    def _sync_canvas_background(self) -> None:
        self.canvas.setBackgroundBrush(canvas_background(current_theme() or self.settings.theme))

    def _build_layout(self) -> None:
        left = QWidget()
        self._left_column = QVBoxLayout(left)
        self._left_column.setContentsMargins(0, 0, 0, 0)
        self._left_column.addWidget(self.panel)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(left)
        scroll.setMinimumWidth(320)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        # Generate and Cancel under the scrolling panel: always in view, whatever the window's height.
        left_side = QWidget()
        left_side_layout = QVBoxLayout(left_side)
        left_side_layout.setContentsMargins(0, 0, 0, 0)
        left_side_layout.setSpacing(0)
        left_side_layout.addWidget(scroll, 1)
        left_side_layout.addWidget(self.panel.action_bar)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        self.restored_bar = RestoredJobsBar(self.controller)
        self.scrubber = StepScrubber(self.job_view.previews, self.job_view.show_step, self.job_view.show_final)
        right_layout.addWidget(self.banner)
        right_layout.addWidget(self.restored_bar)
        right_layout.addWidget(self.canvas, 1)
        right_layout.addWidget(self.scrubber)
        # Its room is kept while it is hidden: the canvas does not jump when a run's steps appear.
        # Its width never sets the window's: a hidden bar must not narrow the docks the artist sized.
        policy = self.scrubber.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
        self.scrubber.setSizePolicy(policy)
        splitter = QSplitter()
        splitter.addWidget(left_side)
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

    def _build_status(self) -> None:
        self.progress = QProgressBar()
        self.progress.setObjectName("progressBar")
        self.progress.setAccessibleName("Progress")
        self.progress.setMaximumWidth(320)
        self.progress.setTextVisible(False)
        self.status_label = ElidedLabel()  # a long sentence ends in "…" and shows whole on hover
        self.status_label.setObjectName("statusLabel")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.progress)

    def _engine_settled(self, event: Event) -> None:
        if isinstance(event, ModelLoaded | ModelFailed):
            self.panel.token_counter.engine_ready(event)

    def _connect(self) -> None:
        state, jobs, models = self.state, self.job_view, self.model_status
        # The token counter starts once the engine has imported its libraries: two threads
        # importing at once held the GIL for up to 270 ms (python -m studio.dev.bench_stall).
        self.controller.backendEvent.connect(self._engine_settled)
        state.collect = self.panel.store
        state.replaced.connect(self.panel.load)
        state.factsChanged.connect(self.panel.show_model_facts)  # the chosen model's fields
        state.seedRestored.connect(self.panel.show_restored_seed)
        state.saveFailed.connect(self.say)
        self.panel.generateClicked.connect(jobs.generate)
        self.panel.cancelClicked.connect(jobs.cancel)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, jobs.generate)
        for keys in ("Ctrl+Shift+Return", "Ctrl+Shift+Enter"):
            QShortcut(QKeySequence(keys), self, jobs.generate_first)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, jobs.cancel)
        self.canvas.imagesDropped.connect(self._canvas_drop)
        self.panel.mode.currentIndexChanged.connect(models.show_ready_text)
        self.canvas.maskColorChanged.connect(self._mask_color_chosen)
        self.canvas.extended.connect(self.image_input.canvas_extended)
        self.picker.modelChosen.connect(models.set_model)
        self.picker.message.connect(self.say)
        self.picker.problem.connect(self.banner.show_error)
        self.memory_button.changed.connect(models.memory_changed)
        self.device_combo.currentTextChanged.connect(models.device_changed)
        self.controller.message.connect(self.say)
        self.queue_panel.jobSelected.connect(jobs.job_selected)
        self.queue_panel.imageRequested.connect(self.recall.view_result)  # read off the GUI thread, checked
        self.scrubber.message.connect(self.say)
        self.recall.preset_bar.styleApplied.connect(self.panel.style_chip.set_style)

    def _watch_session(self) -> None:
        """Autosave whenever the panel or the canvas changes (debounced by the service)."""
        session = self.session
        self.panel.edited.connect(session.changed)
        self.canvas.documentChanged.connect(session.canvas_changed)
        self.canvas.undo_stack.listeners.append(session.canvas_changed)

    def _canvas_snapshot(self) -> CanvasSnapshot:
        canvas = self.canvas
        mask = canvas.mask.copy() if canvas.document is not None else None
        return CanvasSnapshot(canvas.document, mask, canvas.brush.size)

    # -- what the window says -------------------------------------------------------------
    def say(self, text: str) -> None:
        """A sentence on the status line."""
        self.status_label.setText(text)

    def notify(self, text: str) -> None:
        """A startup message (a restored session, settings set aside) that the model's loading
        and ready lines that follow at once must not wipe out: they are said after it."""
        self.model_status.notify(text)

    # -- start and the model --------------------------------------------------------------
    def start(self) -> None:
        """Called once the window is on screen: bring back an unsaved session, start
        autosaving, and warm the model up in the background."""
        self._restore_session()
        self.outputs.check_folder()
        self._watch_session()
        self.picker.sync()  # a restored session may name another VAE or memory options
        self.memory_button.sync()
        if memory_options(self.settings) != memory_options(Settings()):
            # The engine starts with the defaults; only a change needs saying (and the first
            # message imports the engine's memory module, i.e. torch, in the engine thread).
            self.controller.set_memory(self.memory_button.options())
        self.picker.rescan()
        self.restored_bar.offer()  # jobs the last session left: the artist says whether to run them
        self.model_status.load_current()

    def _restore_session(self) -> None:
        restored = self.session.restore()
        if restored is None:
            return
        if restored.warning:
            self.say(restored.warning)
        if restored.document is not None:
            self.canvas.set_document(restored.document, "Restore session", restored.mask)
            self.canvas.undo_stack.clear()
        if restored.brush_size and restored.document is not None:
            # The size belongs to that image; without it, the next image sizes the brush itself
            # (restored as the artist's choice, 6 px would stay on a 512x768 image).
            self.canvas.set_brush(size=restored.brush_size)
        if restored.problems:
            self.banner.show_error(StudioError(ErrorKind.BAD_INPUT, " ".join(restored.problems),
                                               "Your settings and prompt were restored."))
        if restored.found:
            self.notify("Restored your last session.")

    def _mask_color_chosen(self, color: str) -> None:
        self.settings.mask_color = color
        self.state.save()

    # -- window state ---------------------------------------------------------------------
    def _restore_window_state(self) -> None:
        """Dock widths, toolbars and the window's size as the last quit left them."""
        for text, restore in ((self.settings.window_geometry, self.restoreGeometry),
                              (self.settings.window_state, self.restoreState)):
            if text:
                try:
                    restore(QByteArray(base64.b64decode(text.encode("ascii"), validate=True)))
                except (ValueError, UnicodeEncodeError):
                    pass  # a hand-edited value: the default layout

    def _store_window_state(self) -> None:
        """Docks, geometry and the brush's feel into the settings, for the next start."""
        settings = self.settings
        settings.window_state = base64.b64encode(bytes(self.saveState().data())).decode("ascii")
        settings.window_geometry = base64.b64encode(bytes(self.saveGeometry().data())).decode("ascii")
        settings.brush_hardness, settings.brush_opacity = self.canvas.brush.hardness, self.canvas.brush.opacity

    # -- drops and files ------------------------------------------------------------------
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
            self.image_input.load_image_file(paths[0])  # not an image the drop takes: say why it cannot be opened

    def open_files(self, paths: list[str]) -> bool:
        """Open image files as a drop on the window does (`studio FILE...`, the desktop entry)."""
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
        return self.recall.handle_drop(mime)

    def closeEvent(self, event) -> None:
        """Save first, then stop the engine without freezing: a running step is cancelled and
        waited for with a visible message (BackendCloser); the window closes when it ended or
        the wait ran out. A running QThread is never destroyed (EngineThread.keep_alive)."""
        closer = getattr(self, "_closer", None)
        if closer is None:
            self.state.current()
            self._store_window_state()
            self.state.save()
            self.controller.close()  # cancels the running job; the images already made are written
            self.recall.close()
            self.session.end()
            self.history.close()
            self.closing.emit()
            self._closer = closer = self.controller.closer(parent=self)
            if not closer.begin():
                self.say("Finishing the current step…")
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
