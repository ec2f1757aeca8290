"""The generation panel: prompt, negative prompt and the knobs of one request."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.core.request import MAX_BATCH, MAX_SEED, MAX_SIDE, MAX_STEPS, MIN_SIDE
from studio.core.samplers import SAMPLER_NAMES
from studio.core.settings import Settings
from studio.ui.lora_picker import LoraButton
from studio.ui.token_counter import TokenCounter


MODES = (("Text to image", "txt2img"), ("Image to image", "img2img"), ("Inpaint", "inpaint"))


def _named(widget, object_name: str, accessible: str):
    widget.setObjectName(object_name)
    widget.setAccessibleName(accessible)
    widget.setToolTip(accessible)
    return widget


def _is_ctrl_enter(event) -> bool:
    return event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and bool(
        event.modifiers() & Qt.KeyboardModifier.ControlModifier
    )


class PromptEdit(QPlainTextEdit):
    """Plain text box that leaves Ctrl+Enter to the window's Generate shortcut.

    A text edit claims Ctrl+Enter in ShortcutOverride (to insert a newline); declining that
    lets the window's QShortcut fire while the prompt has focus."""

    def event(self, event):
        if event.type() == QEvent.Type.ShortcutOverride and _is_ctrl_enter(event):
            event.ignore()
            return True
        return super().event(event)

    def keyPressEvent(self, event):
        if _is_ctrl_enter(event):
            event.ignore()
            return
        super().keyPressEvent(event)


class GenerationPanel(QWidget):
    generateClicked = Signal()
    cancelClicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.prompt = _named(PromptEdit(), "promptEdit", "Prompt")
        self.prompt.setPlaceholderText("Describe the image…")
        self.negative = _named(PromptEdit(), "negativePromptEdit", "Negative prompt")
        self.negative.setPlaceholderText("What to avoid…")
        self.negative.setMaximumHeight(70)

        self.guidance = _named(QDoubleSpinBox(), "guidanceSpin", "Guidance (CFG scale)")
        self.guidance.setRange(0.0, 30.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setDecimals(1)
        self.steps = _named(QSpinBox(), "stepsSpin", "Steps")
        self.steps.setRange(1, MAX_STEPS)
        # A double spin box with no decimals: QSpinBox stops at 2^31-1, seeds go to 2^32-1.
        self.seed = _named(QDoubleSpinBox(), "seedSpin", "Seed")
        self.seed.setDecimals(0)
        self.seed.setRange(0, MAX_SEED)
        self.random_seed = _named(QCheckBox("Random"), "randomSeedCheck", "Random seed each run")
        self.random_seed.toggled.connect(lambda on: self.seed.setEnabled(not on))
        self.width_spin = _named(QSpinBox(), "widthSpin", "Width")
        self.height_spin = _named(QSpinBox(), "heightSpin", "Height")
        for spin in (self.width_spin, self.height_spin):
            spin.setRange(MIN_SIDE, MAX_SIDE)
            spin.setSingleStep(64)
            spin.setSuffix(" px")
            spin.editingFinished.connect(lambda s=spin: s.setValue(round(s.value() / 8) * 8))
        self.sampler = _named(QComboBox(), "samplerCombo", "Sampler")
        self.sampler.addItems(SAMPLER_NAMES)
        self.batch = _named(QSpinBox(), "batchSpin", "Batch count")
        self.batch.setRange(1, MAX_BATCH)

        self.mode = _named(QComboBox(), "modeCombo", "Mode")
        for label, mode in MODES:
            self.mode.addItem(label, mode)
        self.strength = _named(QDoubleSpinBox(), "strengthSpin", "Strength (denoising)")
        self.strength.setRange(0.01, 1.0)
        self.strength.setSingleStep(0.05)
        self.mask_blur = _named(QSpinBox(), "maskBlurSpin", "Mask blur")
        self.mask_blur.setRange(0, 64)
        self.mask_blur.setSuffix(" px")
        self.inpaint_area = _named(QComboBox(), "inpaintAreaCombo", "Inpaint area")
        self.inpaint_area.addItem("Whole picture", "whole")
        self.inpaint_area.addItem("Only masked", "only_masked")
        self.padding = _named(QSpinBox(), "inpaintPaddingSpin", "Only masked padding")
        self.padding.setRange(0, 256)
        self.padding.setSuffix(" px")
        self.masked_content = _named(QComboBox(), "maskedContentCombo", "Masked content")
        self.masked_content.addItem("Original", "original")
        self.masked_content.addItem("Fill", "fill")
        self.masked_content.addItem("Latent noise", "latent_noise")
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.inpaint_area.currentIndexChanged.connect(self._mode_changed)

        self.generate_button = _named(QPushButton("Generate"), "generateButton", "Generate")
        self.generate_button.setToolTip("Generate (Ctrl+Enter)")
        self.generate_button.setDefault(True)
        self.cancel_button = _named(QPushButton("Cancel"), "cancelButton", "Cancel")
        self.cancel_button.setToolTip("Cancel (Esc)")
        self.cancel_button.setEnabled(False)
        self.generate_button.clicked.connect(self.generateClicked)
        self.cancel_button.clicked.connect(self.cancelClicked)
        self.last_seed = QLabel("")
        self.last_seed.setObjectName("lastSeedLabel")
        self.last_seed.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.random_seed)
        size_row = QHBoxLayout()
        size_row.addWidget(self.width_spin)
        size_row.addWidget(QLabel("×"))
        size_row.addWidget(self.height_spin)
        form = QFormLayout()
        self.form = form
        form.addRow("Mode", self.mode)
        form.addRow("Strength", self.strength)
        form.addRow("Mask blur", self.mask_blur)
        form.addRow("Inpaint area", self.inpaint_area)
        form.addRow("Padding", self.padding)
        form.addRow("Masked content", self.masked_content)
        form.addRow("Sampler", self.sampler)
        form.addRow("Steps", self.steps)
        form.addRow("Guidance", self.guidance)
        form.addRow("Seed", seed_row)
        form.addRow("", self.last_seed)
        form.addRow("Size", size_row)
        form.addRow("Batch", self.batch)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.cancel_button, 1)

        layout = QVBoxLayout(self)
        prompt_row = QHBoxLayout()
        prompt_row.addWidget(QLabel("Prompt"))
        prompt_row.addStretch(1)
        self.lora_button = LoraButton(self.prompt)  # inserts <lora:NAME:1> at the prompt's cursor
        prompt_row.addWidget(self.lora_button)
        layout.addLayout(prompt_row)
        layout.addWidget(self.prompt, 2)
        self.token_counter = TokenCounter(self.prompt)  # A1111's "37/75"
        layout.addWidget(self.token_counter, 0, Qt.AlignmentFlag.AlignRight)
        layout.addWidget(QLabel("Negative prompt"))
        layout.addWidget(self.negative, 1)
        layout.addLayout(form)
        layout.addLayout(buttons)

    def current_mode(self) -> str:
        return self.mode.currentData()

    def set_mode(self, mode: str) -> None:
        self.mode.setCurrentIndex(max(0, self.mode.findData(mode)))

    def _mode_changed(self) -> None:
        """Show only the knobs the chosen mode uses."""
        mode = self.current_mode()
        inpaint = mode == "inpaint"
        self.form.setRowVisible(self.strength, mode != "txt2img")
        for widget in (self.mask_blur, self.inpaint_area, self.masked_content):
            self.form.setRowVisible(widget, inpaint)
        self.form.setRowVisible(self.padding, inpaint and self.inpaint_area.currentData() == "only_masked")

    def set_running(self, running: bool) -> None:
        self.generate_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def load(self, s: Settings) -> None:
        self.prompt.setPlainText(s.prompt)
        self.negative.setPlainText(s.negative_prompt)
        self.guidance.setValue(s.guidance)
        self.steps.setValue(s.steps)
        self.seed.setValue(s.seed)
        self.random_seed.setChecked(s.random_seed)
        self.seed.setEnabled(not s.random_seed)
        self.width_spin.setValue(s.width)
        self.height_spin.setValue(s.height)
        index = self.sampler.findText(s.sampler)
        self.sampler.setCurrentIndex(max(index, 0))
        self.batch.setValue(s.batch_count)
        self.set_mode(s.mode)
        self.strength.setValue(s.strength)
        self.mask_blur.setValue(s.mask_blur)
        self.inpaint_area.setCurrentIndex(max(0, self.inpaint_area.findData(s.inpaint_area)))
        self.padding.setValue(s.inpaint_padding)
        self.masked_content.setCurrentIndex(max(0, self.masked_content.findData(s.masked_content)))
        self._mode_changed()

    def store(self, s: Settings) -> None:
        s.prompt = self.prompt.toPlainText()
        s.negative_prompt = self.negative.toPlainText()
        s.guidance = round(self.guidance.value(), 2)
        s.steps = self.steps.value()
        s.seed = int(self.seed.value())
        s.random_seed = self.random_seed.isChecked()
        s.width = self.width_spin.value()
        s.height = self.height_spin.value()
        s.sampler = self.sampler.currentText()
        s.batch_count = self.batch.value()
        s.mode = self.current_mode()
        s.strength = round(self.strength.value(), 3)
        s.mask_blur = self.mask_blur.value()
        s.inpaint_area = self.inpaint_area.currentData()
        s.inpaint_padding = self.padding.value()
        s.masked_content = self.masked_content.currentData()
