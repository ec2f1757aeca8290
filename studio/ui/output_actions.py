"""Where images go: the output folder (checked at start and before each job, chosen from the
File menu), the image whose save failed (kept on the canvas with "Save as…" until it is
saved somewhere), and Export."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from studio.core.errors import ErrorKind, StudioError
from studio.core.formats.metadata import export_image
from studio.core.storage.output_folder import UnsavedImage, check_output_folder, output_folder
from studio.core.storage.outputs import png_bytes

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp);;All files (*)"


class OutputActions(QObject):
    def __init__(self, window):
        """`window`: the MainWindow, for the dialogs' parent, its canvas, banner and status line."""
        super().__init__(window)
        self.window = window
        self.unsaved: UnsavedImage | None = None  # a finished image whose file could not be written

    @property
    def settings(self):
        return self.window.controller.state.settings

    def folder(self) -> Path:
        return output_folder(self.settings.outputs_dir)

    def check_folder(self) -> bool:
        """At start and before each job: a folder images cannot be written to is said now,
        with a way out, not after a whole run."""
        problem = check_output_folder(self.folder())
        if problem is None:
            return True
        self.window.banner.show_error(problem, (("Choose output folder…", self.choose_folder),))
        self.window.say("Images cannot be saved in the output folder.")
        return False

    def choose_folder(self, folder: str | None = None) -> bool:
        """Ask for (or take) a folder, check it, and use it from the next image on."""
        w = self.window
        if not folder:
            folder = QFileDialog.getExistingDirectory(w, "Save images in", str(self.folder()))
        if not folder:
            return False
        problem = check_output_folder(Path(folder))
        if problem is not None:
            w.banner.show_error(problem, (("Choose output folder…", self.choose_folder),))
            return False
        self.settings.outputs_dir = str(Path(folder).expanduser())
        w.controller.state.save()
        if self.unsaved is None:
            w.banner.hide()
        w.say(f"Images are saved in {self.settings.outputs_dir} from now on.")
        return True

    def keep_unsaved(self, unsaved: UnsavedImage) -> None:
        w = self.window
        self.unsaved = unsaved
        w.canvas.show_result(unsaved.image, None, "Unsaved result")  # Export and "Use as input" work on it too
        w.canvas_toolbar.sync()
        w.banner.show_error(unsaved, (("Save as…", self.save_unsaved_as), ("Choose output folder…", self.choose_folder)))
        w.say("The image was made but not saved: “Save as…” keeps it.")

    def save_unsaved_as(self, path: str | None = None) -> bool:
        """Write the image whose save failed (with its full metadata) where the artist says."""
        w, unsaved = self.window, self.unsaved
        if unsaved is None:
            return False
        if not path:
            start = Path.home() / f"{unsaved.request.seed}.png"
            path, _ = QFileDialog.getSaveFileName(w, "Save the image as", str(start), "PNG image (*.png)")
        if not path:
            return False
        try:
            Path(path).write_bytes(png_bytes(Image.fromarray(unsaved.image), unsaved.request))
        except OSError as exc:
            w.banner.show_error(StudioError(ErrorKind.BAD_INPUT, f"Could not save {path}: {exc.strerror or exc}",
                                            "Choose another folder."), (("Save as…", self.save_unsaved_as),))
            return False
        self.unsaved = None
        w.banner.hide()
        w.say(f"Saved {path}")
        return True

    def export_image(self) -> None:
        canvas = self.window.canvas
        pixels = canvas.result if canvas.showing == "result" else canvas.document
        if pixels is None:
            self.window.say("Nothing to export yet.")
            return
        path, _ = QFileDialog.getSaveFileName(self.window, "Export image", str(Path.home() / "image.png"), IMAGE_FILTER)
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> None:
        canvas = self.window.canvas
        try:
            if canvas.showing == "result" and canvas.result_path:
                export_image(canvas.result_path, path)  # PNG, JPEG or WebP, metadata kept
            else:
                pixels = canvas.result if canvas.showing == "result" else canvas.document
                Image.fromarray(pixels).save(path)
        except (OSError, ValueError) as exc:
            self.window.banner.show_error(StudioError(ErrorKind.BAD_INPUT, f"Could not export to {path}: {exc}"))
            return
        self.window.say(f"Exported {path}")
