"""The canvas as an artist uses it (issue 13 items 9, 14, 16, 21): undo/redo through results
and strokes from anywhere in the window, a brush and mask that suit the image, inpaint previews
on the kept area, and outpainting. Real window, real engine thread, the fake engine."""

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QToolButton

from studio.core.canvas.mask_ops import Extension
from studio.core.generation.settings import Settings, load_settings

RED = (200, 30, 30)  # what the fake engine paints


def _at(view, x, y) -> QPoint:
    return view.mapFromScene(QPointF(x, y))


def _stroke(qtbot, view, points):
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=_at(view, *points[0]))
    for point in points[1:]:
        qtbot.mouseMove(view.viewport(), _at(view, *point))
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=_at(view, *points[-1]))


def _shown_rgb(canvas, x, y):
    return canvas.current_pixmap().toImage().pixelColor(x, y).getRgb()[:3]


def _inpaint_window(qtbot, make_window):
    window = make_window(Settings(model="/m", random_seed=False, seed=5, width=64, height=64, steps=3, mode="inpaint"))
    with qtbot.waitActive(window):
        window.activateWindow()
    window.image_input.set_input_image(np.full((64, 64, 3), 90, np.uint8), "Open")
    window.panel.set_mode("inpaint")
    window.canvas.set_brush(size=8, hardness=1.0)
    return window


def test_undo_steps_back_through_result_then_stroke_and_redo_brings_both(qtbot, make_window):
    window = _inpaint_window(qtbot, make_window)
    canvas = window.canvas
    _stroke(qtbot, canvas, [(20, 20), (40, 20)])
    stroked = canvas.mask.copy()
    assert stroked[20, 30] == 255
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        qtbot.mouseClick(window.panel.generate_button, Qt.MouseButton.LeftButton)
    assert canvas.showing == "result" and _shown_rgb(canvas, 5, 5) == RED
    # After clicking Generate the keyboard focus is not in a text box: Ctrl+Z is the canvas's.
    focused = window.focusWidget()
    assert focused not in (window.panel.prompt, window.panel.negative)
    qtbot.keyClick(focused, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert canvas.showing == "document" and _shown_rgb(canvas, 5, 5) == (90, 90, 90)
    assert np.array_equal(canvas.mask, stroked)  # the stroke survives the first undo
    qtbot.keyClick(focused, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert canvas.mask.max() == 0
    qtbot.keyClick(focused, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(canvas.mask, stroked) and canvas.showing == "document"
    qtbot.keyClick(focused, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert canvas.showing == "result" and _shown_rgb(canvas, 5, 5) == RED  # Redo brings the result back
    assert canvas.result_path == window.job_view.last_image_path


def test_each_image_of_a_batch_is_one_step_and_a_stroke_after_a_result_undoes_to_it(qtbot, make_window, script):
    window = _inpaint_window(qtbot, make_window)
    canvas = window.canvas
    canvas.fill_mask()
    window.panel.batch.setValue(2)
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    first, second = sorted(p for p in window.job_view.last_image_path.parent.glob("*.png") if p.stem.count("-") == 1)[-2:]
    assert canvas.result_path == second
    _stroke(qtbot, canvas, [(10, 50), (12, 50)])  # painting brings the input back into view
    assert canvas.showing == "document"
    canvas.undo()
    assert canvas.showing == "result" and canvas.result_path == second
    canvas.undo()
    assert canvas.result_path == first
    canvas.undo()
    assert canvas.showing == "document" and canvas.mask.min() == 255


def test_text_fields_keep_their_own_ctrl_z_and_the_edit_menu_acts_on_the_canvas(qtbot, make_window):
    window = _inpaint_window(qtbot, make_window)
    canvas = window.canvas
    _stroke(qtbot, canvas, [(20, 20), (40, 20)])
    window.panel.prompt.setFocus()
    qtbot.keyClicks(window.panel.prompt, "a cat")
    qtbot.keyClick(window.panel.prompt, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.panel.prompt.toPlainText() != "a cat"  # Qt's text undo
    assert canvas.mask.max() == 255  # the canvas was not touched
    menu_titles = [action.text() for action in window.menuBar().actions()]
    assert "&Edit" in menu_titles
    undo = next(a for a in window.edit_menu.actions() if a.text() == "Undo")
    assert undo.shortcut().toString() == "Ctrl+Z"
    redo = next(a for a in window.edit_menu.actions() if a.text() == "Redo")
    assert {s.toString() for s in redo.shortcuts()} == {"Ctrl+Shift+Z", "Ctrl+Y"}
    undo.trigger()  # from the menu, with the prompt still focused: the canvas
    assert canvas.mask.max() == 0
    redo.trigger()
    assert canvas.mask.max() == 255


def test_default_brush_fits_the_image_unless_the_artist_chose_one(qtbot, make_window):
    window = make_window()
    canvas, toolbar = window.canvas, window.canvas_toolbar
    window.image_input.set_input_image(np.zeros((64, 64, 3), np.uint8), "Open")
    assert canvas.brush.size == 6 and toolbar.size_spin.value() == 6  # was 48: three quarters of the image
    toolbar.size_spin.setValue(11)  # the artist's choice for this image...
    window.image_input.set_input_image(np.ones((64, 64, 3), np.uint8), "Open")
    assert canvas.brush.size == 11  # ...kept for another image of the same size
    window.image_input.set_input_image(np.zeros((768, 512, 3), np.uint8), "Open")
    assert canvas.brush.size == 51  # a new size: a tenth of the shorter side
    window.image_input.set_input_image(np.zeros((4096, 4096, 3), np.uint8)[:, :, :], "Open")
    assert canvas.brush.size == toolbar.size_slider.maximum()  # within the slider's range


def test_mask_reads_over_a_red_object_and_its_colour_is_saved(qtbot, make_window, tmp_path):
    window = make_window()
    canvas = window.canvas
    red = np.zeros((128, 128, 3), np.uint8)
    red[...] = (255, 48, 96)  # the very colour of the default tint
    window.image_input.set_input_image(red, "Open")
    canvas.fill_mask()
    canvas.resize(400, 400)
    canvas.fit()
    shot = canvas.viewport().grab().toImage()
    centre = canvas.mapFromScene(QPointF(64, 64))
    colours = set()
    for dx in range(0, 40, 2):
        colour = shot.pixelColor(centre.x() + dx, centre.y())
        colours.add(colour.getRgb()[:3])
    darkest = min(sum(c) for c in colours)
    assert darkest < sum((255, 48, 96)) * 0.7, colours  # stripes of a contrasting colour show over red
    # The outline: the mask's edge is drawn in black and white.
    canvas.clear_mask()
    canvas.set_brush(size=40, hardness=1.0)
    _stroke(qtbot, canvas, [(64, 64), (65, 64)])
    shot = canvas.viewport().grab().toImage()
    assert canvas.mask[64, 64] == 255 and canvas.mask[64, 30] == 0
    y = canvas.mapFromScene(QPointF(0, 64)).y()
    left, right = canvas.mapFromScene(QPointF(30, 64)).x(), canvas.mapFromScene(QPointF(50, 64)).x()
    row = {shot.pixelColor(x, y).getRgb()[:3] for x in range(left, right)}
    # Black and white dashes (greys where the view scales them down): colours the tint is not.
    assert any(max(c) - min(c) < 12 for c in row), row
    # Colour setting: the toolbar button, stored in settings.
    button = window.findChild(QToolButton, "maskColorButton")
    assert button is not None and button.accessibleName() == "Mask colour"
    window.canvas_toolbar.choose_mask_color("#20e040")
    assert canvas.mask_color == "#20e040"
    assert load_settings(tmp_path / "settings.json")[0].mask_color == "#20e040"


def test_inpaint_previews_keep_the_unmasked_part_of_the_input(qtbot, make_window, script):
    window = _inpaint_window(qtbot, make_window)
    canvas = window.canvas
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    canvas.set_document(canvas.document, "mask", mask)
    window.panel.mask_blur.setValue(4)
    script.step_seconds = 0.05  # steps apart: the canvas draws only the newest of previews that arrive together
    shown = []
    original = canvas.show_pixels
    canvas.show_pixels = lambda pixels, *a, **k: (shown.append(pixels.copy()), original(pixels, *a, **k))
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    previews = shown[:-2]  # the last two are the result: shown once decoded, then once saved
    assert previews, "no preview was drawn"
    frame = previews[-1]
    assert frame.shape == (64, 64, 3)
    assert (frame[:, :20] == 90).all()  # kept: the input, not the preview's grey
    steps = window.settings.steps
    fake_shade = int(frame[0, 48, 0])  # the fake engine's previews are flat greys, brighter each step
    assert fake_shade in {int(255 * step / steps) for step in range(1, steps + 1)} and fake_shade > 90
    assert (frame[:, 48:] == fake_shade).all()  # masked: the preview
    assert 90 < frame[10, 32, 0] < fake_shade  # the seam is feathered like the final composite


def test_extend_from_the_toolbar_masks_the_new_area_switches_to_inpaint_and_undoes(qtbot, make_window, script):
    window = make_window()
    canvas = window.canvas
    window.image_input.set_input_image(np.full((64, 64, 3), 90, np.uint8), "Open")
    assert window.canvas_toolbar.extend_action.isEnabled()
    assert window.canvas_toolbar.extend_canvas(Extension(right=30), "stretch")
    assert canvas.document.shape == (64, 96, 3)  # 30 rounded up: sizes stay multiples of 8
    assert window.panel.current_mode() == "inpaint"
    assert (window.panel.width_spin.value(), window.panel.height_spin.value()) == (96, 64)
    assert canvas.mask[:, 64:].min() == 255 and canvas.mask[:, :50].max() == 0
    assert 0 < canvas.mask[10, 60] < 255  # a feathered seam into the old image
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    request = script.requests[-1]
    assert request.mode.value == "inpaint" and (request.width, request.height) == (96, 64)
    canvas.undo()  # the result
    canvas.undo()  # the extension
    assert canvas.document.shape == (64, 64, 3) and canvas.mask.max() == 0
    canvas.redo()
    assert canvas.document.shape == (64, 96, 3)


def test_dragging_a_border_extends_the_canvas(qtbot, make_window):
    window = make_window()
    canvas = window.canvas
    window.image_input.set_input_image(np.full((64, 64, 3), 90, np.uint8), "Open")
    canvas.resize(500, 500)
    canvas.fit()
    scale = canvas.transform().m11()
    start = canvas.mapFromScene(QPointF(-3 / scale, 32))  # just outside the left border
    viewport = canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(viewport, canvas.mapFromScene(QPointF(-20, 32)))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(QPointF(-20, 32)))
    assert canvas.document.shape == (64, 88, 3)  # 20 px rounded to 24
    assert canvas.mask[:, :24].min() == 255 and canvas.mask[:, 40:].max() == 0
    assert window.panel.current_mode() == "inpaint"


def test_extending_a_result_extends_what_is_shown(qtbot, make_window):
    window = _inpaint_window(qtbot, make_window)
    canvas = window.canvas
    canvas.fill_mask()
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    assert canvas.extend(Extension(bottom=16))
    assert canvas.document.shape == (80, 64, 3) and tuple(canvas.document[5, 5]) == RED
    assert canvas.mask[:56].max() == 0  # the result's own area is kept but for the seam
    canvas.undo()
    assert canvas.showing == "result" and canvas.document.shape == (64, 64, 3)
