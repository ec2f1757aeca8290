"""The step scrubber: every denoising step of the last runs, kept small, to look back through.

Previews arrive at latent resolution (an eighth of the image's side, uint8 RGB), so a whole run
costs little: 30 steps of a 1024x1024 image are 30 x 128x128x3 bytes, about 1.5 MB. The store
keeps the frames of the last few jobs only (MAX_JOBS), the final image of each beside them,
and the bar under the canvas scrubs through one of them: a slider over the run's steps whose
last position is the final image, "Compare with final" (the step beside the final image) and
"Save step as PNG…".

A step the window never saw is not in the store: the engine thread hands over only the newest
preview when the GUI is behind (studio.backends.local.worker), so on a very slow GUI a step may show the
nearest earlier frame.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFileDialog, QFrame, QHBoxLayout, QLabel, QPushButton, QSlider

from studio.core.formats.infotext import format_infotext
from studio.core.storage.outputs import PARAMETERS_KEY, REQUEST_KEY, read_request

MAX_JOBS = 3  # runs whose steps are kept (a queue job selected in the panel, the last ones run)
COMPARE_GAP = 4  # pixels between the step and the final image in "Compare with final"


@dataclass
class RunFrames:
    """One job's previews (step -> frame, of its latest image) and its final image."""

    total: int = 0
    size: tuple[int, int] = (0, 0)  # the image's (width, height): previews are stretched to it
    frames: dict[int, np.ndarray] = field(default_factory=dict)
    final: np.ndarray | None = None
    image_index: int = 0
    path: Path | None = None  # the final image's file, once written

    def frame(self, step: int) -> np.ndarray | None:
        """The frame of `step`, or of the nearest earlier step the window saw."""
        known = [s for s in self.frames if s <= step]
        return self.frames[max(known)] if known else None

    @property
    def nbytes(self) -> int:
        return sum(f.nbytes for f in self.frames.values())


class PreviewStore:
    """The frames of the last MAX_JOBS jobs, by job id (oldest forgotten first)."""

    def __init__(self, max_jobs: int = MAX_JOBS):
        self.max_jobs = max_jobs
        self._runs: OrderedDict[str, RunFrames] = OrderedDict()

    def add_step(self, job_id: str, image_index: int, step: int, total: int, preview: np.ndarray,
                 size: tuple[int, int]) -> None:
        run = self._run(job_id)
        if image_index != run.image_index:  # a batch: the scrubber shows the latest image's steps
            run.frames.clear()
            run.final = None
            run.path = None
            run.image_index = image_index
        run.total, run.size = total, size
        run.frames[step] = preview  # the engine hands over an owned copy (DESIGN.md, data flow 5)

    def set_final(self, job_id: str, image_index: int, image: np.ndarray) -> None:
        run = self._runs.get(job_id)
        if run is not None and image_index == run.image_index:
            run.final = image

    def set_path(self, job_id: str, image_index: int, path: Path | None) -> None:
        run = self._runs.get(job_id)
        if run is not None and image_index == run.image_index:
            run.path = path

    def job_showing(self, image: np.ndarray | None, path: Path | None) -> str | None:
        """The job whose final image this is (the same pixels, or the same file reopened)."""
        for job_id, run in self._runs.items():
            if run.final is not None and run.frames and (
                    (image is not None and image is run.final) or (path is not None and run.path == path)):
                return job_id
        return None

    def get(self, job_id: str) -> RunFrames | None:
        return self._runs.get(job_id)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._runs

    def _run(self, job_id: str) -> RunFrames:
        run = self._runs.get(job_id)
        if run is None:
            run = self._runs[job_id] = RunFrames()
            while len(self._runs) > self.max_jobs:
                self._runs.popitem(last=False)
        return run


def stretched(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A latent-resolution frame at the image's size (bilinear, as the canvas shows it)."""
    if (frame.shape[1], frame.shape[0]) == size:
        return frame
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))


def side_by_side(step: np.ndarray, final: np.ndarray) -> np.ndarray:
    """The step (stretched to the final's size) and the final image, with a dark gap between."""
    height, width = final.shape[:2]
    left = stretched(step, (width, height))
    gap = np.full((height, COMPARE_GAP, 3), 32, np.uint8)
    return np.concatenate([left, gap, final], axis=1)


class StepScrubber(QFrame):
    """The bar under the canvas once a run has frames. It draws on the canvas through
    `show(pixels, size)` / `show_final()` callbacks the window gives it, so it never holds the
    canvas itself."""

    message = Signal(str)

    def __init__(self, store: PreviewStore, show, show_final, parent=None):
        super().__init__(parent)
        self.setObjectName("stepScrubber")
        self.store = store
        self._show = show  # (pixels, (w, h)) -> None
        self._show_final = show_final  # () -> None: the canvas's own view
        self.job_id: str | None = None
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("stepSlider")
        self.slider.setAccessibleName("Denoising step")
        self.slider.setToolTip("Scrub through the steps of the run; the right end is the final image")
        self.label = QLabel()
        self.label.setMinimumWidth(90)
        # Short texts: the bar must fit beside the panel and the docks at 1024 pixels wide.
        self.compare = QPushButton("Compare")
        self.compare.setObjectName("compareFinalButton")
        self.compare.setCheckable(True)
        self.compare.setToolTip("Compare with final: this step on the left, the final image on the right")
        self.save_button = QPushButton("Save step…")
        self.save_button.setObjectName("saveStepButton")
        self.save_button.setToolTip("Save step as PNG…")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(QLabel("Steps"))
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        layout.addWidget(self.compare)
        layout.addWidget(self.save_button)
        self.slider.valueChanged.connect(self._scrub)
        self.compare.toggled.connect(self._scrub)
        self.save_button.clicked.connect(self.save_step_as)
        self.hide()

    # -- which run --------------------------------------------------------------------------
    def show_run(self, job_id: str) -> bool:
        """Offer the steps of `job_id` (at its final image); False (and hidden) when they are
        not in memory."""
        run = self.store.get(job_id)
        if run is None or not run.frames or run.final is None:
            self.job_id = None
            self.hide()
            return False
        self.job_id = job_id
        self.slider.blockSignals(True)
        self.slider.setRange(1, run.total)
        self.slider.setValue(run.total)
        self.slider.blockSignals(False)
        self.compare.setChecked(False)
        self._label(run.total, run)
        self.show()
        return True

    def clear(self) -> None:
        """A new run started on the canvas: its previews take over until it ends."""
        self.job_id = None
        self.hide()

    @property
    def run(self) -> RunFrames | None:
        return self.store.get(self.job_id) if self.job_id is not None else None

    # -- scrubbing --------------------------------------------------------------------------
    def current_pixels(self) -> np.ndarray | None:
        """What the slider points at, at the image's size: a step's frame or the final image."""
        run = self.run
        if run is None:
            return None
        step = self.slider.value()
        if step >= run.total or run.frame(step) is None:
            return run.final
        return stretched(run.frame(step), run.size)

    def _scrub(self, *_args) -> None:
        run = self.run
        if run is None:
            return
        step = self.slider.value()
        self._label(step, run)
        at_final = step >= run.total
        if at_final and not self.compare.isChecked():
            self._show_final()  # the canvas's own result (one undo step, its file path)
            return
        frame = run.frame(step) if not at_final else run.final
        if frame is None or run.final is None:
            return
        if self.compare.isChecked():
            self._show(side_by_side(frame, run.final), None)
        else:
            self._show(frame, run.size)

    def _label(self, step: int, run: RunFrames) -> None:
        text = "Final image" if step >= run.total else f"Step {step}/{run.total}"
        if self.compare.isChecked():  # which side is which, while comparing
            text = f"Left: {text.lower() if step >= run.total else text} · right: final"
        self.label.setText(text)
        self.compare.setText("Comparing" if self.compare.isChecked() else "Compare")

    # -- saving --------------------------------------------------------------------------
    def save_step_as(self, path: str | None = None) -> bool:
        """The step as a PNG beside its final image ("00012-seed-step-8.png"), carrying the final
        image's recipe (a drop restores the settings that made the run) and which step it is."""
        pixels, run = self.current_pixels(), self.run
        if pixels is None or run is None:
            return False
        step = self.slider.value()
        if not path:
            name = f"{run.path.stem}-step-{step}.png" if run.path is not None else f"step-{step}.png"
            start = (run.path.parent if run.path is not None else Path.home()) / name
            path, _ = QFileDialog.getSaveFileName(self, "Save this step as", str(start), "PNG image (*.png)")
        if not path:
            return False
        try:
            Image.fromarray(pixels).save(path, format="PNG", pnginfo=step_png_info(run, step))
        except (OSError, ValueError) as exc:
            self.message.emit(f"Could not save {path}: {getattr(exc, 'strerror', None) or exc}")
            return False
        self.message.emit(f"Saved step {step} as {path}")
        return True


def step_png_info(run: RunFrames, step: int) -> PngImagePlugin.PngInfo:
    """The final image's metadata (read back from its file, as written) plus a comment saying
    which step of it this is."""
    info = PngImagePlugin.PngInfo()
    request = read_request(run.path) if run.path is not None else None
    if request is not None:
        info.add_text(PARAMETERS_KEY, format_infotext(request))
        info.add_text(REQUEST_KEY, json.dumps(request.to_dict(), ensure_ascii=True))
    final = f" of {run.path.name}" if run.path is not None else ""
    label = "the final image" if step >= run.total else f"step {step} of {run.total}"
    info.add_text("Comment", f"Denoising preview: {label}{final}.")
    return info


class PreviewCost:
    """What showing the previews costs the run: the window's own time per step (the preview's
    conversion to a pixmap and its drawing) and that time as a share of the step."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._seconds = 0.0
        self._step_seconds = 0.0
        self._count = 0

    def add(self, seconds: float, step_seconds: float) -> None:
        self._seconds += seconds
        self._step_seconds += max(step_seconds, 0.0)
        self._count += 1

    @property
    def ms_per_step(self) -> float:
        return 1000 * self._seconds / self._count if self._count else 0.0

    @property
    def share(self) -> float | None:
        """The preview's time over the step's time (None before a step time is known)."""
        return self._seconds / self._step_seconds if self._step_seconds > 0 else None

    def text(self) -> str:
        if not self._count:
            return ""
        share = f", {100 * self.share:.1f}% of the step" if self.share is not None else ""
        return f"(preview {self.ms_per_step:.1f} ms/step{share})"
