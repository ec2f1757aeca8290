"""Prompt editing [from:to:when] and alternation [a|b] through the engine (tiny models, CPU).

A forward pre-hook on the UNet records the text conditioning of every denoiser call; each is
compared with the plain encoding of the text A1111 would use at that call."""

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from studio.core.events import ImageFinished, JobFailed
from studio.core.generation.request import GenerationRequest, Mode
from studio.core.storage.outputs import OutputWriter
from studio.engine.engine import Engine
from studio.engine.prompt_encoding import encode_request


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    events = []
    engine = Engine(OutputWriter(tmp_path_factory.mktemp("out")), events.append, previews=False)
    engine.events = events
    return engine


def _run(engine, model, **changes):
    """(image, [(encoder_hidden_states, SDXL text_embeds or None) per UNet call])."""
    base = dict(prompt="red", negative_prompt="green", steps=3, width=64, height=64, seed=3, sampler="Euler",
                model=str(model))
    request = GenerationRequest(**{**base, **changes})
    engine.load(request.model)
    calls = []

    def record(module, args, kwargs):
        added = kwargs.get("added_cond_kwargs") or {}
        calls.append((kwargs["encoder_hidden_states"].clone(), added.get("text_embeds")))

    handle = engine.model.pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    before = len(engine.events)
    try:
        engine.generate(request, threading.Event())
    finally:
        handle.remove()
    events = engine.events[before:]
    assert not [e for e in events if isinstance(e, JobFailed)], events
    (finished,) = [e for e in events if isinstance(e, ImageFinished)]
    return finished.image, calls


def _plain(engine, prompt, negative="green"):
    """(cat([negative, prompt]), cat of the pooled or None): the tensors the UNet gets for plain texts."""
    model = engine.model
    request = SimpleNamespace(prompt=prompt, negative_prompt=negative, guidance=7.0, clip_skip=1)
    arguments = encode_request(model, model.pipe, request).arguments
    embeds = torch.cat([arguments["negative_prompt_embeds"], arguments["prompt_embeds"]])
    pooled = None
    if "pooled_prompt_embeds" in arguments:
        pooled = torch.cat([arguments["negative_pooled_prompt_embeds"], arguments["pooled_prompt_embeds"]])
    return embeds, pooled


def _texts(engine, calls, candidates, negative="green"):
    """Which candidate prompt each call's conditioning is (None if none matches)."""
    encoded = {text: _plain(engine, text, negative) for text in candidates}
    named = []
    for embeds, pooled in calls:
        match = None
        for text, (expected, expected_pooled) in encoded.items():
            if embeds.shape == expected.shape and torch.allclose(embeds, expected, atol=1e-6, rtol=0):
                if expected_pooled is None or torch.allclose(pooled, expected_pooled, atol=1e-6, rtol=0):
                    match = text
        named.append(match)
    return named


def test_an_edit_switches_after_its_step_as_in_a1111(engine, tiny_family_dir):
    # 3 steps, [red:blue:1]: A1111's schedule [[1, red], [3, blue]]; calls 0 and 1 read "red".
    _, calls = _run(engine, tiny_family_dir("sd1"), prompt="[red:blue:1]")
    assert _texts(engine, calls, ["red", "blue"]) == ["red", "red", "blue"]


def test_alternation_and_a_fraction(engine, tiny_family_dir):
    model = tiny_family_dir("sd1")
    _, calls = _run(engine, model, prompt="[red|blue]", steps=4)
    assert _texts(engine, calls, ["red", "blue"]) == ["red", "red", "blue", "red"]
    _, calls = _run(engine, model, prompt="[(red:1.1):blue:0.5] circle", steps=4)  # int(0.5 * 4) = 2
    assert _texts(engine, calls, ["(red:1.1) circle", "blue circle"]) == ["(red:1.1) circle"] * 3 + ["blue circle"]


def test_the_negative_prompt_edits_too(engine, tiny_family_dir):
    _, calls = _run(engine, tiny_family_dir("sd1"), prompt="red", negative_prompt="[green:square:1]")
    firsts = _texts(engine, calls[:2], ["red"], negative="green")
    last = _texts(engine, calls[2:], ["red"], negative="square")
    assert firsts == ["red", "red"] and last == ["red"]


def test_edits_at_the_ends_are_plain_prompts(engine, tiny_family_dir):
    model = tiny_family_dir("sd1")
    red, _ = _run(engine, model, prompt="red")
    blue, _ = _run(engine, model, prompt="blue")
    assert not np.array_equal(red, blue)
    assert np.array_equal(_run(engine, model, prompt="[red:blue:0]")[0], blue)  # edited before step 0
    assert np.array_equal(_run(engine, model, prompt="[red:blue:9]")[0], red)  # never reached
    assert np.array_equal(_run(engine, model, prompt="[red:blue:0.1] <lora:absent:0>")[0], blue)


def test_a_plain_prompt_is_the_same_tensor_at_every_step(engine, tiny_family_dir):
    _, calls = _run(engine, tiny_family_dir("sd1"), prompt="a (red:1.2) [circle] BREAK blue, \\[x\\]")
    expected, _ = _plain(engine, "a (red:1.2) [circle] BREAK blue, \\[x\\]")
    assert all(torch.equal(embeds, expected) for embeds, _ in calls)


def test_sdxl_switches_the_pooled_embedding_too(engine, tiny_family_dir):
    _, calls = _run(engine, tiny_family_dir("sdxl"), prompt="[red:blue:1]")
    assert _texts(engine, calls, ["red", "blue"]) == ["red", "red", "blue"]
    assert not torch.equal(calls[0][1], calls[2][1])  # text_embeds (pooled) changed with the text


def test_img2img_schedules_against_the_steps_asked_for(engine, tiny_family_dir, tmp_path):
    """A1111 builds img2img schedules with p.steps, not the fewer steps strength runs: at 4 steps
    and strength 0.75 three calls run, and [red:blue:0.25] switches after call 1 (int(0.25 * 4))."""
    init = tmp_path / "init.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(init)
    _, calls = _run(engine, tiny_family_dir("sd1"), prompt="[red:blue:0.25]", steps=4, mode=Mode.IMG2IMG,
                    init_image=str(init), strength=0.75)
    assert _texts(engine, calls, ["red", "blue"]) == ["red", "red", "blue"]


def test_a_second_order_sampler_counts_its_calls(engine, tiny_family_dir):
    """Heun: A1111 schedules against 2 x steps; diffusers' Heun makes 2 x 2 - 1 calls for 2 steps."""
    _, calls = _run(engine, tiny_family_dir("sd1"), prompt="[red:blue:0.25]", steps=2, sampler="Heun")
    assert _texts(engine, calls, ["red", "blue"]) == ["red", "red", "blue"]


def test_the_hires_pass_counts_on_from_the_first(engine, tiny_family_dir):
    """3 + 3 steps, [red:blue:4]: the first pass reads "red" throughout (4 > 3); the hires pass
    schedules 4 - 3 = 1: [[1, red], [3, blue]]."""
    _, calls = _run(engine, tiny_family_dir("sd1"), prompt="[red:blue:4]", hires_scale=1.5, hires_steps=3,
                    hires_denoise=0.5, hires_upscaler="Latent")
    assert _texts(engine, calls, ["red", "blue"]) == ["red"] * 5 + ["blue"]


def test_an_edit_at_the_first_pass_end_is_the_hires_pass_prompt(engine, tiny_family_dir):
    """[red:blue:3] at 3 steps: "red" for the whole first pass, "blue" for the whole hires pass
    (A1111's idiom for a prompt of the hires pass alone). Each pass's schedule has one entry, so
    a cache keyed on "does this pass switch" gave the hires pass the first pass's "red"."""
    _, calls = _run(engine, tiny_family_dir("sd1"), prompt="[red:blue:3]", hires_scale=1.5, hires_steps=3,
                    hires_denoise=0.5, hires_upscaler="Latent")
    assert _texts(engine, calls, ["red", "blue"]) == ["red"] * 3 + ["blue"] * 3
