"""The input image: opened, pasted, dropped, a result used as input, or the canvas extended for
outpainting. A new input image sets the size and the mode, as A1111's "Send to img2img" does;
Generate writes it (and the mask) to disk for the request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog

from studio.core.errors import ErrorKind, StudioError
from studio.core.generation.request import InvalidRequest
from studio.core.storage.outputs import save_input
from studio.core.storage.paths import inputs_dir
from studio.ui.images import rgb_from_qimage
from studio.ui.output_actions import IMAGE_FILTER


class ImageInput(QObject):
    def __init__(self, window):
        """`window`: the MainWindow, for its canvas, panel, banner and status line, and its
        open_files (an opened image is a drop: a studio image offers its settings too)."""
        super().__init__(window)
        self.window = window

    def open_image(self) -> None:
        """Open… is a drop of the chosen file. The dialog starts where the results are."""
        start = self.window.outputs.folder()
        path, _ = QFileDialog.getOpenFileName(self.window, "Open an image", str(start if start.is_dir() else Path.home()),
                                              IMAGE_FILTER)
        if path and not self.window.open_files([path]):
            self.load_image_file(path)  # not an image the drop takes: say why it cannot be opened

    def load_image_file(self, path: str) -> bool:
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB")).copy()
        except (OSError, ValueError) as exc:
            self.window.banner.show_error(StudioError(ErrorKind.BAD_INPUT, f"Could not open {Path(path).name}: {exc}",
                                                      "Open a PNG, JPEG or WebP image."))
            return False
        self.set_input_image(pixels, f"Open {Path(path).name}")
        return True

    def paste_image(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        if mime.hasImage():
            image = QGuiApplication.clipboard().image().convertToFormat(QImage.Format.Format_RGB888)
            self.set_input_image(rgb_from_qimage(image), "Paste image")
            mode = "Inpaint" if self.window.panel.current_mode() == "inpaint" else "Image to image"
            self.window.say(f"Pasted a {image.width()}×{image.height()} image: it is now the input image ({mode}).")
        elif mime.hasUrls() and mime.urls()[0].isLocalFile():
            self.load_image_file(mime.urls()[0].toLocalFile())
        else:
            self.window.say("The clipboard holds no image.")

    def set_input_image(self, pixels: np.ndarray, label: str) -> None:
        """A new input image starts clean: an empty mask, and Image to image rather than an
        Inpaint mode left from the last picture (one undo step)."""
        w = self.window
        w.canvas.set_document(pixels, label, np.zeros(pixels.shape[:2], np.uint8))
        if w.panel.current_mode() == "inpaint":
            w.panel.set_mode("img2img")
        self._adopt_size(pixels)

    def use_result_as_input(self) -> None:
        if self.window.canvas.use_result_as_input():
            self._adopt_size(self.window.canvas.document)

    def canvas_extended(self) -> None:
        """The canvas grew for outpainting: its size becomes the size, and Generate inpaints
        the new area."""
        w = self.window
        self._adopt_size(w.canvas.document)
        w.panel.set_mode("inpaint")
        height, width = w.canvas.document.shape[:2]
        w.say(f"Canvas extended to {width}×{height}: Generate paints the new area (Inpaint).")

    def _adopt_size(self, pixels: np.ndarray) -> None:
        """An input image sets the size (multiples of 8) and leaves txt2img."""
        panel = self.window.panel
        height, width = pixels.shape[:2]
        panel.width_spin.setValue(max(64, round(width / 8) * 8))
        panel.height_spin.setValue(max(64, round(height / 8) * 8))
        if panel.current_mode() == "txt2img":
            panel.set_mode("img2img")
        self.window.banner.hide()

    def save_inputs(self, mode: str) -> tuple[str | None, str | None]:
        """The canvas image and mask written to disk for a request in `mode` (img2img, inpaint)."""
        if mode == "txt2img":
            return None, None
        canvas = self.window.canvas
        if canvas.document is None:
            raise InvalidRequest("This mode needs an input image: open one (Ctrl+O), paste it, or use a result as input.")
        if mode == "inpaint" and not canvas.mask.any():
            raise InvalidRequest("The mask is empty: paint over the part to change with the brush (B).")
        init = save_input(canvas.document, inputs_dir())
        mask = save_input(canvas.mask, inputs_dir()) if mode == "inpaint" else None
        return str(init), (str(mask) if mask else None)
