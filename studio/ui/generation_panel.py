"""The generation panel: prompt, negative prompt and the knobs of one request."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
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
from studio.core.settings import HIRES_UPSCALERS, MAX_HIRES_SCALE, Settings
from studio.ui.drop import has_dropped_images
from studio.ui.lora_picker import LoraButton
from studio.ui.preset_bar import StyleChip
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

    # An image file dragged here is for the window (restore its settings or use it as input),
    # never text: ignored, the drag goes on to the window (QApplication offers it to the parents).
    def dragEnterEvent(self, event):
        if has_dropped_images(event.mimeData()):
            event.ignore()
            return
        super().dragEnterEvent(event)

    def dragMoveEvent(self, event):
        if has_dropped_images(event.mimeData()):
            event.ignore()
            return
        super().dragMoveEvent(event)

    def dropEvent(self, event):
        if has_dropped_images(event.mimeData()):
            event.ignore()
            return
        super().dropEvent(event)


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
        # Said next to the seed after a restore: a restored seed unticks Random, and every
        # later run would silently reuse it.
        self.seed_hint = QLabel("")
        self.seed_hint.setObjectName("seedHint")
        self.seed_hint.setWordWrap(True)
        self.seed_hint.hide()
        self.random_seed.toggled.connect(self._random_toggled)
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
        form.addRow("", self.seed_hint)
        form.addRow("", self.last_seed)
        form.addRow("Size", size_row)
        form.addRow("Batch", self.batch)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.cancel_button, 1)

        layout = QVBoxLayout(self)
        prompt_row = QHBoxLayout()
        prompt_row.addWidget(QLabel("Prompt"))
        self.style_chip = StyleChip()  # the preset style wrapping the prompt at Generate
        prompt_row.addWidget(self.style_chip)
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
        self._build_a1111_extras(form, layout)
        layout.addLayout(buttons)

    def show_restored_seed(self) -> None:
        """After a restore with a fixed seed: say so next to the seed, until Random is ticked."""
        if self.random_seed.isChecked():
            self.seed_hint.hide()
            return
        self.seed_hint.setText(f"Seed {int(self.seed.value())} restored: Random is off, so every run uses it. "
                               "Tick Random for a new seed each run.")
        self.seed_hint.show()

    def _random_toggled(self, on: bool) -> None:
        if on:
            self.seed_hint.hide()

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
        for group in (self.hires_group, self.variation_group):  # A1111: both are txt2img's only
            group.setVisible(mode == "txt2img")

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
        self._load_a1111_extras(s)
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
        self._store_a1111_extras(s)

    # -- A1111's extras: clip skip, hires fix, variation seeds ------------------------------------
    def _build_a1111_extras(self, form: QFormLayout, layout: QVBoxLayout) -> None:
        self.clip_skip = _named(QSpinBox(), "clipSkipSpin", "Clip skip (text encoder layers to skip)")
        self.clip_skip.setRange(1, 12)
        form.insertRow(form.getWidgetPosition(self.guidance)[0] + 1, "Clip skip", self.clip_skip)

        self.hires_group = _collapsible(_named(QGroupBox("Hires fix"), "hiresGroup", "Hires fix: upscale, then denoise again"))
        self.hires_scale = _named(QDoubleSpinBox(), "hiresScaleSpin", "Hires fix: upscale by")
        self.hires_scale.setRange(1.0, MAX_HIRES_SCALE)
        self.hires_scale.setSingleStep(0.05)
        self.hires_scale.setDecimals(2)
        self.hires_scale.setSuffix(" ×")
        self.hires_steps = _named(QSpinBox(), "hiresStepsSpin", "Hires fix: steps (0 = as many as Steps)")
        self.hires_steps.setRange(0, MAX_STEPS)
        self.hires_steps.setSpecialValueText("Same as Steps")
        self.hires_denoise = _named(QDoubleSpinBox(), "hiresDenoiseSpin", "Hires fix: denoising strength")
        self.hires_denoise.setRange(0.01, 1.0)  # 0 would change nothing (and is refused)
        self.hires_denoise.setSingleStep(0.05)
        self.hires_upscaler = _named(QComboBox(), "hiresUpscalerCombo", "Hires fix: upscaler")
        self.hires_upscaler.addItems(HIRES_UPSCALERS)
        hires_form = QFormLayout(self.hires_group.contents)
        hires_form.addRow("Upscale by", self.hires_scale)
        hires_form.addRow("Steps", self.hires_steps)
        hires_form.addRow("Denoising", self.hires_denoise)
        hires_form.addRow("Upscaler", self.hires_upscaler)

        self.variation_group = _collapsible(_named(QGroupBox("Variation"), "variationGroup", "Variation seed and resize seed"))
        self.variation_seed = _named(QDoubleSpinBox(), "variationSeedSpin", "Variation seed")
        self.variation_seed.setDecimals(0)  # seeds go beyond QSpinBox's 2^31-1, as Seed
        self.variation_seed.setRange(0, MAX_SEED)
        self.variation_strength = _named(QDoubleSpinBox(), "variationStrengthSpin", "Variation strength")
        self.variation_strength.setRange(0.0, 1.0)
        self.variation_strength.setSingleStep(0.05)
        self.seed_resize_width = _named(QSpinBox(), "seedResizeWidthSpin", "Resize seed from width")
        self.seed_resize_height = _named(QSpinBox(), "seedResizeHeightSpin", "Resize seed from height")
        for spin in (self.seed_resize_width, self.seed_resize_height):
            spin.setRange(0, MAX_SIDE)
            spin.setSingleStep(64)
            spin.setSpecialValueText("Off")
        resize_row = QHBoxLayout()
        resize_row.addWidget(self.seed_resize_width)
        resize_row.addWidget(QLabel("×"))
        resize_row.addWidget(self.seed_resize_height)
        variation_form = QFormLayout(self.variation_group.contents)
        variation_form.addRow("Variation seed", self.variation_seed)
        variation_form.addRow("Strength", self.variation_strength)
        variation_form.addRow("Resize seed from", resize_row)
        layout.addWidget(self.hires_group)
        layout.addWidget(self.variation_group)

    def _load_a1111_extras(self, s: Settings) -> None:
        self.clip_skip.setValue(s.clip_skip)
        self.hires_group.setChecked(s.hires_fix)
        self.hires_scale.setValue(s.hires_scale)
        self.hires_steps.setValue(s.hires_steps)
        self.hires_denoise.setValue(s.hires_denoise)
        self.hires_upscaler.setCurrentIndex(max(0, self.hires_upscaler.findText(s.hires_upscaler)))
        self.variation_group.setChecked(s.variation)
        self.variation_seed.setValue(s.variation_seed)
        self.variation_strength.setValue(s.variation_strength)
        self.seed_resize_width.setValue(s.seed_resize_width)
        self.seed_resize_height.setValue(s.seed_resize_height)

    def _store_a1111_extras(self, s: Settings) -> None:
        s.clip_skip = self.clip_skip.value()
        s.hires_fix = self.hires_group.isChecked()
        s.hires_scale = round(self.hires_scale.value(), 2)
        s.hires_steps = self.hires_steps.value()
        s.hires_denoise = round(self.hires_denoise.value(), 2)
        s.hires_upscaler = self.hires_upscaler.currentText()
        s.variation = self.variation_group.isChecked()
        s.variation_seed = int(self.variation_seed.value())
        s.variation_strength = round(self.variation_strength.value(), 3)
        # A side below the smallest size would be refused by Generate: "Off" (0) or at least MIN_SIDE.
        for name, spin in (("seed_resize_width", self.seed_resize_width), ("seed_resize_height", self.seed_resize_height)):
            setattr(s, name, 0 if spin.value() == 0 else max(MIN_SIDE, spin.value()))


def _collapsible(group: QGroupBox) -> QGroupBox:
    """A group whose check box switches its feature on and shows its fields; unchecked, it
    folds to its title (the fields keep their values for next time)."""
    group.setCheckable(True)
    group.setChecked(False)
    group.contents = QWidget(group)
    group.contents.setVisible(False)
    box = QVBoxLayout(group)
    box.setContentsMargins(6, 2, 6, 2)
    box.addWidget(group.contents)
    group.toggled.connect(group.contents.setVisible)
    return group
