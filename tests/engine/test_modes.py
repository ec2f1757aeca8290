"""img2img and inpainting through the same loaded weights (tiny random SD 1.x on CPU)."""

import threading
import time

import numpy as np
import pytest
from PIL import Image

from studio.core.events import ImageFinished, JobFailed, JobFinished, StepProgress
from studio.core.generation.request import GenerationRequest, InpaintArea, MaskedContent, Mode
from studio.core.storage.outputs import OutputWriter, read_request
from studio.engine.engine import Engine


@pytest.fixture
def engine(tmp_path, tiny_model_dir):
    events = []
    engine = Engine(OutputWriter(tmp_path / "out"), events.append)
    engine.events = events
    engine.load(str(tiny_model_dir))
    return engine


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 24:44] = 255
    Image.fromarray(source).save(tmp_path / "in.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return source, mask, str(tmp_path / "in.png"), str(tmp_path / "mask.png")


def _request(engine, init, mask=None, **changes):
    base = dict(prompt="a red circle", steps=4, width=64, height=64, seed=3, sampler="Euler", model=engine.model.path,
                mode=Mode.INPAINT if mask else Mode.IMG2IMG, init_image=init, mask=mask, strength=1.0)
    return GenerationRequest(**{**base, **changes})


def _finished(engine):
    failed = [e for e in engine.events if isinstance(e, JobFailed)]
    assert not failed, failed[0].error
    return [e for e in engine.events if isinstance(e, ImageFinished)]


def test_mode_switch_shares_weights_without_reload(engine):
    model = engine.model
    started = time.perf_counter()
    views = [model.pipeline(mode) for mode in (Mode.IMG2IMG, Mode.INPAINT, Mode.TXT2IMG)]
    assert time.perf_counter() - started < 1.0  # the benchmark reports the real number
    base = {n: p.data_ptr() for n, p in model.pipe.unet.named_parameters()}
    for view in views:
        assert view.unet is model.pipe.unet and view.vae is model.pipe.vae and view.text_encoder is model.pipe.text_encoder
        assert {n: p.data_ptr() for n, p in view.unet.named_parameters()} == base


@pytest.mark.parametrize("blur", [0, 4])
def test_inpaint_keeps_pixels_outside_the_mask(engine, inputs, blur):
    source, mask, init, mask_path = inputs
    engine.generate(_request(engine, init, mask_path, mask_blur=blur), threading.Event())
    (result,) = _finished(engine)
    out = result.image
    reach = 3 * blur + 1 if blur else 0  # beyond the feathered band nothing may change
    outside = np.ones_like(mask, bool)
    outside[max(0, 20 - reach) : 40 + reach, max(0, 24 - reach) : 44 + reach] = False
    assert np.array_equal(out[outside], source[outside])
    assert not np.array_equal(out[25:35, 30:40], source[25:35, 30:40])  # the masked part changed


def test_only_masked_works_at_full_size_and_pastes_back(engine, tmp_path):
    big = np.random.default_rng(1).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    mask = np.zeros((160, 200), np.uint8)
    mask[100:120, 150:170] = 255
    Image.fromarray(big).save(tmp_path / "big.png")
    Image.fromarray(mask).save(tmp_path / "bigmask.png")
    request = _request(engine, str(tmp_path / "big.png"), str(tmp_path / "bigmask.png"), mask_blur=0,
                       inpaint_area=InpaintArea.ONLY_MASKED, inpaint_padding=8)
    engine.generate(request, threading.Event())
    (result,) = _finished(engine)
    assert result.image.shape == big.shape  # the whole picture comes back
    outside = mask == 0
    assert np.array_equal(result.image[outside], big[outside])
    assert not np.array_equal(result.image[100:120, 150:170], big[100:120, 150:170])


@pytest.mark.parametrize("content", list(MaskedContent))
def test_masked_content_modes_run(engine, inputs, content):
    _, _, init, mask_path = inputs
    engine.generate(_request(engine, init, mask_path, masked_content=content, strength=0.8), threading.Event())
    assert len(_finished(engine)) == 1


def test_img2img_strength_sets_steps_and_size(engine, inputs):
    _, _, init, _ = inputs
    engine.generate(_request(engine, init, strength=0.5, steps=10), threading.Event())
    steps = [e for e in engine.events if isinstance(e, StepProgress)]
    assert len(steps) == 5 and steps[-1].total == 5
    assert _finished(engine)[0].image.shape == (64, 64, 3)


def test_inputs_are_saved_beside_the_result_for_replay(engine, inputs):
    _, _, init, mask_path = inputs
    engine.generate(_request(engine, init, mask_path), threading.Event())
    (result,) = _finished(engine)
    recorded = read_request(result.path)
    assert recorded.init_image == str(result.path.with_name(result.path.stem + "-init.png"))
    assert recorded.mask == str(result.path.with_name(result.path.stem + "-mask.png"))
    engine.events.clear()
    engine.generate(recorded, threading.Event())  # replaying the recorded request
    (again,) = _finished(engine)
    assert np.array_equal(again.image, result.image)


def test_empty_mask_is_refused_clearly(engine, inputs, tmp_path):
    _, _, init, _ = inputs
    Image.new("L", (64, 64), 0).save(tmp_path / "empty.png")
    engine.generate(_request(engine, init, str(tmp_path / "empty.png")), threading.Event())
    (failed,) = [e for e in engine.events if isinstance(e, JobFailed)]
    assert "mask is empty" in failed.error.message
    assert not [e for e in engine.events if isinstance(e, JobFinished)]


@pytest.fixture(scope="module")
def inpainting_model_dir(tmp_path_factory):
    from studio.engine.tiny_model import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-inpainting", in_channels=9)


@pytest.mark.parametrize("mode", list(Mode))
def test_nine_channel_inpainting_model_does_every_mode(tmp_path, inputs, inpainting_model_dir, mode):
    events = []
    engine = Engine(OutputWriter(tmp_path / "out"), events.append)
    source, mask, init, mask_path = inputs
    request = GenerationRequest("a red circle", steps=3, width=64, height=64, seed=1, sampler="DDIM",
                                model=str(inpainting_model_dir), mode=mode, strength=0.9,
                                init_image=None if mode is Mode.TXT2IMG else init,
                                mask=mask_path if mode is Mode.INPAINT else None, mask_blur=0)
    engine.generate(request, threading.Event())
    assert not [e for e in events if isinstance(e, JobFailed)], [e.error for e in events if isinstance(e, JobFailed)]
    (result,) = [e for e in events if isinstance(e, ImageFinished)]
    assert engine.model.inpaint_only
    if mode is Mode.INPAINT:
        assert np.array_equal(result.image[mask == 0], source[mask == 0])
