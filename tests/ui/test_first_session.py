"""An artist's first session (issue 13): drops anywhere, Open…, the output folder, model
defaults after damaged settings, a restored seed, the session after a normal quit, stale
messages and the theme, through the real window on the fake engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QPalette,
)
from PySide6.QtWidgets import QApplication, QFileDialog

from studio.core.errors import StudioError
from studio.core.events import JobFailed
from studio.core.generation.request import GenerationRequest
from studio.core.generation.settings import Settings, load_settings
from studio.core.storage.output_folder import KeepingWriter
from studio.core.storage.outputs import read_request
from studio.core.storage.paths import settings_file
from tests.fakes import FakeEngine

A1111 = "a cat in a hat\nSteps: 33, Sampler: DDIM, CFG scale: 4.5, Seed: 77, Size: 320x448"


def _a1111_png(path, size=(40, 24)):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    Image.new("RGB", size, (10, 200, 30)).save(path, pnginfo=info)
    return path


def _mime(path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    return mime


def _drag_over(window, widgets, mime) -> QPointF:
    """What the platform does during a drag: enter the window, move over each widget in turn
    (QWidgetWindow sends the enters and leaves between them); returns the last position."""
    handle = window.windowHandle()
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    pos = widgets[0].mapTo(window, widgets[0].rect().center())
    QApplication.sendEvent(handle, QDragEnterEvent(pos, *args))
    for widget in widgets:
        pos = widget.mapTo(window, widget.rect().center())
        QApplication.sendEvent(handle, QDragMoveEvent(pos, *args))
    return QPointF(pos)


def _drop_on(window, widgets, mime) -> None:
    pos = _drag_over(window, widgets, mime)
    QApplication.sendEvent(window.windowHandle(), QDropEvent(pos, Qt.DropAction.CopyAction, mime,
                                                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))


# -- drops (item 6) and the drag-leave warning (item 17) ----------------------------------------
def test_an_image_dropped_on_the_prompt_restores_its_settings_not_its_url(qtbot, make_window, tmp_path, qtlog):
    window = make_window()
    window.panel.prompt.setPlainText("my words")
    # Across the canvas, then onto the prompt box: a Qt warning here fails the test (qt_log_level_fail).
    _drop_on(window, [window.canvas, window.panel.prompt], _mime(_a1111_png(tmp_path / "a.png")))
    assert "file://" not in window.panel.prompt.toPlainText()
    assert window.panel.prompt.toPlainText() == "a cat in a hat" and window.panel.steps.value() == 33
    assert not [r for r in qtlog.records if "drag leave" in r.message]


def test_a_drag_that_leaves_the_canvas_prints_no_qt_warning(qtbot, make_window, tmp_path, qtlog):
    window = make_window()
    mime = _mime(_a1111_png(tmp_path / "a.png"))
    for _ in range(2):  # in and out of the canvas, then off the window
        _drag_over(window, [window.canvas, window.panel.negative, window.canvas], mime)
        QApplication.sendEvent(window.windowHandle(), QDragLeaveEvent())
    assert not [r for r in qtlog.records if "drag leave" in r.message]


def test_dropping_on_the_canvas_asks_what_the_image_is_for(qtbot, make_window, tmp_path):
    window = make_window()
    asked = []
    window.recall.ask_drop_action = lambda name: asked.append(name) or "input"
    window.panel.prompt.setPlainText("keep me")
    _drop_on(window, [window.canvas], _mime(_a1111_png(tmp_path / "a.png")))
    assert asked == ["a.png"]
    assert window.canvas.document.shape == (24, 40, 3) and window.canvas.document[0, 0, 1] == 200
    assert window.panel.prompt.toPlainText() == "keep me"  # "Use as input" only
    assert window.panel.current_mode() == "img2img"


def test_both_restores_the_settings_and_uses_the_image_as_input(qtbot, make_window, tmp_path):
    window = make_window()
    window.recall.ask_drop_action = lambda name: "both"
    window.recall.handle_drop(_mime(_a1111_png(tmp_path / "a.png", (96, 72))))
    assert window.panel.prompt.toPlainText() == "a cat in a hat" and window.panel.steps.value() == 33
    assert window.canvas.document.shape == (72, 96, 3)
    assert (window.panel.width_spin.value(), window.panel.height_spin.value()) == (96, 72)  # the input's, not 320x448


def test_closing_the_drop_menu_changes_nothing(qtbot, make_window, tmp_path):
    window = make_window()
    window.recall.ask_drop_action = lambda name: None
    window.panel.prompt.setPlainText("unchanged")
    window.recall.handle_drop(_mime(_a1111_png(tmp_path / "a.png")))
    assert window.panel.prompt.toPlainText() == "unchanged" and window.canvas.document is None


def test_an_image_without_settings_becomes_the_input_without_asking(qtbot, make_window, tmp_path):
    window = make_window()
    window.recall.ask_drop_action = lambda name: pytest.fail("nothing to ask about")
    Image.new("RGB", (32, 16), (1, 2, 3)).save(tmp_path / "plain.png")
    _drop_on(window, [window.panel.negative], _mime(tmp_path / "plain.png"))
    assert window.canvas.document.shape == (16, 32, 3) and window.panel.negative.toPlainText() == ""


# -- Open… (item 7) ---------------------------------------------------------------------------
def test_open_restores_settings_resets_a_stale_mask_and_starts_in_the_outputs(qtbot, make_window, tmp_path, monkeypatch):
    window = make_window()
    window.image_input.set_input_image(np.full((24, 40, 3), 50, np.uint8), "old")
    window.canvas.fill_mask()
    window.panel.set_mode("inpaint")
    path = _a1111_png(tmp_path / "studio.png")
    started_in = []

    def dialog(parent, caption, folder, filters):
        started_in.append(folder)
        return str(path), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", dialog)
    window.recall.ask_drop_action = lambda name: "both"
    window.image_input.open_image()
    assert started_in == [str(window.outputs.folder())]
    assert window.panel.steps.value() == 33  # the settings came back
    assert window.canvas.document[0, 0, 1] == 200 and not window.canvas.mask.any()  # no stale mask
    assert window.panel.current_mode() == "img2img"  # nor a stale Inpaint mode


# -- the output folder (item 3) ---------------------------------------------------------------
def test_an_unwritable_output_folder_is_said_at_start_and_no_job_runs(qtbot, make_window, script, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_bytes(b"")  # a file where the folder should be: unwritable even for root
    window = make_window(Settings(model="/models/fake", random_seed=False, seed=5, width=64, height=64, steps=2,
                                  outputs_dir=str(blocked)))
    assert window.banner.isVisible() and "cannot be saved" in window.banner.label.text()
    assert window.banner.button("Choose output folder…") is not None
    window.job_view.generate()
    assert not window.job_view.running and script.requests == []
    assert window.outputs.choose_folder(str(tmp_path / "elsewhere"))
    assert load_settings(window.state.path)[0].outputs_dir == str(tmp_path / "elsewhere")
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000) as ended:
        window.job_view.generate()
    assert ended.args == ["finished"] and not window.banner.isVisible()


class _SavingFake(FakeEngine):
    """The fake engine writing through the studio's KeepingWriter; a StudioError ends the job as
    the real engine ends it (engine.generate: JobFailed with the error itself)."""

    def __init__(self, emit, script, root):
        super().__init__(emit, script, root)
        self.outputs = KeepingWriter(root)

    def generate(self, request, cancel, job_id="", **options):
        try:
            super().generate(request, cancel, job_id=job_id)  # saving itself, as engines did before the writer thread
        except StudioError as error:
            self.emit(JobFailed(error, request, job_id=job_id))


def test_an_image_whose_write_fails_stays_on_the_canvas_with_save_as(qtbot, open_window, tmp_path, script):
    blocked = tmp_path / "blocked"
    blocked.write_bytes(b"")
    settings = Settings(model="/models/fake", random_seed=False, seed=9, width=64, height=64, steps=2)
    window = open_window(settings, lambda emit: _SavingFake(emit, script, blocked))
    window.panel.prompt.setPlainText("a red square")
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000) as ended:
        window.job_view.generate()
    assert ended.args == ["failed"]
    assert window.canvas.showing == "result" and window.canvas.result[0, 0].tolist() == [200, 30, 30]
    assert "could not be saved" in window.banner.label.text() and window.banner.button("Save as…") is not None
    kept = tmp_path / "kept.png"
    assert window.outputs.save_unsaved_as(str(kept))
    assert np.asarray(Image.open(kept))[0, 0].tolist() == [200, 30, 30]
    assert read_request(kept).seed == 9 and read_request(kept).prompt == "a red square"  # the recipe is kept too
    assert not window.banner.isVisible()


# -- a restored seed (item 10) ----------------------------------------------------------------
def test_a_restored_seed_says_random_is_off(qtbot, make_window, tmp_path):
    window = make_window(Settings(model="/models/fake", random_seed=True, width=64, height=64, steps=2))
    window.recall.handle_drop(_mime(_a1111_png(tmp_path / "a.png")))
    panel = window.panel
    assert not panel.random_seed.isChecked() and int(panel.seed.value()) == 77
    assert panel.seed_hint.isVisible() and "77" in panel.seed_hint.text() and "Random is off" in panel.seed_hint.text()
    assert "Random is off" in window.status_label.text()
    panel.random_seed.setChecked(True)
    assert not panel.seed_hint.isVisible()


# -- history (item 15) ------------------------------------------------------------------------
def test_history_shows_seed_and_time_selects_on_click_and_restores_the_extras(qtbot, make_window, tmp_path):
    window = make_window()
    window.resize(1280, 820)
    history = window.recall.history_panel
    requests = [GenerationRequest(prompt="a large red circle", seed=seed, width=64, height=64, clip_skip=2,
                                  hires_scale=1.5, variation_seed=3, variation_strength=0.25) for seed in (11, 22)]
    for index, request in enumerate(requests):
        path = tmp_path / f"{index}.png"
        Image.new("RGB", (64, 64)).save(path)
        history.add_entry(path, request)
    label = history.model.index(0).data()
    assert "22" in label and ":" in label  # the newest first, with its seed and time
    assert history.search.width() >= 120 and history.delete_button.width() >= history.delete_button.sizeHint().width()
    dock_width = window.recall.dock.width()
    qtbot.keyClicks(history.search, "large red circle")
    QApplication.processEvents()
    assert window.recall.dock.width() == dock_width  # searching does not widen the dock
    rect = history.view.visualRect(history.model.index(1))
    qtbot.mouseClick(history.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert history.selected_entry().seed == 11 and "Seed 11" in window.status_label.text()
    history.restore_selected("all")
    settings = window.settings
    assert (settings.clip_skip, settings.hires_fix, settings.hires_scale) == (2, True, 1.5)
    assert (settings.variation, settings.variation_seed, settings.variation_strength) == (True, 3, 0.25)
    opened = []
    history.viewRequested.connect(opened.append)
    qtbot.mouseDClick(history.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert opened == [str(tmp_path / "0.png")]  # seed 11's image


# -- the session after a normal quit (item 12) -------------------------------------------------
def test_a_normal_quit_keeps_the_input_mask_brush_and_dock_width(qtbot, make_window):
    window = make_window()
    window.canvas.set_document(np.full((64, 48, 3), 91, np.uint8))
    window.canvas.fill_mask()
    window.canvas.set_brush(size=13)
    window.resizeDocks([window.recall.dock], [400], Qt.Orientation.Horizontal)
    QApplication.processEvents()
    width = window.recall.dock.width()
    window.close()
    saved = load_settings(window.state.path)[0]
    again = make_window(saved)
    QApplication.processEvents()
    assert again.canvas.document is not None and again.canvas.document[0, 0, 0] == 91
    assert again.canvas.mask.min() == 255 and again.canvas.brush.size == 13
    assert abs(again.recall.dock.width() - width) <= 2


# -- stale messages (item 17) -----------------------------------------------------------------
def test_the_empty_canvas_says_what_the_mode_needs(qtbot, make_window):
    window = make_window(Settings(model="/models/fake", mode="inpaint", width=64, height=64))
    qtbot.waitUntil(lambda: window.model_status.ready, timeout=5000)
    assert "needs an input image" in window.canvas._message.toPlainText()
    window.panel.set_mode("txt2img")
    assert "Type a prompt" in window.canvas._message.toPlainText()


def test_a_success_clears_an_old_error(qtbot, make_window, script):
    window = make_window()
    script.fail_at_step = 1
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    assert window.banner.isVisible()
    script.fail_at_step = None
    window.banner.show_error(StudioError("bad_input", "Left over from before."))  # shown while nothing runs
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000) as ended:
        window.job_view.generate()
    assert ended.args == ["finished"] and not window.banner.isVisible()


def test_restored_session_message_survives_the_model_loading(qtbot, make_window):
    window = make_window()
    window.panel.prompt.setPlainText("idea")
    window.close()
    again = make_window(Settings(model="/models/fake"))
    qtbot.waitUntil(lambda: again.model_status.ready, timeout=5000)
    assert "Restored your last session." in again.status_label.text() and "Ready" in again.status_label.text()


# -- model defaults after damaged settings (item 4) --------------------------------------------
@pytest.fixture
def start_app(qtbot, tmp_path, script):
    from studio.backends.local.worker import EngineThread
    from studio.launch import build_main_window

    threads = []

    def start():
        engine = EngineThread(lambda emit: FakeEngine(emit, script, tmp_path / "outputs"))
        engine.start()
        threads.append(engine)
        window = build_main_window(engine)
        qtbot.addWidget(window)
        window.start()
        return window

    yield start
    for engine in threads:
        assert engine.stop(20000)


def test_damaged_settings_take_the_models_defaults_not_512(qtbot, start_app):
    settings_file().parent.mkdir(parents=True, exist_ok=True)
    settings_file().write_text("{ this is not json")
    window = start_app()
    panel = window.panel
    assert (panel.width_spin.value(), panel.height_spin.value()) == (64, 64)  # resources/demo-model/studio.json
    assert panel.guidance.value() == 5.0 and panel.sampler.currentText() == "DPM++ 2M"
    assert "Settings could not be read" in window.status_label.text()
    qtbot.waitUntil(lambda: window.model_status.ready, timeout=5000)
    assert "Settings could not be read" in window.status_label.text()  # not wiped by "Loading…"


# -- the theme (item 20) ----------------------------------------------------------------------
def test_the_studio_starts_dark_and_the_light_theme_is_remembered(qtbot, start_app):
    window = start_app()
    app = QApplication.instance()
    assert app.property("studioTheme") == "dark"
    assert app.palette().color(QPalette.ColorRole.Window).lightness() < 80
    assert window.theme_actions["dark"].isChecked()
    window.theme_actions["light"].trigger()
    assert app.palette().color(QPalette.ColorRole.Window).lightness() > 200
    assert json.loads(settings_file().read_text())["theme"] == "light"


def test_theme_colours_read_well():
    """WCAG contrast of what the issue names: text, disabled text, the selection."""
    from studio.ui.theme import palette_for

    def luminance(colour):
        def channel(c):
            c /= 255
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
        return 0.2126 * channel(colour.red()) + 0.7152 * channel(colour.green()) + 0.0722 * channel(colour.blue())

    def contrast(a, b):
        high, low = sorted((luminance(a), luminance(b)), reverse=True)
        return (high + 0.05) / (low + 0.05)

    role, group = QPalette.ColorRole, QPalette.ColorGroup
    for name in ("dark", "light"):
        palette = palette_for(name)
        assert contrast(palette.color(role.Text), palette.color(role.Base)) >= 7, name
        assert contrast(palette.color(role.WindowText), palette.color(role.Window)) >= 7, name
        assert contrast(palette.color(group.Disabled, role.WindowText), palette.color(role.Window)) >= 3, name
        assert contrast(palette.color(role.HighlightedText), palette.color(role.Highlight)) >= 4.5, name
