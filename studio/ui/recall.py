"""The window's side of getting earlier work back: the preset bar, the History dock, and an
image dropped or opened anywhere (its settings, or the image as input, or both, as the
artist picks in a small menu).

What changes in the generation state is the services' work (studio.application: RecallService,
HistoryService); this only reads files off the GUI thread, asks, and shows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QEventLoop, QObject, Qt, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import QDockWidget, QMenu

from studio.application.history_service import HistoryService
from studio.application.recall_service import RecallService
from studio.core.errors import ErrorKind, StudioError
from studio.core.formats.dropped_image import DroppedImage, read_dropped_image, read_image_file
from studio.core.generation.request import Mode
from studio.core.storage.session import SessionImageError
from studio.ui.drop import dropped_image_paths
from studio.ui.history_panel import HistoryPanel
from studio.ui.preset_bar import PresetBar

# What a dropped or opened image with settings is for; the artist picks (ask_drop_action).
DROP_CHOICES = (("Restore settings", "settings"), ("Use as input", "input"),
                ("Both: restore settings and use as input", "both"))


class _Finished(QObject):
    """Carries "the background read is done" to the GUI thread (a queued signal)."""

    done = Signal()


class Recall(QObject):
    def __init__(self, window, history: HistoryService):
        """`window`: the MainWindow, for its canvas, banner, status line, image input and model
        choice; `history`: the history service, whose entries the History dock shows."""
        super().__init__(window)
        self.window = window
        state = window.controller.state
        self.service = RecallService(state)
        self.history = history
        self.preset_bar = PresetBar(self.service.presets, current_settings=state.current)
        self.history_panel = HistoryPanel(history.history)
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recall-read")
        self._reading = False

        dock = QDockWidget("History", window)
        dock.setObjectName("historyDock")
        dock.setWidget(self.history_panel)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        window.addDockWidget(window.HISTORY_AREA, dock)
        window.resizeDocks([dock], [250], Qt.Orientation.Horizontal)  # the canvas gets the room
        self.dock = dock

        self.preset_bar.applyRequested.connect(self.apply_preset)
        self.preset_bar.message.connect(window.say)
        self.history_panel.message.connect(window.say)
        self.history_panel.viewRequested.connect(self.view_result)
        self.history_panel.restoreRequested.connect(self.restore_fields)
        history.changed.connect(self.history_panel.refresh)

    def load(self) -> list[str]:
        """Presets and history read at start; returns the warnings for the status line."""
        warnings = self.preset_bar.reload() + self.history.load(self.window.outputs.folder())
        self.history_panel.refresh()
        return warnings

    def apply_preset(self, preset) -> None:
        self.window.say(self.service.apply_preset(preset))

    def restore_fields(self, fields, what: str) -> None:
        """History's restore. "All settings" of an Image to image or Inpaint entry brings back
        its mode, input image and mask too (the studio saved them beside the request), so the
        run can be made again."""
        entry = self.history_panel.selected_entry() if what == "all" else None
        request = entry.generation_request() if entry is not None else None
        if request is None or request.mode is Mode.TXT2IMG or not request.init_image:
            self.window.say(self.service.restore_fields(fields, what))
            return
        source, mask, problems = self._off_gui_thread(read_inputs, request)
        text = self.service.restore_fields(fields, what, mode=request.mode.value)
        if source is not None:
            self.window.canvas.set_document(source, "Restore from history", mask)
            text += " Its input image" + (" and mask are" if mask is not None else " is") + " back on the canvas."
        self.window.say(" ".join([text, *problems]))

    def view_result(self, path: str) -> None:
        try:  # a history entry can name any path (a FIFO, a device): only regular image files open
            pixels = self._off_gui_thread(read_image_file, path, "RGB")
        except SessionImageError as exc:
            self.window.say(f"Could not open the result: {exc}.")
            return
        self.window.canvas.show_result(pixels, Path(path))
        self.window.canvas_toolbar.sync()

    # -- a dropped image ---------------------------------------------------------------------
    def _off_gui_thread(self, function, *args):
        """`function(*args)` run on the reader thread while the window keeps painting (input
        waits until it is done); returns its result or raises its exception. The files it
        reads are size-capped and never block (read_image_file), so the wait is short."""
        future = self._reader.submit(function, *args)
        if not future.done():
            loop = QEventLoop()
            relay = _Finished()
            relay.done.connect(loop.quit)
            future.add_done_callback(lambda _: relay.done.emit())  # queued to this thread
            if not future.done():
                loop.exec(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
        return future.result()

    def ask_drop_action(self, name: str) -> str | None:
        """Ask what an image with settings is for: "settings", "input" or "both" (None: the
        artist closed the menu). A small menu at the pointer, as file managers ask on a drop."""
        menu = QMenu(self.window)
        menu.setObjectName("dropMenu")
        menu.addSection(name[:60])
        for label, choice in DROP_CHOICES:
            menu.addAction(label).setData(choice)
        chosen = menu.exec(QCursor.pos())
        menu.deleteLater()
        return chosen.data() if chosen is not None else None

    def restore_from_image(self, path: str) -> None:
        """Fill the panels from an image's metadata (ours exactly; A1111, ComfyUI, InvokeAI and
        Fooocus as far as they say) and/or use the image as the input, as the artist chooses;
        an image without a recipe becomes the input image.

        The image, and the input image and mask its settings name, are read and checked on the
        reader thread first; the settings are replaced only once all of it is in hand."""
        if self._reading:
            self.window.say("Still reading the previous image…")
            return
        self._reading = True
        try:
            model_dirs = list(self.window.controller.state.settings.model_dirs)
            dropped = self._off_gui_thread(read_dropped_image, path, model_dirs)
        finally:
            self._reading = False
        self._apply_dropped(dropped)

    def _apply_dropped(self, dropped: DroppedImage) -> None:
        w = self.window
        metadata, name = dropped.metadata, Path(dropped.path).name
        notes = list(dropped.problems)
        if metadata.request is None and not metadata.ok:
            if dropped.pixels is None:
                w.banner.show_error(StudioError(ErrorKind.BAD_INPUT, f"Could not open {name}: {' '.join(notes)}",
                                                "Open a PNG, JPEG or WebP image."))
                return
            w.image_input.set_input_image(dropped.pixels, f"Open {name}")
            text = f"{name} has no generation settings; it is now the input image (Image to image)."
            w.say(" ".join([text, *notes]))
            return
        choice = self.ask_drop_action(name) if dropped.pixels is not None else "settings"
        if choice not in ("settings", "input", "both"):
            w.say(f"Nothing was taken from {name}.")
            return
        texts: list[str] = []
        if choice in ("settings", "both"):
            if dropped.missing_loras:
                notes.append(f"LoRAs not found: {', '.join(dropped.missing_loras)} (put them in a LoRA folder; "
                             "without them the picture comes out different).")
            model, said = self.service.model_switch(dropped)
            if model is not None:
                w.model_status.set_model(model)
            notes.extend(said)
            texts.append(self.service.restore_dropped(dropped, as_input=choice == "both"))
            if metadata.request is not None and dropped.source is not None and choice == "settings":
                w.canvas.set_document(dropped.source, f"Restore {name}", dropped.mask)  # img2img/inpaint: its input too
        if choice in ("input", "both"):
            w.image_input.set_input_image(dropped.pixels, f"Open {name}")
            texts.append(f"{name} is now the input image (Image to image).")
        w.say(" ".join([*texts, *notes]))

    def handle_drop(self, mime) -> bool:
        """A drop anywhere on the window, Open… and `studio FILE` all come here."""
        paths = dropped_image_paths(mime)
        if paths:
            self.restore_from_image(str(paths[0]))
        return bool(paths)

    def close(self) -> None:
        self._reader.shutdown(wait=False, cancel_futures=True)
        self.history_panel.close_thumbnails()


def read_inputs(request) -> tuple:
    """(input image, mask or None, problems) a request names; read on the reader thread. A
    file that is gone or not an image is a problem to say, never an exception."""
    try:
        source = read_image_file(request.init_image, "RGB")
    except SessionImageError as exc:
        return None, None, [f"Its input image was not restored ({exc})."]
    if not request.mask:
        return source, None, []
    try:
        mask = read_image_file(request.mask, "L")
    except SessionImageError as exc:
        return source, None, [f"Its mask was not restored ({exc})."]
    if mask.shape != source.shape[:2]:
        return source, None, ["Its mask does not fit its input image and was left out."]
    return source, mask, []
