"""The "LoRA…" button: lists the LoRA folders' files (scanned off the GUI thread) with their
family, and inserts `<lora:NAME:1>` at the prompt's cursor."""

import threading
from pathlib import Path

import pytest
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QToolButton

from studio.core.generation.settings import Settings, save_settings
from studio.ui import lora_picker
from studio.ui.lora_picker import LoraButton, insert_at_cursor
from tests.lora_files import write_family_lora


@pytest.fixture
def webui(tmp_path, studio_home):
    """An A1111 install with two LoRAs in models/Lora, and one in the studio's own folder."""
    models = tmp_path / "webui" / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    write_family_lora(models / "Lora" / "Ink Wash.safetensors", "sd1")
    write_family_lora(models / "Lora" / "xl" / "film grain.safetensors", "sdxl")
    write_family_lora(studio_home / "models" / "loras" / "mine.safetensors", "sd2")
    return str(models / "Stable-diffusion")


def scanned(qtbot, button: LoraButton):
    before = button.loras
    button.refresh()
    qtbot.waitUntil(lambda: button.loras is not None and button.loras is not before, timeout=5000)
    return [a.text() for a in button.menu_.actions()]


def test_lists_loras_beside_the_model_folders_with_their_family(qtbot, webui, monkeypatch):
    threads = []
    original = lora_picker.scan_loras

    def spy(folders):
        threads.append(threading.current_thread().name)
        return original(folders)

    monkeypatch.setattr(lora_picker, "scan_loras", spy)
    prompt = QPlainTextEdit()
    button = LoraButton(prompt, lambda: [webui])
    qtbot.addWidget(button)
    assert [a.text() for a in button.menu_.actions()] == ["Scanning the LoRA folders…"]
    texts = scanned(qtbot, button)
    assert texts[:3] == ["film grain  ·  SDXL", "Ink Wash  ·  SD 1.x", "mine  ·  SD 2.x"]
    # Where it looked, written out under the list: a LoRA the artist misses is in another folder.
    looked = [t.removeprefix("Looked in ") for t in texts if t.startswith("Looked in ")]
    assert str(Path(webui).parent / "Lora") in looked and len(looked) == len(button.folders)
    assert threads == [lora_picker.SCAN_THREAD_NAME]  # not the GUI thread


def test_choosing_one_inserts_the_tag_at_the_cursor(qtbot, webui):
    prompt = QPlainTextEdit()
    prompt.setPlainText("a cat, forest")
    cursor = prompt.textCursor()
    cursor.setPosition(len("a cat,"))
    prompt.setTextCursor(cursor)
    button = LoraButton(prompt, lambda: [webui])
    qtbot.addWidget(button)
    scanned(qtbot, button)
    ink = next(a for a in button.menu_.actions() if a.text().startswith("Ink Wash"))
    with qtbot.waitSignal(button.inserted) as signal:
        ink.trigger()
    assert signal.args == ["<lora:Ink Wash:1>"]
    assert prompt.toPlainText() == "a cat, <lora:Ink Wash:1> forest"
    assert prompt.textCursor().position() == len("a cat, <lora:Ink Wash:1>")


@pytest.mark.parametrize(
    "text, position, expected",
    [("", 0, "<lora:x:1>"), ("cat", 3, "cat <lora:x:1>"), ("cat ", 4, "cat <lora:x:1>"), ("cat", 0, "<lora:x:1>cat")],
)
def test_insert_spacing(qtbot, text, position, expected):
    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    edit.setPlainText(text)
    cursor = edit.textCursor()
    cursor.setPosition(position)
    edit.setTextCursor(cursor)
    insert_at_cursor(edit, "<lora:x:1>")
    assert edit.toPlainText() == expected


def test_selection_is_replaced(qtbot):
    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    edit.setPlainText("a dog sitting")
    cursor = edit.textCursor()
    cursor.setPosition(2)
    cursor.setPosition(5, QTextCursor.MoveMode.KeepAnchor)
    edit.setTextCursor(cursor)
    insert_at_cursor(edit, "<lora:x:1>")
    assert edit.toPlainText() == "a <lora:x:1> sitting"


def test_empty_folders_say_where_loras_go(qtbot, studio_home):
    button = LoraButton(QPlainTextEdit(), lambda: [])
    qtbot.addWidget(button)
    texts = scanned(qtbot, button)
    assert texts[0].startswith("No LoRAs found")
    assert f"Looked in {studio_home / 'models' / 'loras'}" in texts
    assert str(studio_home / "models" / "loras") in button.menu_.actions()[0].toolTip()


def test_the_window_button_reads_the_state_s_model_folders_not_settings_json(qtbot, webui, make_window):
    from studio.core.storage.paths import settings_file

    window = make_window(Settings(model="/models/fake", model_dirs=[webui], width=64, height=64, steps=4))
    save_settings(Settings(model_dirs=[]), settings_file())  # what is on disk does not matter: the state does
    button = window.panel.findChild(QToolButton, "loraButton")
    assert button is window.panel.lora_button and button.text() == "LoRA…"
    assert "Ink Wash  ·  SD 1.x" in scanned(qtbot, button)
    next(a for a in button.menu_.actions() if a.text().startswith("mine")).trigger()
    assert "<lora:mine:1>" in window.panel.prompt.toPlainText()


def test_the_worker_hands_the_folders_it_was_told_to_the_engine(qtbot, webui):
    from studio.backends.local.worker import EngineWorker
    from studio.core.generation.request import GenerationRequest
    from studio.core.storage.paths import settings_file

    class Engine:
        def generate(self, request, cancel, job_id="", save_images=True):
            self.seen = list(self.library_dirs)

    engine = Engine()
    worker = EngineWorker(lambda emit: engine)
    worker.set_model_folders([webui])
    settings_file().parent.mkdir(parents=True, exist_ok=True)
    settings_file().write_text("{broken")  # never read by the engine thread
    worker._run_job(GenerationRequest(prompt="x <lora:Ink Wash:1>"), threading.Event(), "")
    assert engine.seen == [webui]
    worker.set_model_folders([])
    worker._run_job(GenerationRequest(prompt="x"), threading.Event(), "")
    assert engine.seen == []
