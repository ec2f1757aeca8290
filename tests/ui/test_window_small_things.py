"""Small things an artist's day tripped over: File -> Quit, a pasted image said, the canvas
that jumped when the step scrubber appeared, "Seed used" after a cancelled run."""

import threading

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import QApplication


def test_file_quit_closes_the_window(qtbot, make_window):
    window = make_window()
    action = window.quit_action
    assert action in window.file_menu.actions() and not action.shortcut().isEmpty()
    assert action.shortcut().matches(QKeySequence("Ctrl+Q")) == QKeySequence.SequenceMatch.ExactMatch
    action.trigger()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)


def test_paste_says_what_it_did(qtbot, make_window):
    window = make_window()
    image = QImage(96, 80, QImage.Format.Format_RGB888)
    image.fill(Qt.GlobalColor.darkCyan)
    QGuiApplication.clipboard().setImage(image)
    window.image_input.paste_image()
    assert window.canvas.document.shape == (80, 96, 3)
    assert window.status_label.text() == "Pasted a 96×80 image: it is now the input image (Image to image)."


def test_the_canvas_keeps_its_height_when_the_scrubber_appears(qtbot, make_window):
    window = make_window()
    QApplication.processEvents()
    before = window.canvas.height()
    assert not window.scrubber.isVisible()
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    QApplication.processEvents()
    assert window.scrubber.isVisible() and window.canvas.height() == before


def test_a_cancelled_run_is_not_called_the_seed_used(qtbot, make_window, script):
    window = make_window()
    script.hold = threading.Event()
    window.job_view.generate()
    qtbot.waitUntil(script.held.is_set, timeout=5000)
    seed = script.requests[-1].seed
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.cancel()
        script.hold.set()
    assert window.panel.last_seed.text() == f"Cancelled run's seed: {seed}"


def test_compare_says_which_side_is_which_and_that_it_is_on(qtbot, make_window):
    window = make_window()
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    scrubber = window.scrubber
    scrubber.slider.setValue(2)
    scrubber.compare.setChecked(True)
    assert scrubber.label.text() == "Left: Step 2/4 · right: final" and scrubber.compare.text() == "Comparing"
    scrubber.compare.setChecked(False)
    assert scrubber.label.text() == "Step 2/4" and scrubber.compare.text() == "Compare"


def test_save_step_offers_a_named_file_beside_the_final_image_with_its_recipe(qtbot, make_window, monkeypatch):
    from PIL import Image
    from PySide6.QtWidgets import QFileDialog

    from studio.core.storage.outputs import read_request

    window = make_window()
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    final = window.job_view.last_image_path
    window.scrubber.slider.setValue(2)
    offered = []

    def answer(parent, title, start, kinds):
        offered.append(start)
        return start, ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", answer)
    assert window.scrubber.save_step_as()
    assert offered == [str(final.parent / f"{final.stem}-step-2.png")]
    saved = final.parent / f"{final.stem}-step-2.png"
    assert read_request(saved) == read_request(final)
    with Image.open(saved) as image:
        assert image.text["Comment"] == f"Denoising preview: step 2 of 4 of {final.name}."
