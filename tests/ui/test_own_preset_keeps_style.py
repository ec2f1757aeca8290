"""Saving and applying my own preset: an empty prompt is not offered ticked, and a preset
without prompts leaves the active style on."""

from PySide6.QtWidgets import QDialog

from studio.core.storage.presets import Preset, style_of
from studio.ui.preset_bar import SavePresetDialog


def test_an_empty_negative_is_not_ticked_and_my_preset_keeps_the_style(qtbot, make_window, monkeypatch):
    window = make_window()
    bar = window.recall.preset_bar
    bar.select("Cinematic")
    bar.apply_button.click()
    window.panel.negative.setPlainText("")
    window.panel.steps.setValue(9)
    offered = {}

    def answer(dialog):
        offered.update({key: check.isChecked() for key, check in dialog.checks.items()})
        dialog.name_edit.setText("My look")
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(SavePresetDialog, "exec", answer)
    saved = bar.save_preset()
    assert offered["negative_prompt"] is False and offered["steps"] is True
    assert "negative_prompt" not in saved.values
    bar.select("Cinematic")
    bar.apply_button.click()
    bar.select("My look")
    bar.apply_button.click()
    assert window.panel.style_chip.style.name == "Cinematic" and window.panel.steps.value() == 9


def test_a_preset_whose_prompts_are_empty_has_no_style():
    assert style_of(Preset("Old", {"negative_prompt": "", "steps": 12})) is None
    assert style_of(Preset("Blurless", {"negative_prompt": "blurry"})).negative_prompt == "blurry"
