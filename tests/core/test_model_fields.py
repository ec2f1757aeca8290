"""A request for a model never carries a field the model ignores (Flux [dev]: no negative prompt,
no clip skip; [schnell]: no guidance either); the SD families' requests are unchanged."""

from studio.core.generation.model_fields import NO_GUIDANCE, fit_request, model_panel_facts
from studio.core.generation.request import GenerationRequest
from studio.core.models.family import PanelFacts

DEV = PanelFacts(guidance_label="Distilled CFG", negative_prompt=False, clip_skip=False, token_limit=512,
                 token_counter="t5")
SCHNELL = PanelFacts(guidance_label="Distilled CFG", guidance=False, negative_prompt=False, clip_skip=False,
                     token_limit=256, token_counter="t5")
REQUEST = GenerationRequest("a fox", negative_prompt="blurry", clip_skip=2, guidance=3.5)


def test_sd_requests_are_unchanged():
    assert fit_request(REQUEST, PanelFacts()) is REQUEST


def test_distilled_model_request_drops_what_it_does_not_read():
    fitted = fit_request(REQUEST, DEV)
    assert (fitted.negative_prompt, fitted.clip_skip, fitted.guidance) == ("", 1, 3.5)
    assert fitted.prompt == "a fox"


def test_model_without_guidance_gets_none():
    fitted = fit_request(REQUEST, SCHNELL)
    assert (fitted.negative_prompt, fitted.clip_skip, fitted.guidance) == ("", 1, NO_GUIDANCE)


def test_facts_of_a_missing_or_unreadable_model_are_the_sd_ones(tmp_path):
    assert model_panel_facts("") == PanelFacts()
    assert model_panel_facts(tmp_path / "gone.safetensors") == PanelFacts()
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model")
    assert model_panel_facts(junk) == PanelFacts()
