"""A1111's variation seeds and "resize seed from" (tiny random SD 1.x on CPU)."""

import math
import threading

import numpy as np
import pytest
import torch

from studio.core.events import ImageFinished
from studio.core.generation.request import GenerationRequest
from studio.core.storage.outputs import OutputWriter
from studio.engine.engine import Engine
from studio.engine.noise import (
    draw,
    image_request,
    initial_noise,
    latent_shape,
    paste_centred,
    slerp,
)


@pytest.fixture
def engine(tmp_path, tiny_model_dir):
    events = []
    engine = Engine(OutputWriter(tmp_path / "out"), events.append, previews=False)
    engine.events = events
    engine.load(str(tiny_model_dir))
    return engine


def _request(engine, **changes):
    base = {"prompt": "a red circle", "steps": 3, "width": 64, "height": 64, "seed": 7, "sampler": "Euler",
            "model": engine.model.path}
    return GenerationRequest(**{**base, **changes})


def _pixels(engine, **changes):
    engine.events.clear()
    engine.generate(_request(engine, **changes), threading.Event())
    finished = [e for e in engine.events if isinstance(e, ImageFinished)]
    assert finished, engine.events
    return [f.image for f in finished]


def test_strength_zero_is_todays_image(engine):
    plain = _pixels(engine)[0]
    assert np.array_equal(_pixels(engine, variation_seed=1234, variation_strength=0.0)[0], plain)
    assert initial_noise(engine.model.pipe, _request(engine, variation_seed=1234)) is None  # the pipeline draws it


@pytest.mark.parametrize("sampler", ["Euler", "Euler a"])
def test_noise_drawn_here_is_the_pipelines_own(engine, sampler, monkeypatch):
    """Forced through this module's drawing path, the seed's noise must be bit-for-bit what the
    pipeline draws; with an ancestral sampler the generator must also have advanced past it
    exactly as in the pipeline, or the later steps' noise would differ."""
    import studio.engine.noise as noise_module

    plain = _pixels(engine, sampler=sampler)[0]
    monkeypatch.setattr(noise_module, "uses_noise_extras", lambda request: True)
    assert initial_noise(engine.model.pipe, _request(engine)) is not None
    assert np.array_equal(_pixels(engine, sampler=sampler)[0], plain)
    monkeypatch.undo()
    # The same seed as variation seed, or a resize to the picture's own size, is no change at all.
    same = _pixels(engine, sampler=sampler, variation_seed=7, variation_strength=0.5, seed_resize_width=64, seed_resize_height=64)
    assert np.array_equal(same[0], plain)


def test_strength_one_is_the_variation_seeds_image(engine):
    other = _pixels(engine, seed=99)[0]
    assert np.array_equal(_pixels(engine, variation_seed=99, variation_strength=1.0)[0], other)
    between = _pixels(engine, variation_seed=99, variation_strength=0.3)[0]
    assert not np.array_equal(between, other) and not np.array_equal(between, _pixels(engine)[0])


def test_slerp_matches_a_hand_computation():
    gen = torch.Generator().manual_seed(0)
    low, high = torch.randn(2, 5, 3, generator=gen), torch.randn(2, 5, 3, generator=gen)
    t = 0.3
    mixed = slerp(t, low, high)
    # A1111 interpolates each (channel, column) line, along the rows.
    for c in range(2):
        for w in range(3):
            a, b = low[c, :, w].double().numpy(), high[c, :, w].double().numpy()
            theta = math.acos(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
            expected = (math.sin((1 - t) * theta) * a + math.sin(t * theta) * b) / math.sin(theta)
            assert np.allclose(mixed[c, :, w].double().numpy(), expected, atol=1e-5)
    assert torch.equal(slerp(0.0, low, high), low)
    assert torch.allclose(slerp(1.0, low, high), high)
    # Nearly parallel lines: A1111 falls back to a linear mix (here with the weights the right way round).
    assert torch.allclose(slerp(0.25, low, low * 1.0001), low * 0.75 + low * 1.0001 * 0.25)


def test_paste_centred_pads_and_crops_as_a1111():
    small = torch.arange(4.0).reshape(1, 2, 2)
    pasted = paste_centred(small, torch.zeros(1, 4, 6))
    expected = torch.zeros(1, 4, 6)
    expected[:, 1:3, 2:4] = small  # dx = (6 - 2) // 2, dy = (4 - 2) // 2
    assert torch.equal(pasted, expected)
    large = torch.arange(30.0).reshape(1, 6, 5)
    cropped = paste_centred(large, torch.full((1, 4, 4), -1.0))
    # dx = (4 - 5) // 2 = -1: A1111 copies 5 + 2 * -1 = 3 columns from column 1 and leaves the
    # last column of the target as it was; dy = (4 - 6) // 2 = -1: rows 1..4 fill all 4 rows.
    assert torch.equal(cropped[:, :, :3], large[:, 1:5, 1:4])
    assert torch.equal(cropped[:, :, 3], torch.full((1, 4), -1.0))


def test_resize_seed_puts_the_other_sizes_noise_in_the_middle(engine):
    pipe = engine.model.pipe
    request = _request(engine, width=64, height=96, seed_resize_width=64, seed_resize_height=64)
    noise = initial_noise(pipe, request)
    assert noise.shape == latent_shape(pipe, 64, 96)
    small = draw(latent_shape(pipe, 64, 64), 7, pipe.unet.dtype)
    offset = (noise.shape[2] - small.shape[2]) // 2
    assert torch.equal(noise[:, :, offset:offset + small.shape[2]], small)
    full = draw(latent_shape(pipe, 64, 96), 7, pipe.unet.dtype)
    assert torch.equal(noise[:, :, :offset], full[:, :, :offset])  # the rest is the seed's own noise at full size
    # Generating with it: a 64x96 picture that keeps the 64x64 composition in the middle.
    tall = _pixels(engine, width=64, height=96, seed_resize_width=64, seed_resize_height=64)[0]
    assert tall.shape == (96, 64, 3)


def test_a_batch_of_variations_keeps_the_seed_and_counts_the_variation_seed(engine):
    engine.events.clear()
    engine.generate(_request(engine, batch_count=3, seed=5, variation_seed=40, variation_strength=0.2), threading.Event())
    requests = [e.request for e in engine.events if isinstance(e, ImageFinished)]
    assert [(r.seed, r.variation_seed) for r in requests] == [(5, 40), (5, 41), (5, 42)]  # A1111's numbering
    plain = GenerationRequest("x", seed=5, variation_seed=40, batch_count=3)
    assert [image_request(plain, i).seed for i in range(3)] == [5, 6, 7]
