"""Variation seeds and "resize seed from" in the hires fix's second pass (tiny random SD 1.x, CPU).

A1111's sample_hr_pass draws the second pass's noise with a new ImageRNG of the upscaled shape and
the same seeds, variation seeds, strength and "resize seed from"; these tests hold the engine to
that, by catching the noise the img2img pipeline hands its scheduler's add_noise.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler

import studio.engine.engine as engine_module
import studio.engine.noise as noise_module
from studio.core.events import ImageFinished, JobFailed
from studio.core.generation.request import GenerationRequest
from studio.core.storage.outputs import OutputWriter
from studio.engine.engine import Engine
from studio.engine.noise import draw, paste_centred, slerp, with_variations

# 64x64 -> 96x96 pixels.
FAST = {"prompt": "a red circle", "steps": 2, "width": 64, "height": 64, "seed": 11, "sampler": "Euler",
        "hires_scale": 1.5, "hires_denoise": 0.5, "hires_steps": 1, "hires_upscaler": "Latent"}


@pytest.fixture
def engine(tmp_path, tiny_model_dir):
    events: list = []
    engine = Engine(OutputWriter(tmp_path / "out"), events.append, previews=False)
    engine.events = events
    engine.load(str(tiny_model_dir))
    return engine


@pytest.fixture
def added_noise(monkeypatch):
    """The noise each pass hands the scheduler's add_noise (only the img2img hires pass does)."""
    caught: list[torch.Tensor] = []
    for cls in (EulerDiscreteScheduler, EulerAncestralDiscreteScheduler):
        original = cls.add_noise

        def spy(self, original_samples, noise, timesteps, _original=original):
            caught.append(noise.clone())
            return _original(self, original_samples, noise, timesteps)

        monkeypatch.setattr(cls, "add_noise", spy)
    return caught


def _image(engine, **changes) -> np.ndarray:
    engine.events.clear()
    engine.generate(GenerationRequest(**{**FAST, "model": engine.model.path, **changes}), threading.Event())
    failed = [e for e in engine.events if isinstance(e, JobFailed)]
    assert not failed, failed[0].error
    finished = [e for e in engine.events if isinstance(e, ImageFinished)]
    assert len(finished) == 1 and finished[0].image.shape == (96, 96, 3)
    return finished[0].image


def test_strength_zero_with_hires_is_todays_image(engine, added_noise, monkeypatch):
    plain = _image(engine)
    assert np.array_equal(_image(engine, variation_seed=1234, variation_strength=0.0), plain)
    assert torch.equal(added_noise[0], added_noise[1])  # the pipeline's own noise, untouched
    # Forced through the wrapper with nothing to mix (also with the pixel path, whose VAE
    # sampling draws from the generator first, and an ancestral sampler, whose later steps
    # draw from it after): the same image, so the generator advances exactly as before.
    for changes in ({}, {"hires_upscaler": "Lanczos", "sampler": "Euler a"}):
        monkeypatch.undo()
        expected = _image(engine, **changes)
        monkeypatch.setattr(noise_module, "uses_noise_extras", lambda request: True)
        assert np.array_equal(_image(engine, **changes), expected), changes


def test_the_hires_pass_adds_the_variation_slerp(engine, added_noise, monkeypatch):
    plain = _image(engine)
    varied = _image(engine, variation_seed=99, variation_strength=0.3)
    seed_noise, varied_noise = added_noise
    scale = engine.model.pipe.vae_scale_factor  # the tiny model's VAE downsamples by 2
    assert seed_noise.shape == (1, 4, 96 // scale, 96 // scale)  # the upscaled pass's latents
    sub = draw(seed_noise.shape, 99, seed_noise.dtype)
    expected = slerp(0.3, seed_noise[0].float(), sub[0].float()).to(seed_noise.dtype)[None]
    assert torch.equal(varied_noise, expected)
    assert not torch.equal(varied_noise, seed_noise)
    # The final picture depends on the second pass's varied noise, not only on the first pass's.
    monkeypatch.setattr(engine_module, "vary_added_noise", lambda pipe, request: None)
    first_pass_only = _image(engine, variation_seed=99, variation_strength=0.3)
    assert not np.array_equal(varied, plain)
    assert not np.array_equal(varied, first_pass_only)


def test_resize_seed_from_is_measured_against_the_upscaled_size(engine, added_noise):
    """A1111: "resize seed from" the first pass's own size changes nothing in the first pass,
    but in the second the noise of that size (mixed with the variation seed's) sits in the middle."""
    _image(engine)
    resized = _image(engine, variation_seed=99, variation_strength=0.3, seed_resize_width=64, seed_resize_height=64)
    seed_noise, resized_noise = added_noise
    scale = engine.model.pipe.vae_scale_factor
    small = (1, 4, 64 // scale, 64 // scale)
    edge = (96 - 64) // scale // 2
    mix = slerp(0.3, draw(small, 11, seed_noise.dtype)[0].float(), draw(small, 99, seed_noise.dtype)[0].float())
    expected = paste_centred(mix.to(seed_noise.dtype), seed_noise[0])[None]
    assert torch.equal(resized_noise, expected)
    assert edge > 0 and torch.equal(resized_noise[:, :, :edge], seed_noise[:, :, :edge])  # outside the middle: the seed's own
    assert not torch.equal(resized_noise[:, :, edge:-edge, edge:-edge], seed_noise[:, :, edge:-edge, edge:-edge])
    assert resized.shape == (96, 96, 3)


def test_the_same_varied_hires_request_twice_is_bit_identical(engine, added_noise):
    changes = {"variation_seed": 5, "variation_strength": 0.6, "sampler": "Euler a", "hires_upscaler": "Lanczos"}
    assert np.array_equal(_image(engine, **changes), _image(engine, **changes))
    assert len(added_noise) == 2 and torch.equal(added_noise[0], added_noise[1])


def test_with_variations_mixes_a_given_seed_noise():
    """The mix on its own (no pipeline): nothing asked is the noise itself; a variation is the
    slerp with the variation seed's noise of the same shape; a resize pastes the other size's."""
    pipe = SimpleNamespace(vae_scale_factor=8)
    base = GenerationRequest("x", seed=3, width=96, height=96)
    seed_noise = draw((1, 4, 12, 12), 3, torch.float32)
    assert with_variations(pipe, base, seed_noise) is seed_noise
    same_seed = GenerationRequest("x", seed=3, width=96, height=96, variation_seed=3, variation_strength=0.5)
    assert with_variations(pipe, same_seed, seed_noise) is seed_noise
    varied = GenerationRequest("x", seed=3, width=96, height=96, variation_seed=8, variation_strength=1.0)
    assert torch.allclose(with_variations(pipe, varied, seed_noise), draw((1, 4, 12, 12), 8, torch.float32), atol=1e-5)
    resized = GenerationRequest("x", seed=3, width=96, height=96, seed_resize_width=64, seed_resize_height=32)
    out = with_variations(pipe, resized, seed_noise)
    assert torch.equal(out[:, :, 4:8, 2:10], draw((1, 4, 4, 8), 3, torch.float32))
    assert torch.equal(out[:, :, :4], seed_noise[:, :, :4])
