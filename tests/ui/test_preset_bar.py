import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QPushButton

from studio.core.generation.settings import Settings
from studio.core.storage.presets import PresetStore, builtin_presets_dir
from studio.ui.preset_bar import PresetBar


@pytest.fixture
def store(tmp_path):
    s = PresetStore(builtin_presets_dir(), tmp_path / "user")
    s.load()
    return s


@pytest.fixture
def bar(qtbot, store):
    current = {"settings": Settings(prompt="a cat", steps=17, guidance=4.5, sampler="Heun")}
    widget = PresetBar(store, current_settings=lambda: current["settings"])
    widget.current = current
    qtbot.addWidget(widget)
    return widget


def test_widgets_are_named_for_tests_and_screen_readers(bar):
    combo = bar.findChild(QComboBox, "presetCombo")
    save = bar.findChild(QPushButton, "savePresetButton")
    assert combo.accessibleName() == "Preset" and save.accessibleName() == "Save preset"
    assert combo.count() == len(bar.store.list()) >= 4


def test_apply_emits_the_selected_preset(qtbot, bar):
    bar.select("Fast draft")
    with qtbot.waitSignal(bar.applyRequested) as blocker:
        qtbot.mouseClick(bar.apply_button, Qt.MouseButton.LeftButton)
    preset = blocker.args[0]
    assert preset.name == "Fast draft"
    applied = bar.store.apply(preset, Settings(prompt="x", steps=40))
    assert applied.steps == preset.values["steps"] and applied.prompt == "x"


def test_builtins_cannot_be_renamed_or_deleted_from_the_menu(bar):
    bar.select("Photographic")
    assert not bar.rename_action.isEnabled() and not bar.delete_action.isEnabled()
    assert bar.export_action.isEnabled()


def test_save_with_name_selects_it_and_persists(qtbot, bar, tmp_path):
    with qtbot.waitSignal(bar.presetsChanged):
        preset = bar.save_preset("My look", ["steps", "guidance", "sampler"])
    assert preset.values == {"steps": 17, "guidance": 4.5, "sampler": "Heun"}
    assert bar.current_name() == "My look"
    assert bar.rename_action.isEnabled() and bar.delete_action.isEnabled()
    assert json.loads((tmp_path / "user" / "My look.json").read_text())["steps"] == 17


def test_bad_name_is_reported_not_raised(qtbot, bar):
    with qtbot.waitSignal(bar.message) as blocker:
        assert bar.save_preset("   ", ["steps"]) is None
    assert "could not be saved" in blocker.args[0]


def test_rename_and_delete(qtbot, bar):
    bar.save_preset("Old", ["steps"])
    assert bar.rename_preset("New").name == "New"
    assert bar.current_name() == "New"
    assert bar.combo.findData("Old") == -1
    assert bar.delete_preset(confirm=False)
    assert bar.combo.findData("New") == -1 and bar.store.get("New") is None


def test_import_and_export(qtbot, bar, tmp_path):
    styles = tmp_path / "styles.csv"
    styles.write_text("name,prompt,negative_prompt\nNoir,\"{prompt}, film noir\",color\n")
    imported = bar.import_presets(styles)
    assert [p.name for p in imported] == ["Noir"] and bar.current_name() == "Noir"
    out = bar.export_preset(tmp_path / "noir.json")
    assert json.loads(out.read_text())["prompt"] == "{prompt}, film noir"
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with qtbot.waitSignal(bar.message) as blocker:
        assert bar.import_presets(bad) == []
    assert "Nothing was imported" in blocker.args[0]


def test_reload_reports_broken_user_file(qtbot, bar, tmp_path):
    (tmp_path / "user").mkdir(exist_ok=True)
    (tmp_path / "user" / "broken.json").write_text("{nope")
    with qtbot.waitSignal(bar.message) as blocker:
        warnings = bar.reload()
    assert len(warnings) == 1 and "broken.json" in blocker.args[0]
    assert bar.combo.count() == len(bar.store.list())


def test_no_preset_looks_chosen_before_the_artist_picks_one(bar):
    assert bar.combo.currentIndex() == -1 and bar.combo.placeholderText() == "Presets…"
    assert bar.current_preset() is None and not bar.apply_button.isEnabled()
    bar.select("Cinematic")
    assert bar.apply_button.isEnabled() and bar.combo.currentText() == "Cinematic (built-in)"
    bar.refresh()
    assert bar.current_name() == "Cinematic"  # a refresh keeps the artist's pick
