"""Presets, history, drops and session recovery, wired into the real window."""

import numpy as np
from PIL import Image, PngImagePlugin
from PySide6.QtCore import QMimeData, QUrl

from studio.core.generation.settings import Settings


def test_results_enter_history_and_survive_a_restart(qtbot, make_window):
    window = make_window()
    window.panel.prompt.setPlainText("a lighthouse")
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    panel = window.recall.history_panel
    qtbot.waitUntil(lambda: panel.model.rowCount() == 1, timeout=2000)
    window.close()
    again = make_window()
    assert again.recall.history_panel.model.rowCount() == 1
    assert again.history.history.search("lighthouse")[0].path == str(window.job_view.last_image_path)


def test_applying_a_preset_fills_the_panel(qtbot, make_window):
    window = make_window()
    window.panel.prompt.setPlainText("a castle")
    bar = window.recall.preset_bar
    bar.select("Fast draft")
    bar.apply_current()
    assert window.panel.steps.value() == window.recall.service.presets.get("Fast draft").values["steps"]
    assert "castle" in window.panel.prompt.toPlainText()


def test_dropping_an_a1111_image_fills_the_panels(qtbot, make_window, tmp_path):
    window = make_window()
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters",
                  "a cat in a hat\nNegative prompt: dogs\nSteps: 33, Sampler: DDIM, CFG scale: 4.5, Seed: 77, Size: 320x448")
    path = tmp_path / "a1111.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    assert window.recall.handle_drop(mime)
    panel = window.panel
    assert panel.prompt.toPlainText() == "a cat in a hat" and panel.negative.toPlainText() == "dogs"
    shown = (panel.steps.value(), panel.sampler.currentText(), panel.guidance.value(), int(panel.seed.value()))
    assert shown == (33, "DDIM", 4.5, 77)
    assert (panel.width_spin.value(), panel.height_spin.value()) == (320, 448)
    assert not panel.random_seed.isChecked()


def test_dropping_a_plain_image_makes_it_the_input(qtbot, make_window, tmp_path):
    window = make_window()
    Image.new("RGB", (96, 80), (1, 2, 3)).save(tmp_path / "plain.png")
    window.recall.restore_from_image(str(tmp_path / "plain.png"))
    assert window.canvas.document.shape == (80, 96, 3)


def test_session_comes_back_after_a_crash(qtbot, make_window, tmp_path):
    window = make_window()
    window.panel.prompt.setPlainText("unsaved idea")
    window.canvas.set_document(np.full((64, 64, 3), 77, np.uint8))
    window.canvas.fill_mask()
    window.session.save_now().result(timeout=10)  # what the debounced autosave does
    # A crash: no closeEvent, so neither settings.json nor the session is cleaned up.
    fresh = make_window(Settings(model="/models/fake"))
    assert fresh.panel.prompt.toPlainText() == "unsaved idea"
    assert fresh.canvas.document is not None and fresh.canvas.document[0, 0, 0] == 77
    assert fresh.canvas.mask.min() == 255


def test_autosave_is_debounced_and_triggered_by_typing(qtbot, make_window):
    from studio.core.storage.session import load_session

    window = make_window()
    qtbot.keyClicks(window.panel.prompt, "typed")
    qtbot.waitUntil(lambda: (load_session()[0] or None) is not None, timeout=3000)
    assert load_session()[0].settings.prompt == "typed"
    # Every field of the panel is watched (from the field table), check boxes and groups too.
    window.panel.hires_group.setChecked(True)
    qtbot.waitUntil(lambda: load_session()[0].settings.hires_fix, timeout=3000)
    window.panel.random_seed.setChecked(not window.panel.random_seed.isChecked())
    expected = window.panel.random_seed.isChecked()
    qtbot.waitUntil(lambda: load_session()[0].settings.random_seed == expected, timeout=3000)


def test_lost_history_index_is_rebuilt_from_the_images(qtbot, make_window, studio_home):
    from studio.core.generation.request import GenerationRequest
    from studio.core.storage.outputs import OutputWriter

    writer = OutputWriter(studio_home / "outputs")
    for seed in range(3):
        writer.save(Image.new("RGB", (8, 8)), GenerationRequest(f"old picture {seed}", seed=seed))
    window = make_window()  # no index file yet: rebuilt in the background
    qtbot.waitUntil(lambda: window.recall.history_panel.model.rowCount() == 3, timeout=5000)
    assert (studio_home / "history.jsonl").exists()
    assert len(window.history.history.search("old picture")) == 3
