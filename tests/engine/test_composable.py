"""AND (A1111's composable diffusion) through the engine, on tiny models (CPU).

The pixels say whether the parts are combined; a forward hook on the UNet's own forward (the
calls the composing wrapper makes) says which conditionings it ran at each step."""

import contextlib
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from studio.core.events import ImageFinished, JobFailed, StepProgress
from studio.core.generation.request import GenerationRequest, Mode
from studio.core.storage.outputs import OutputWriter
from studio.engine.engine import Engine
from studio.engine.families import ADAPTERS
from studio.engine.prompt_encoding import encode_request


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    events = []
    engine = Engine(OutputWriter(tmp_path_factory.mktemp("out")), events.append, previews=False)
    engine.events = events
    return engine


def _run(engine, model, **changes):
    """(image, note, [encoder_hidden_states of each UNet run], events)."""
    base = dict(prompt="red", negative_prompt="green", steps=3, width=64, height=64, seed=3, sampler="Euler",
                model=str(model))
    request = GenerationRequest(**{**base, **changes})
    engine.load(request.model)
    before = len(engine.events)
    with _recorded(engine.model.pipe.unet) as runs:
        engine.generate(request, threading.Event())
    events = engine.events[before:]
    assert not [e for e in events if isinstance(e, JobFailed)], events
    finished = [e for e in events if isinstance(e, ImageFinished)]
    return finished[0].image, finished[0].note, runs.runs, events


@contextlib.contextmanager
def _recorded(unet):
    """[(encoder_hidden_states, SDXL text_embeds or None) of each run of the UNet's forward]:
    the class's forward, which the composing wrapper calls once per group of rows."""
    runs = []
    cls = type(unet)
    forward = cls.forward

    def recording(self, *args, **kwargs):
        added = kwargs.get("added_cond_kwargs") or {}
        runs.append(kwargs["encoder_hidden_states"].clone())
        pooled.append(added.get("text_embeds"))
        return forward(self, *args, **kwargs)

    pooled = []
    runs_pooled = SimpleNamespace(runs=runs, pooled=pooled)
    cls.forward = recording
    try:
        yield runs_pooled
    finally:
        cls.forward = forward


def _embeds(engine, prompt, negative="green"):
    model = engine.model
    request = SimpleNamespace(prompt=prompt, negative_prompt=negative, guidance=7.0, clip_skip=1)
    return encode_request(model, model.pipe, request).arguments["prompt_embeds"]


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_a_part_of_weight_zero_changes_nothing(engine, tiny_family_dir, family):
    """Pixel-identical: the negative and the first part run in the plain prompt's own UNet call
    and are combined in the pipeline's order; a weight of 0 adds exactly nothing."""
    model = tiny_family_dir(family)
    alone, _, plain_runs, _ = _run(engine, model, prompt="red circle")
    composed, _, runs, _ = _run(engine, model, prompt="red circle AND blue square :0")
    assert np.array_equal(alone, composed)
    assert len(plain_runs) == 3 and len(runs) == 6  # [negative, first part] then [second part], each step


def test_two_parts_differ_from_each_alone(engine, tiny_family_dir):
    model = tiny_family_dir("sd1")
    red = _run(engine, model, prompt="red")[0]
    blue = _run(engine, model, prompt="blue")[0]
    both, _, runs, _ = _run(engine, model, prompt="red AND blue")
    assert not np.array_equal(both, red) and not np.array_equal(both, blue)
    weighted = _run(engine, model, prompt="red AND blue:0.5")[0]
    assert not np.array_equal(weighted, both)
    # Each step runs the negative, then both parts, each with its own conditioning.
    negative, red_embeds, blue_embeds = _embeds(engine, "green"), _embeds(engine, "red"), _embeds(engine, "blue")
    assert torch.equal(runs[0], torch.cat([negative, red_embeds])) and torch.equal(runs[1], blue_embeds)


def test_the_weights_combine_as_a1111(engine, tiny_family_dir):
    """uncond + sum w_i * cfg * (cond_i - uncond): `red AND red` is red at twice the guidance,
    `red :0.5` beside `red :0.5` is red, and a negative weight pushes away."""
    model = tiny_family_dir("sd1")
    doubled = _run(engine, model, prompt="red AND red", guidance=3.0)[0]
    assert np.abs(doubled.astype(int) - _run(engine, model, prompt="red", guidance=6.0)[0]).max() <= 1
    halves = _run(engine, model, prompt="red :0.5 AND red: 0.5", guidance=5.0)[0]
    assert np.abs(halves.astype(int) - _run(engine, model, prompt="red", guidance=5.0)[0]).max() <= 1
    away = _run(engine, model, prompt="red AND blue :-1")[0]
    assert not np.array_equal(away, _run(engine, model, prompt="red AND blue")[0])


def test_sdxl_gives_each_part_its_pooled_embedding(engine, tiny_family_dir):
    model = tiny_family_dir("sdxl")
    engine.load(str(model))
    with _recorded(engine.model.pipe.unet) as runs:
        both = _run(engine, model, prompt="red AND blue")[0]
    assert not np.array_equal(both, _run(engine, model, prompt="red")[0])
    first, second = runs.pooled[0], runs.pooled[1]
    assert first.shape[0] == 2 and second.shape[0] == 1
    assert not torch.equal(first[1], second[0])  # red's pooled, then blue's


def test_each_part_keeps_its_own_schedule(engine, tiny_family_dir):
    """[red:blue:1] AND square: the first part switches after call 1, the second never does."""
    model = tiny_family_dir("sd1")
    _, _, runs, _ = _run(engine, model, prompt="[red:blue:1] AND square")
    red, blue, square = (_embeds(engine, text) for text in ("red", "blue", "square"))
    firsts = [run[1:] for run in runs[0::2]]
    assert [torch.equal(e, red) for e in firsts] == [True, True, False]
    assert torch.equal(firsts[2], blue)
    assert all(torch.equal(run, square) for run in runs[1::2])


def test_batches_hires_and_guidance_one(engine, tiny_family_dir):
    model = tiny_family_dir("sd1")
    # Several images: each composed, each different, the second like a single job at its seed.
    _, _, _, events = _run(engine, model, prompt="red AND blue", batch_count=2)
    images = [e.image for e in events if isinstance(e, ImageFinished)]
    assert len(images) == 2 and not np.array_equal(*images)
    assert np.array_equal(images[1], _run(engine, model, prompt="red AND blue", seed=4)[0])
    # Hires fix: the second pass composes too (two UNet runs per step in both passes).
    image, _, runs, events = _run(engine, model, prompt="red AND blue", hires_scale=1.5, hires_steps=2,
                                  hires_denoise=0.5, hires_upscaler="Latent")
    assert image.shape[:2] == (96, 96) and len(runs) == 2 * (3 + 2)
    assert [e.step for e in events if isinstance(e, StepProgress)] == [1, 2, 3, 4, 5]
    # Guidance 1 (no CFG in the pipeline): A1111 still combines uncond + sum w_i (cond_i - uncond).
    single = _run(engine, model, prompt="red", guidance=1.0)[0]
    zero, _, runs, _ = _run(engine, model, prompt="red AND blue :0", guidance=1.0)
    assert np.abs(zero.astype(int) - single).max() <= 1
    assert not np.array_equal(_run(engine, model, prompt="red AND blue", guidance=1.0)[0], single)


def test_img2img_and_inpaint_compose(engine, tiny_family_dir, tmp_path):
    init, mask = tmp_path / "init.png", tmp_path / "mask.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(init)
    Image.new("L", (64, 64), 255).save(mask)
    for model, mode, extra in ((tiny_family_dir("sd1"), Mode.IMG2IMG, {}),
                               (tiny_family_dir("sd1", in_channels=9), Mode.INPAINT, {"mask": str(mask)})):
        common = dict(mode=mode, init_image=str(init), strength=0.75, **extra)
        alone = _run(engine, model, prompt="red", **common)[0]
        assert np.array_equal(_run(engine, model, prompt="red AND blue:0", **common)[0], alone)
        assert not np.array_equal(_run(engine, model, prompt="red AND blue", **common)[0], alone)


def test_cancel_restores_the_denoiser(engine, tiny_family_dir):
    model = tiny_family_dir("sd1")
    engine.load(str(model))
    unet = engine.model.pipe.unet
    cancel = threading.Event()

    def stop(event):
        if isinstance(event, StepProgress):
            cancel.set()

    engine.emit = stop
    try:
        engine.generate(GenerationRequest(prompt="red AND blue", steps=3, width=64, height=64, model=str(model)),
                        cancel)
    finally:
        engine.emit = engine.events.append
    assert "forward" not in vars(unet)  # the class's forward again
    plain = _run(engine, model, prompt="red")
    assert len(plain[2]) == 3


def test_a_family_without_composition_joins_the_parts(engine, tiny_family_dir, monkeypatch):
    model = tiny_family_dir("sd1")
    monkeypatch.setattr(type(ADAPTERS[next(iter(ADAPTERS))]), "composable_prompts", False)
    image, note, runs, _ = _run(engine, model, prompt="red AND blue :0.8")
    assert "AND" in note and "one prompt" in note
    assert np.array_equal(image, _run(engine, model, prompt="red, blue")[0])
    assert len(runs) == 3


def test_parts_of_different_lengths_stack_as_in_a1111(engine, tiny_family_dir):
    """A1111's stack_conds: a shorter part repeats its last vector up to the longest part; then
    prompt and negative are padded with empty chunks to one length, as plain prompts are."""
    model = tiny_family_dir("sd1")
    long = " ".join(["red circle"] * 50)  # 100 tokens: two chunks
    _, _, runs, _ = _run(engine, model, prompt=f"{long} AND blue", steps=1)
    first, second = runs
    tokens = first.shape[1]
    blue = _embeds(engine, "blue", negative="")  # one chunk
    assert second.shape[1] == tokens == 2 * blue.shape[1]
    assert torch.equal(second[:, : blue.shape[1]], blue[0:1])
    assert torch.equal(second[:, blue.shape[1]:], blue[:, -1:].expand(1, tokens - blue.shape[1], -1))
    # A negative longer than every part: each part gets empty chunks after its own.
    _, _, runs, _ = _run(engine, model, prompt="red AND blue", negative_prompt=long + " " + long, steps=1)
    first, second = runs
    empty = _embeds(engine, "", negative="")
    assert first.shape[1] == 3 * empty.shape[1]  # the negative's three chunks (200 tokens)
    assert torch.equal(second[:, : empty.shape[1]], blue) and torch.equal(second[:, -empty.shape[1]:], empty)


def test_sdxl_with_an_empty_negative(engine, tiny_family_dir):
    """SDXL's empty negative is zeros (force_zeros_for_empty_prompt), pooled included."""
    model = tiny_family_dir("sdxl")
    engine.load(str(model))
    with _recorded(engine.model.pipe.unet) as runs:
        _run(engine, model, prompt="red AND blue", negative_prompt="", steps=1)
    assert engine.model.pipe.config.force_zeros_for_empty_prompt  # the tiny SDXL says so, as SDXL base does
    assert not runs.runs[0][0].any() and not runs.pooled[0][0].any()
    assert runs.runs[0][1].any() and runs.pooled[0][1].any()
    alone = _run(engine, model, prompt="red", negative_prompt="")[0]
    assert np.array_equal(_run(engine, model, prompt="red AND blue :0", negative_prompt="")[0], alone)
