"""Canvas tools: images in and out, mask brush and eraser, mask colour and operations,
extending the canvas (outpainting), undo, zoom."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QColor, QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QToolBar,
    QToolButton,
)

from studio.core.canvas.mask_ops import Extension
from studio.core.generation.request import MAX_SIDE
from studio.ui.canvas import MAX_BRUSH, MIN_BRUSH, CanvasView

FILL_LABELS = (("Stretch the edges", "stretch"), ("Edges with noise", "noise"))


def _action(bar: QToolBar, text: str, shortcut=None, slot=None, tip: str = "", canvas_only=None) -> QAction:
    action = QAction(text, bar)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if canvas_only is not None:
        # Single-key shortcuts must not fire while typing a prompt: they live on the canvas.
        canvas_only.addAction(action)
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
    else:
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    if slot is not None:
        action.triggered.connect(slot)
    shown = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
    action.setToolTip(f"{tip or text} ({shown})" if shown else (tip or text))
    bar.addAction(action)
    return action


class CanvasToolbar(QToolBar):
    def __init__(self, canvas: CanvasView, window):
        super().__init__("Canvas")
        self.setObjectName("canvasToolbar")
        self.canvas = canvas
        c = canvas
        self.open_action = _action(self, "Open…", "Ctrl+O", window.image_input.open_image, "Open an image as input")
        self.paste_action = _action(
            self, "Paste", QKeySequence.StandardKey.Paste, window.image_input.paste_image, "Paste an image from the clipboard"
        )
        self.export_action = _action(self, "Export…", "Ctrl+E", window.outputs.export_image, "Export the shown image")
        self.use_result_action = _action(
            self, "Use as input", "Ctrl+Shift+U", window.image_input.use_result_as_input, "Use the result as the input image"
        )
        # Undo, Redo and the view come before the brush and mask tools: on a narrow window the
        # toolbar's overflow ("»") takes the last ones, which the Edit menu also holds (Extend).
        self.addSeparator()
        # The window's Edit menu holds these same actions (one QAction per shortcut: two would
        # make Ctrl+Z ambiguous, and Qt then fires neither). A focused text field keeps its own
        # Ctrl+Z (Qt gives it the key first); the menu items always act on the canvas.
        self.undo_action = _action(self, "Undo", QKeySequence.StandardKey.Undo, c.undo, "Undo on the canvas")
        self.redo_action = _action(self, "Redo", "Ctrl+Shift+Z", c.redo, "Redo on the canvas")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.fit_action = _action(self, "Fit", "Ctrl+0", c.fit, "Fit to window")
        self.actual_size_action = _action(self, "100%", "Ctrl+1", c.actual_size, "Actual pixels")
        self.addSeparator()

        tools = QActionGroup(self)
        self.brush_action = _action(self, "Brush", "B", lambda: c.set_erasing(False), "Mask brush", canvas_only=c)
        self.eraser_action = _action(self, "Eraser", "E", lambda: c.set_erasing(True), "Mask eraser", canvas_only=c)
        for action in (self.brush_action, self.eraser_action):
            action.setCheckable(True)
            tools.addAction(action)
        self.brush_action.setChecked(True)
        _action(self, "−", "[", lambda: c.grow_brush(1 / 1.2), "Smaller brush", canvas_only=c)
        self.size_spin = QSpinBox()
        self.size_spin.setObjectName("brushSizeSpin")
        self.size_spin.setAccessibleName("Brush size")
        self.size_spin.setToolTip("Brush size in image pixels ([ and ])")
        self.size_spin.setRange(MIN_BRUSH, MAX_BRUSH)
        self.size_spin.setSuffix(" px")
        self.size_spin.setMaximumWidth(self.size_spin.fontMetrics().horizontalAdvance("1024 px") + 32)
        self.size_slider = QSlider(Qt.Orientation.Horizontal)
        self.size_slider.setObjectName("brushSizeSlider")
        self.size_slider.setAccessibleName("Brush size slider")
        self.size_slider.setRange(MIN_BRUSH, 256)  # the spin box goes further
        self.size_slider.setFixedWidth(80)
        self.addWidget(self.size_slider)
        self.addWidget(self.size_spin)
        _action(self, "+", "]", lambda: c.grow_brush(1.2), "Larger brush", canvas_only=c)
        self.hardness_spin = self._spin("brushHardnessSpin", "Brush hardness", "Hard ")
        self.opacity_spin = self._spin("brushOpacitySpin", "Brush opacity", "Opacity ")
        self.addSeparator()
        self.mask_visible_action = _action(self, "Mask", "H", c.set_mask_visible, "Show or hide the mask tint", canvas_only=c)
        self.mask_visible_action.setCheckable(True)
        self.mask_visible_action.setChecked(True)
        _action(self, "Clear", "Ctrl+Shift+Backspace", c.clear_mask, "Clear the mask")
        _action(self, "Invert", "Ctrl+I", c.invert_mask, "Invert the mask")
        _action(self, "Fill", None, c.fill_mask, "Mask everything")
        self.mask_color_button = QToolButton()
        self.mask_color_button.setObjectName("maskColorButton")
        self.mask_color_button.setAccessibleName("Mask colour")
        self.mask_color_button.setToolTip("Mask colour")
        self.mask_color_button.clicked.connect(lambda: self.choose_mask_color())
        self.addWidget(self.mask_color_button)
        self.addSeparator()
        self.extend_action = _action(self, "Extend…", None, lambda: self.extend_canvas(),
                                     "Extend the canvas for outpainting (or drag a border of the image outwards)")

        self.size_spin.valueChanged.connect(lambda v: c.set_brush(size=v))
        self.size_slider.valueChanged.connect(lambda v: c.set_brush(size=v))
        self.hardness_spin.valueChanged.connect(lambda v: c.set_brush(hardness=v / 100))
        self.opacity_spin.valueChanged.connect(lambda v: c.set_brush(opacity=v / 100))
        c.brushChanged.connect(self.sync)
        c.undo_stack.listeners.append(self.sync)
        c.documentChanged.connect(self.sync)
        self.sync()

    def choose_mask_color(self, color: str | None = None) -> None:
        """The mask's colour (a colour dialog unless `color` is given); saved by the window."""
        if color is None:
            picked = QColorDialog.getColor(QColor(self.canvas.mask_color), self, "Mask colour")
            if not picked.isValid():
                return
            color = picked.name()
        self.canvas.set_mask_color(color, chosen=True)
        self.sync()

    def extend_canvas(self, ext: Extension | None = None, fill: str | None = None) -> bool:
        """Outpainting: add pixels on any side (a dialog unless `ext` is given)."""
        if ext is None:
            dialog = ExtendDialog(self.canvas.outpaint_fill, self)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return False
            ext, fill = dialog.extension(), dialog.fill()
        if fill:
            self.canvas.outpaint_fill = fill
        return self.canvas.extend(ext, fill)

    def _spin(self, name: str, accessible: str, prefix: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setObjectName(name)
        spin.setAccessibleName(accessible)
        spin.setToolTip(accessible)
        spin.setRange(0, 100)
        spin.setPrefix(prefix)
        spin.setSuffix(" %")
        # As wide as its longest text: Qt's own size hint leaves room the toolbar lacks at 1280 px.
        spin.setMaximumWidth(spin.fontMetrics().horizontalAdvance(f"{prefix}100 %") + 32)
        self.addWidget(QLabel(" "))
        self.addWidget(spin)
        return spin

    def sync(self) -> None:
        """Reflect the canvas state in the controls without feeding changes back."""
        c = self.canvas
        for spin, value in (
            (self.size_spin, c.brush.size),
            (self.size_slider, min(c.brush.size, self.size_slider.maximum())),
            (self.hardness_spin, round(c.brush.hardness * 100)),
            (self.opacity_spin, round(c.brush.opacity * 100)),
        ):
            if spin.value() != value:
                spin.blockSignals(True)
                spin.setValue(value)
                spin.blockSignals(False)
        (self.eraser_action if c.erasing else self.brush_action).setChecked(True)
        self.undo_action.setEnabled(c.undo_stack.can_undo)
        self.redo_action.setEnabled(c.undo_stack.can_redo)
        self.use_result_action.setEnabled(c.result is not None)
        self.extend_action.setEnabled(c.shown_image() is not None)
        swatch = QPixmap(16, 16)
        swatch.fill(QColor(c.mask_color))
        self.mask_color_button.setIcon(QIcon(swatch))


class ExtendDialog(QDialog):
    """Pixels to add on each side and what fills them; the size is rounded up to multiples of 8."""

    def __init__(self, fill: str = "stretch", parent=None):
        super().__init__(parent)
        self.setWindowTitle("Extend canvas")
        self.setObjectName("extendDialog")
        form = QFormLayout(self)
        self.spins: dict[str, QSpinBox] = {}
        for side in ("left", "top", "right", "bottom"):
            spin = QSpinBox()
            spin.setObjectName(f"extend_{side}")
            spin.setAccessibleName(f"Extend {side}")
            spin.setRange(0, MAX_SIDE)
            spin.setSingleStep(64)
            spin.setSuffix(" px")
            self.spins[side] = spin
            form.addRow(side.capitalize(), spin)
        self.fill_combo = QComboBox()
        self.fill_combo.setObjectName("extendFillCombo")
        self.fill_combo.setAccessibleName("Fill the new area with")
        for label, value in FILL_LABELS:
            self.fill_combo.addItem(label, value)
        self.fill_combo.setCurrentIndex(max(0, self.fill_combo.findData(fill)))
        form.addRow("Fill", self.fill_combo)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def extension(self) -> Extension:
        return Extension(**{side: spin.value() for side, spin in self.spins.items()})

    def fill(self) -> str:
        return self.fill_combo.currentData()
