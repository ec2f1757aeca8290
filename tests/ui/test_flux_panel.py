"""The panel follows the chosen model's PanelFacts: Flux [dev] shows "Distilled CFG", hides clip
skip, and keeps a negative prompt typed earlier in view but disabled and never sent; [schnell]
hides guidance; the token counter counts T5 tokens against 512."""

import pytest
from PySide6.QtWidgets import QLabel

from studio.core.generation import model_fields
from studio.core.models.family import PanelFacts
from studio.ui.token_counter import count_t5_tokens

DEV = PanelFacts(guidance_label="Distilled CFG", negative_prompt=False, clip_skip=False, token_limit=512,
                 token_counter="t5")
SCHNELL = PanelFacts(guidance_label="Distilled CFG", guidance=False, negative_prompt=False, clip_skip=False,
                     token_limit=256, token_counter="t5")


@pytest.fixture
def flux_model(monkeypatch):
    """Every model reads as Flux [dev] (the detector is not on this branch): what the window
    learns from the model's header, off the GUI thread."""
    facts = {"value": DEV}
    monkeypatch.setattr(model_fields, "model_panel_facts", lambda model: facts["value"] if model else PanelFacts())
    return facts


def _guidance_label(panel) -> str:
    label = panel.form.labelForField(panel.guidance)
    assert isinstance(label, QLabel)
    return label.text()


def test_choosing_a_flux_model_changes_the_panel_and_the_request(qtbot, make_window, flux_model, tmp_path):
    window = make_window()
    panel, status = window.panel, window.model_status
    qtbot.waitUntil(lambda: not status.facts.busy(), timeout=5000)
    panel.negative.setPlainText("blurry, lowres")
    panel.clip_skip.setValue(2)
    assert _guidance_label(panel) == "Distilled CFG"
    assert "distilled" in panel.guidance.toolTip().lower()
    assert not panel.form.isRowVisible(panel.clip_skip)
    assert panel.form.isRowVisible(panel.guidance)
    # The negative prompt typed earlier stays in its box, in view, disabled and labelled unused.
    assert panel.negative.toPlainText() == "blurry, lowres"
    assert panel.negative.isVisible() and not panel.negative.isEnabled()
    assert "not used" in panel.negative_label.text()
    request = window.controller.request()
    assert (request.negative_prompt, request.clip_skip) == ("", 1)
    assert request.guidance == window.state.settings.guidance  # the distilled guidance is sent
    assert window.state.settings.negative_prompt == "blurry, lowres"  # kept for the next model
    assert panel.token_counter.counter_kind() == ("t5", 512)
    panel.prompt.setFocus()
    panel.prompt.setPlainText("a lighthouse on a cliff at dusk")
    qtbot.waitUntil(lambda: panel.token_counter.text().endswith("/512"), timeout=10000)
    assert panel.token_counter.text() == f"{count_t5_tokens('a lighthouse on a cliff at dusk')}/512"  # T5's count


def test_schnell_hides_guidance_and_sd_brings_everything_back(qtbot, make_window, flux_model, tmp_path):
    flux_model["value"] = SCHNELL
    window = make_window()
    panel, status = window.panel, window.model_status
    qtbot.waitUntil(lambda: not status.facts.busy(), timeout=5000)
    assert not panel.form.isRowVisible(panel.guidance)
    assert not panel.negative.isVisible()  # empty and unused: out of the way
    assert window.controller.request().guidance == 1.0
    flux_model["value"] = PanelFacts()
    status.set_model(str(tmp_path / "sd15.safetensors"))
    qtbot.waitUntil(lambda: not status.facts.busy(), timeout=5000)
    assert panel.form.isRowVisible(panel.guidance) and panel.form.isRowVisible(panel.clip_skip)
    assert _guidance_label(panel) == "Guidance"
    assert panel.negative.isVisible() and panel.negative.isEnabled()
    assert panel.negative_label.text() == "Negative prompt"
    assert panel.token_counter.counter_kind() == ("clip", 75)
