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
    QStyle,
    QStyleOptionGroupBox,
    QStylePainter,
    QVBoxLayout,
    QWidget,
)

from studio.core.generation.fields import FIELD, PANEL_FIELDS, Field
from studio.core.generation.settings import Settings
from studio.core.models.family import PanelFacts
from studio.core.storage.presets import Style
from studio.ui.drop import has_dropped_images
from studio.ui.elided_label import ElidedLabel
from studio.ui.lora_picker import LoraButton
from studio.ui.preset_bar import StyleChip
from studio.ui.token_counter import TokenCounter

MODES = FIELD["mode"].choices  # (label, value)
QWIDGETSIZE_MAX = (1 << 24) - 1  # Qt's "no maximum" size (not exported by PySide6)
DISTILLED_TOOLTIP = (
    "Distilled CFG: the guidance this model was distilled to follow (Flux [dev]: 3.5; lower is looser, "
    "higher sticks closer to the prompt). It is not classic CFG: there is no negative pass and no extra time."
)
NEGATIVE_UNUSED_TOOLTIP = (
    "This model has no negative pass, so the negative prompt is not sent (nor written into the image). "
    "It is kept here for models that use it."
)


def _named(widget, object_name: str, accessible: str):
    widget.setObjectName(object_name)
    widget.setAccessibleName(accessible)
    widget.setToolTip(accessible)
    return widget


def field_widget(f: Field) -> QWidget:
    """A widget for field `f`, built and configured from the table (core/fields.py): its
    objectName, tooltip, range, step, decimals, suffix, special text and choices."""
    if f.widget == "spin":
        widget = QSpinBox()
    elif f.widget == "double":
        widget = QDoubleSpinBox()
    elif f.widget == "combo":
        widget = QComboBox()
        for shown, stored in f.choices:
            widget.addItem(shown, stored)
    elif f.widget == "check":
        widget = QCheckBox(f.form_label or f.label)
    elif f.widget == "text":
        widget = PromptEdit()
    else:
        raise ValueError(f"{f.name} has no widget")
    configure_widget(widget, f)
    return widget


def changed_signal(widget: QWidget):
    """The signal a field's widget sends when its value changes."""
    if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
        return widget.valueChanged
    if isinstance(widget, QComboBox):
        return widget.currentIndexChanged
    if isinstance(widget, QPlainTextEdit):
        return widget.textChanged
    return widget.toggled  # QCheckBox, and the check boxes of the Hires fix and Variation groups


def configure_widget(widget: QWidget, f: Field) -> None:
    """Name and range `widget` as field `f` says (also for widgets built elsewhere: group boxes)."""
    _named(widget, f.object_name, f.tooltip or f.label)
    if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
        if isinstance(widget, QDoubleSpinBox) and f.decimals is not None:
            widget.setDecimals(f.decimals)  # before the range: Qt rounds the range to the decimals
        widget.setRange(f.lowest, f.maximum)
        if f.step is not None:
            widget.setSingleStep(f.step)
        if f.suffix:
            widget.setSuffix(f.suffix)
        if f.special_text:
            widget.setSpecialValueText(f.special_text)


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
    edited = Signal()  # any field's widget changed (the session autosaves on it)

    def __init__(self, parent=None):
        super().__init__(parent)
        widgets = {f.name: field_widget(f) for f in PANEL_FIELDS if f.widget != "check" or f.name == "random_seed"}
        self.prompt = widgets["prompt"]
        self.prompt.setPlaceholderText("Describe the image…")
        self.negative = widgets["negative_prompt"]
        self.negative.setPlaceholderText("What to avoid…")
        self.negative.setMaximumHeight(70)

        self.guidance = widgets["guidance"]
        self.steps = widgets["steps"]
        # A double spin box with no decimals (fields.py): QSpinBox stops at 2^31-1, seeds go to 2^32-1.
        self.seed = widgets["seed"]
        self.random_seed = widgets["random_seed"]
        self.random_seed.toggled.connect(lambda on: self.seed.setEnabled(not on))
        # Said next to the seed after a restore: a restored seed unticks Random, and every
        # later run would silently reuse it.
        # One line (the rest on hover): a note must never push Generate out of reach.
        self.seed_hint = ElidedLabel(hide_when_empty=True)
        self.seed_hint.setObjectName("seedHint")
        self.random_seed.toggled.connect(self._random_toggled)
        self.width_spin = widgets["width"]
        self.height_spin = widgets["height"]
        for spin in (self.width_spin, self.height_spin):
            spin.editingFinished.connect(lambda s=spin: s.setValue(round(s.value() / 8) * 8))
        self.sampler = widgets["sampler"]
        self.batch = widgets["batch_count"]

        self.mode = widgets["mode"]
        self.strength = widgets["strength"]
        self.mask_blur = widgets["mask_blur"]
        self.inpaint_area = widgets["inpaint_area"]
        self.padding = widgets["inpaint_padding"]
        self.masked_content = widgets["masked_content"]
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.inpaint_area.currentIndexChanged.connect(self._mode_changed)

        self.generate_button = _named(QPushButton("Generate"), "generateButton", "Generate")
        self.generate_button.setToolTip("Generate (Ctrl+Enter; Ctrl+Shift+Enter runs it ahead of the waiting jobs)")
        self.generate_button.setDefault(True)
        self.cancel_button = _named(QPushButton("Cancel"), "cancelButton", "Cancel")
        self.cancel_button.setToolTip("Cancel (Esc)")
        self.cancel_button.setEnabled(False)
        self.generate_button.clicked.connect(self.generateClicked)
        self.cancel_button.clicked.connect(self.cancelClicked)
        self.last_seed = ElidedLabel(hide_when_empty=True)
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
        for name in ("mode", "strength", "mask_blur", "inpaint_area", "inpaint_padding", "masked_content",
                     "sampler", "steps", "guidance"):
            form.addRow(_row_label(name), widgets[name])
        form.addRow(_row_label("seed"), seed_row)
        seed_notes = QWidget()  # one row for both notes: no empty rows while they are hidden
        notes_layout = QVBoxLayout(seed_notes)
        notes_layout.setContentsMargins(0, 0, 0, 0)
        notes_layout.setSpacing(0)
        notes_layout.addWidget(self.seed_hint)
        notes_layout.addWidget(self.last_seed)
        form.addRow("", seed_notes)
        form.addRow("Size", size_row)
        form.addRow(_row_label("batch_count"), self.batch)
        # Generate and Cancel sit in their own bar, which the window keeps in view below the
        # scrolling panel (never scrolled away at any window size).
        self.action_bar = QWidget()
        self.action_bar.setObjectName("generateBar")
        buttons = QHBoxLayout(self.action_bar)
        buttons.setContentsMargins(9, 4, 9, 4)
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
        self.token_counter = TokenCounter(self.prompt, steps=self.steps)  # A1111's "37/75"
        layout.addWidget(self.token_counter, 0, Qt.AlignmentFlag.AlignRight)
        self.negative_label = QLabel("Negative prompt")
        self.negative_label.setObjectName("negativePromptLabel")
        layout.addWidget(self.negative_label)
        layout.addWidget(self.negative, 1)
        layout.addLayout(form)
        self._build_a1111_extras(form, layout, widgets)
        # Every panel field's widget, by field name: load() and store() go through this.
        self.field_widgets: dict[str, QWidget] = {**widgets, "hires_fix": self.hires_group, "variation": self.variation_group}
        for widget in self.field_widgets.values():
            changed_signal(widget).connect(self.edited)
        self.style_chip.styleChanged.connect(self.edited)  # the style is saved with the prompt
        self.facts = PanelFacts()
        self.negative.textChanged.connect(self._sync_negative)

    # -- which fields the model reads ---------------------------------------------------------
    def show_model_facts(self, facts: PanelFacts) -> None:
        """Show the fields the chosen model reads, named as it names them (Flux [dev]: "Distilled
        CFG"); a field it does not read is hidden, or, holding the artist's text, disabled and
        labelled as not used. The values stay: they are the artist's for the next model."""
        self.facts = facts
        distilled = facts.guidance_label != PanelFacts.guidance_label  # "CFG" is the field's own row
        guidance_label = self.form.labelForField(self.guidance)
        if isinstance(guidance_label, QLabel):
            guidance_label.setText(facts.guidance_label if distilled else _row_label("guidance"))
        self.guidance.setToolTip(DISTILLED_TOOLTIP if distilled else FIELD["guidance"].tooltip)
        self.guidance.setAccessibleName(facts.guidance_label if distilled else FIELD["guidance"].tooltip)
        self.form.setRowVisible(self.guidance, facts.guidance)
        self.form.setRowVisible(self.clip_skip, facts.clip_skip)
        self.token_counter.use_counter(facts.token_counter, facts.token_limit)
        self._sync_negative()

    def _sync_negative(self) -> None:
        """A model without a negative pass: the box is hidden when empty; holding text, it stays
        in view, disabled, and says that the text is not sent."""
        used = self.facts.negative_prompt
        has_text = bool(self.negative.toPlainText().strip())
        self.negative.setEnabled(used)
        self.negative_label.setEnabled(used)
        for widget in (self.negative, self.negative_label):
            widget.setVisible(used or has_text)
        self.negative_label.setText("Negative prompt" if used else "Negative prompt (not used by this model)")
        tip = "Negative prompt" if used else NEGATIVE_UNUSED_TOOLTIP
        self.negative.setToolTip(tip)
        self.negative_label.setToolTip(tip)

    def show_restored_seed(self) -> None:
        """After a restore with a fixed seed: say so next to the seed, until Random is ticked."""
        if self.random_seed.isChecked():
            self.seed_hint.setText("")
            return
        self.seed_hint.setText(f"Seed {int(self.seed.value())} restored: Random is off, so every run uses it. "
                               "Tick Random for a new seed each run.")
        self.seed_hint.show()

    def _random_toggled(self, on: bool) -> None:
        if on:
            self.seed_hint.setText("")

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
        for name, widget in self.field_widgets.items():
            set_widget_value(widget, getattr(s, name))
        style = Style(s.style_name, s.style_prompt, s.style_negative_prompt) if s.style_name else None
        if style != self.style_chip.style:
            self.style_chip.set_style(style)
        self.seed.setEnabled(not s.random_seed)
        self._mode_changed()

    def store(self, s: Settings) -> None:
        for name, widget in self.field_widgets.items():
            setattr(s, name, widget_value(widget, FIELD[name]))
        style = self.style_chip.style
        s.style_name, s.style_prompt, s.style_negative_prompt = (
            (style.name, style.prompt, style.negative_prompt) if style is not None else ("", "", ""))
        # A side below the smallest size would be refused by Generate: "Off" (0) or at least MIN_SIDE.
        for name in ("seed_resize_width", "seed_resize_height"):
            setattr(s, name, FIELD[name].clamp(getattr(s, name)))

    # -- A1111's extras: clip skip, hires fix, variation seeds ------------------------------------
    def _build_a1111_extras(self, form: QFormLayout, layout: QVBoxLayout, widgets: dict[str, QWidget]) -> None:
        self.clip_skip = widgets["clip_skip"]
        form.insertRow(form.getWidgetPosition(self.guidance)[0] + 1, _row_label("clip_skip"), self.clip_skip)

        self.hires_group = FoldingGroupBox(FIELD["hires_fix"].label)
        configure_widget(self.hires_group, FIELD["hires_fix"])
        self.hires_scale = widgets["hires_scale"]
        self.hires_steps = widgets["hires_steps"]
        self.hires_denoise = widgets["hires_denoise"]  # above 0: 0 would change nothing (and is refused)
        self.hires_upscaler = widgets["hires_upscaler"]
        hires_form = QFormLayout(self.hires_group.contents)
        for name in ("hires_scale", "hires_steps", "hires_denoise", "hires_upscaler"):
            hires_form.addRow(_row_label(name), widgets[name])

        self.variation_group = FoldingGroupBox(FIELD["variation"].label)
        configure_widget(self.variation_group, FIELD["variation"])
        self.variation_seed = widgets["variation_seed"]  # seeds go beyond QSpinBox's 2^31-1, as Seed
        self.variation_strength = widgets["variation_strength"]
        self.seed_resize_width = widgets["seed_resize_width"]
        self.seed_resize_height = widgets["seed_resize_height"]
        resize_row = QHBoxLayout()
        resize_row.addWidget(self.seed_resize_width)
        resize_row.addWidget(QLabel("×"))
        resize_row.addWidget(self.seed_resize_height)
        variation_form = QFormLayout(self.variation_group.contents)
        variation_form.addRow(_row_label("variation_seed"), self.variation_seed)
        variation_form.addRow(_row_label("variation_strength"), self.variation_strength)
        variation_form.addRow("Resize seed from", resize_row)
        layout.addWidget(self.hires_group)
        layout.addWidget(self.variation_group)


def _row_label(name: str) -> str:
    f = FIELD[name]
    return f.form_label or f.label


def set_widget_value(widget: QWidget, value) -> None:
    """Show `value` (as Settings holds it) in a field's widget."""
    if isinstance(widget, QPlainTextEdit):
        widget.setPlainText(value)
    elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
        widget.setValue(value)
    elif isinstance(widget, QComboBox):
        widget.setCurrentIndex(max(0, widget.findData(value)))
    else:  # a check box or a checkable group box
        widget.setChecked(value)


def widget_value(widget: QWidget, f: Field):
    """The value a field's widget shows, as Settings holds it."""
    if isinstance(widget, QPlainTextEdit):
        return widget.toPlainText()
    if isinstance(widget, QDoubleSpinBox):
        value = widget.value()
        return int(value) if f.type is int else round(value, widget.decimals())
    if isinstance(widget, QSpinBox):
        return widget.value()
    if isinstance(widget, QComboBox):
        return widget.currentData()
    return widget.isChecked()


class FoldingGroupBox(QGroupBox):
    """A group whose check box switches its feature on and shows its fields; unchecked, it
    folds to its title line (the fields keep their values for next time).

    A plain QGroupBox with its only child hidden still draws its frame, with the style's
    margins inside (an empty strip under the title, in Fusion whether flat or not). Folded,
    this one paints only its check box and title and is no taller than they are."""

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(title, parent)
        self.setCheckable(True)
        self.setChecked(False)
        self.contents = QWidget(self)
        box = QVBoxLayout(self)
        box.setContentsMargins(6, 2, 6, 2)
        box.addWidget(self.contents)
        self.toggled.connect(self._fold)
        self._fold(False)

    def header_height(self) -> int:
        """The height of the title line: the check box and the title, whichever is taller."""
        option = QStyleOptionGroupBox()
        self.initStyleOption(option)
        style = self.style()
        rects = [style.subControlRect(QStyle.ComplexControl.CC_GroupBox, option, part, self)
                 for part in (QStyle.SubControl.SC_GroupBoxCheckBox, QStyle.SubControl.SC_GroupBoxLabel)]
        return max(r.bottom() for r in rects) + 2

    def _fold(self, on: bool) -> None:
        self.contents.setVisible(on)
        self.setMaximumHeight(QWIDGETSIZE_MAX if on else self.header_height())

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.StyleChange, QEvent.Type.FontChange) and not self.isChecked():
            self._fold(False)  # the title line's height follows the style and the font

    def paintEvent(self, event) -> None:
        if self.isChecked():
            super().paintEvent(event)
            return
        painter = QStylePainter(self)
        option = QStyleOptionGroupBox()
        self.initStyleOption(option)
        option.subControls &= ~QStyle.SubControl.SC_GroupBoxFrame
        painter.drawComplexControl(QStyle.ComplexControl.CC_GroupBox, option)
