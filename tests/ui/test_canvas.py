"""The canvas as a painting surface: real mouse events on a real QGraphicsView."""

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QWidget

from studio.core.canvas.mask_ops import Brush
from studio.core.canvas.undo import SwapCommand, UndoStack
from studio.ui.canvas import CanvasView


@pytest.fixture
def canvas(qtbot):
    view = CanvasView()
    qtbot.addWidget(view)
    view.resize(600, 600)
    view.show()
    qtbot.waitExposed(view)
    document = np.zeros((256, 256, 3), np.uint8)
    document[..., 1] = 120
    view.set_document(document)
    view.actual_size()  # 1 view pixel = 1 image pixel, easy to reason about
    view.centerOn(128, 128)
    view.set_brush(size=20, hardness=1.0, opacity=1.0)
    return view


def _at(view, x, y) -> QPoint:
    return view.mapFromScene(QPointF(x, y))


def _stroke(qtbot, view, points, button=Qt.MouseButton.LeftButton):
    qtbot.mousePress(view.viewport(), button, pos=_at(view, *points[0]))
    for point in points[1:]:
        qtbot.mouseMove(view.viewport(), _at(view, *point))
    qtbot.mouseRelease(view.viewport(), button, pos=_at(view, *points[-1]))


def test_stroke_paints_the_mask_under_the_path(qtbot, canvas):
    _stroke(qtbot, canvas, [(40, 100), (120, 100), (200, 100)])
    mask = canvas.mask
    assert mask[100, 40:201].min() == 255  # along the path
    assert mask[100 - 6 : 100 + 6, 60].min() == 255  # the brush's width
    assert mask[80, 100] == 0 and mask[200, 128] == 0  # away from it
    assert mask[100, 20] == 0  # before the start


def test_undo_redo_restore_exact_mask_states(qtbot, canvas):
    states = [canvas.mask.copy()]
    _stroke(qtbot, canvas, [(40, 60), (200, 60)])
    states.append(canvas.mask.copy())
    canvas.set_erasing(True)
    _stroke(qtbot, canvas, [(100, 40), (100, 80)])
    states.append(canvas.mask.copy())
    canvas.invert_mask()
    states.append(canvas.mask.copy())
    assert canvas.mask[60, 100] == 255 and canvas.mask[60, 150] == 0  # erased gap inverted
    for expected in reversed(states[:-1]):
        assert canvas.undo_stack.undo()
        assert np.array_equal(canvas.mask, expected)
    for expected in states[1:]:
        assert canvas.undo_stack.redo()
        assert np.array_equal(canvas.mask, expected)


def test_soft_brush_and_opacity_stay_within_limits(qtbot, canvas):
    canvas.set_brush(size=40, hardness=0.0, opacity=0.5)
    _stroke(qtbot, canvas, [(128, 128), (129, 128), (128, 128)])  # dabs overlap many times
    assert 120 <= canvas.mask[128, 128] <= 128  # opacity caps one stroke, however often it passes
    assert canvas.mask[128, 145] < canvas.mask[128, 135] < canvas.mask[128, 128]  # soft falloff


def test_clear_fill_and_apply_result_are_undoable(qtbot, canvas):
    canvas.fill_mask()
    assert canvas.mask.min() == 255
    canvas.clear_mask()
    assert canvas.mask.max() == 0
    before = canvas.document.copy()
    result = np.full((256, 256, 3), 200, np.uint8)
    canvas.show_result(result)
    assert canvas.showing == "result"
    assert canvas.use_result_as_input()
    assert np.array_equal(canvas.document, result)
    canvas.undo()
    assert np.array_equal(canvas.document, before) and canvas.showing == "result"  # the result is back in view
    canvas.undo()
    assert canvas.showing == "document" and canvas.result is None  # showing the result was a step too
    canvas.undo()
    assert canvas.mask.min() == 255


def test_painting_returns_from_result_to_the_input(qtbot, canvas):
    canvas.show_result(np.full((256, 256, 3), 9, np.uint8))
    _stroke(qtbot, canvas, [(50, 50), (60, 60)])
    assert canvas.showing == "document" and canvas.mask[55, 55] == 255


def test_bracket_keys_resize_and_b_e_switch_tools(qtbot, canvas):
    from studio.ui.canvas_toolbar import CanvasToolbar

    class Handlers:  # the window's image_input and outputs: every action does nothing here
        def __getattr__(self, name):
            return lambda *a: None

    class Window(QWidget):
        def __getattr__(self, name):
            return Handlers()

    toolbar = CanvasToolbar(canvas, Window())
    qtbot.addWidget(toolbar)
    canvas.setFocus()
    toolbar.findChild(QWidget, "brushSizeSpin").setValue(50)
    assert canvas.brush.size == 50 and toolbar.size_slider.value() == 50
    toolbar.size_slider.setValue(70)
    assert canvas.brush.size == 70 and toolbar.size_spin.value() == 70
    toolbar.size_spin.setValue(50)
    for action in toolbar.actions():
        if action.text() == "+":
            action.trigger()
    assert canvas.brush.size == 60 and toolbar.size_spin.value() == 60
    toolbar.eraser_action.trigger()
    assert canvas.erasing
    toolbar.brush_action.trigger()
    assert not canvas.erasing


def test_middle_button_pans_without_painting(qtbot, canvas):
    canvas.zoom(4)
    before = canvas.horizontalScrollBar().value()
    _stroke(qtbot, canvas, [(128, 128), (100, 128)], button=Qt.MouseButton.MiddleButton)
    assert canvas.horizontalScrollBar().value() != before
    assert canvas.mask.max() == 0


def test_undo_stack_is_bounded_in_memory():
    stack = UndoStack(max_bytes=10_000_000, max_commands=1000)
    for _ in range(50):
        stack.push(SwapCommand(lambda state: None, None, None, 1_000_000))
    assert stack.total_bytes <= 10_000_000 and len(stack) == 10


def test_brush_dab_respects_hardness():
    from studio.core.canvas.mask_ops import dab

    hard, soft = dab(21, 1.0), dab(21, 0.0)
    assert hard[10, 10] == 1.0 and hard[10, 1] == 1.0 and hard[0, 0] == 0.0
    assert soft[10, 10] > soft[10, 5] > soft[10, 1] > 0.0
    assert Brush().size > 0
