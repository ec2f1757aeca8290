"""Style presets (issue 13 item 11): a preset's prompts wrap the artist's prompt at generation
time, shown as a removable chip, never pasted into the prompt box, never stacked."""

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolButton, QWidget

from studio.core.storage.outputs import read_request
from studio.core.storage.presets import Preset


def _apply(window, name):
    bar = window.recall.preset_bar
    bar.select(name)
    bar.apply_button.click()


def test_applying_a_style_twice_never_stacks_and_the_image_holds_the_wrapped_prompt(qtbot, make_window, script):
    window = make_window()
    window.panel.prompt.setPlainText("a red circle")
    _apply(window, "Cinematic")
    _apply(window, "Cinematic")
    assert window.panel.prompt.toPlainText() == "a red circle"  # the box keeps the artist's words
    chip = window.findChild(QWidget, "styleChip")
    assert chip.isVisible() and "Cinematic" in chip.label.text()
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    request = script.requests[-1]
    assert request.prompt.count("cinematic still of") == 1
    assert request.prompt.startswith("cinematic still of a red circle, dramatic lighting")
    assert "cartoon" in request.negative_prompt
    assert read_request(window.job_view.last_image_path).prompt == request.prompt  # the final prompt, as A1111 writes it
    # Generating again from the same box does not wrap twice either.
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    assert script.requests[-1].prompt == request.prompt


def test_a_prompt_restored_from_a_styled_image_is_not_wrapped_again(qtbot, make_window, script):
    window = make_window()
    _apply(window, "Cinematic")
    window.panel.prompt.setPlainText("a cat")
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    styled = script.requests[-1].prompt
    window.panel.prompt.setPlainText(styled)  # as a drop or history restore fills it
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    assert script.requests[-1].prompt == styled


def test_empty_negative_of_the_next_style_applies_and_the_chip_removes_the_style(qtbot, make_window, script):
    window = make_window()
    store = window.recall.service.presets
    store.save_preset(Preset("Watercolor", {"prompt": "{prompt}, watercolor", "negative_prompt": ""}))
    window.recall.preset_bar.refresh()
    window.panel.prompt.setPlainText("a boat")
    window.panel.negative.setPlainText("blurry")
    _apply(window, "Cinematic")
    _apply(window, "Watercolor")
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    request = script.requests[-1]
    assert request.prompt == "a boat, watercolor"
    assert request.negative_prompt == "blurry"  # Cinematic's negative does not linger
    _apply(window, "Fast draft")  # a preset without prompts keeps the style
    assert window.panel.style_chip.style.name == "Watercolor"
    remove = window.findChild(QToolButton, "styleChipRemove")
    qtbot.mouseClick(remove, Qt.MouseButton.LeftButton)
    assert not window.panel.style_chip.isVisible()
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    assert script.requests[-1].prompt == "a boat"
