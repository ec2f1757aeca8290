"""A1111's hires fix on tiny random SD 1.x and SDXL models (CPU, real diffusers code)."""

import threading
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from studio.core.errors import ErrorKind
from studio.core.events import ImageFinished, JobFailed, StepProgress
from studio.core.generation.request import GenerationRequest, Mode
from studio.core.storage.outputs import OutputWriter, read_request
from studio.engine.engine import Engine
from studio.engine.hires import INPAINT_MODEL_NOTE, hires_size, hires_steps


def _engine(tmp_path, model_dir, previews=True):
    events = []
    engine = Engine(OutputWriter(tmp_path / "out"), events.append, previews=previews)
    engine.events = events
    engine.load(str(model_dir))
    return engine


@pytest.fixture
def engine(tmp_path, tiny_model_dir):
    return _engine(tmp_path, tiny_model_dir)


def _request(engine, **changes):
    base = {"prompt": "a red circle", "steps": 3, "width": 64, "height": 64, "seed": 11, "sampler": "Euler",
            "model": engine.model.path, "hires_scale": 1.5, "hires_denoise": 0.5}
    return GenerationRequest(**{**base, **changes})


def _run(engine, request):
    engine.events.clear()
    engine.generate(request, threading.Event())
    failed = [e for e in engine.events if isinstance(e, JobFailed)]
    assert not failed, failed[0].error
    return [e for e in engine.events if isinstance(e, ImageFinished)]


def test_latent_hires_upscales_with_previews_of_both_passes_on_one_count(engine):
    request = _request(engine, hires_steps=4)
    finished = _run(engine, request)
    assert finished[0].image.shape == (96, 96, 3)
    with Image.open(finished[0].path) as image:  # .size alone reads no pixels: the file would stay open
        assert image.size == (96, 96)
    steps = [e for e in engine.events if isinstance(e, StepProgress)]
    second = hires_steps(request.validated(), engine.model)
    assert second == 4  # A1111: the hires pass runs exactly "Hires steps", whatever the denoise
    assert [s.step for s in steps] == list(range(1, 3 + second + 1))
    assert {s.total for s in steps} == {3 + second}
    assert [s.preview.shape for s in steps] == [(32, 32, 3)] * 3 + [(48, 48, 3)] * second  # latent size of each pass


def test_hires_steps_default_to_the_first_pass_steps():
    from studio.core.models.family import Family
    from studio.engine.families import adapter_for

    class Model:
        inpaint_only = False
        base_scheduler_config: ClassVar[dict] = {"num_train_timesteps": 1000}
        adapter = adapter_for(Family.SD1)

    for denoise in (0.05, 0.3, 0.7, 1.0):
        request = GenerationRequest("x", steps=20, hires_scale=2, hires_denoise=denoise)
        assert hires_steps(request, Model()) == 20
    assert hires_steps(GenerationRequest("x", steps=20, hires_scale=2, hires_steps=7), Model()) == 7
    assert hires_steps(GenerationRequest("x", steps=20), Model()) == 0  # scale 1: off
    assert hires_steps(GenerationRequest("x", steps=20, hires_scale=2, mode=Mode.IMG2IMG, init_image="a.png"), Model()) == 0
    assert hires_size(GenerationRequest("x", width=520, height=512, hires_scale=1.3)) == (680, 664)  # nearest multiple of 8


def test_pixel_upscalers_decode_resize_and_encode(engine):
    fast = {"steps": 2, "hires_steps": 1}
    latent = _run(engine, _request(engine, **fast))[0].image
    lanczos = _run(engine, _request(engine, hires_upscaler="Lanczos", **fast))[0].image
    nearest = _run(engine, _request(engine, hires_upscaler="Nearest", **fast))[0].image
    assert lanczos.shape == nearest.shape == (96, 96, 3)
    assert not np.array_equal(latent, lanczos) and not np.array_equal(lanczos, nearest)
    unknown = _run(engine, _request(engine, hires_upscaler="4x-UltraSharp", **fast))[0]
    assert np.array_equal(unknown.image, lanczos) and "Lanczos was used" in unknown.note


def test_hires_image_is_reproducible_from_its_png_alone(engine, tmp_path):
    """The saved request (studio_request) and the A1111 parameters text each make the same pixels."""
    from studio.core.formats.metadata import apply_fields, read_metadata
    from studio.core.generation.settings import Settings, request_from_settings
    from studio.core.storage.outputs import PARAMETERS_KEY

    original = _run(engine, _request(engine, sampler="Euler a", seed=123, hires_steps=2, hires_upscaler="Latent (nearest)",
                                     hires_scale=1.25, hires_denoise=0.6))[0]
    again = _run(engine, read_request(original.path))[0]
    assert np.array_equal(again.image, original.image)
    text = Image.open(original.path).text[PARAMETERS_KEY]
    assert "Hires upscale: 1.25, Hires steps: 2, Hires upscaler: Latent (nearest)" in text
    a1111_only = tmp_path / "a1111.png"
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, text)
    Image.open(original.path).save(a1111_only, pnginfo=info)
    metadata = read_metadata(a1111_only)
    assert metadata.request is None and metadata.source == "a1111"
    request = request_from_settings(apply_fields(Settings(), metadata.fields), engine.model.path)
    assert np.array_equal(_run(engine, request)[0].image, original.image)


def test_img2img_ignores_hires(engine, tmp_path):
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "in.png")
    request = _request(engine, mode=Mode.IMG2IMG, init_image=str(tmp_path / "in.png"), strength=0.6, hires_scale=2)
    assert _run(engine, request)[0].image.shape == (64, 64, 3)


def test_too_large_a_hires_size_fails_before_the_first_step(engine):
    engine.events.clear()
    engine.generate(_request(engine, width=2048, height=2048, hires_scale=2.5), threading.Event())
    failed = [e for e in engine.events if isinstance(e, JobFailed)]
    assert failed and failed[0].error.kind is ErrorKind.BAD_INPUT and "5120x5120" in failed[0].error.message
    assert not [e for e in engine.events if isinstance(e, StepProgress)]


def test_cancel_during_the_hires_pass(engine):
    from studio.core.events import JobCancelled

    cancel = threading.Event()
    engine.events.clear()
    original_emit = engine.emit

    def emit(event):
        original_emit(event)
        if isinstance(event, StepProgress) and event.step == 4:  # the first step of the second pass
            cancel.set()

    engine.emit = emit
    engine.generate(_request(engine, hires_steps=3), cancel)
    assert [e for e in engine.events if isinstance(e, JobCancelled)]
    assert max(e.step for e in engine.events if isinstance(e, StepProgress)) == 4


def test_sdxl_hires_conditions_the_second_pass_on_the_upscaled_size(tmp_path, tiny_family_dir, monkeypatch):
    from diffusers import StableDiffusionXLImg2ImgPipeline

    engine = _engine(tmp_path, tiny_family_dir("sdxl"), previews=False)
    seen = []
    original_call = StableDiffusionXLImg2ImgPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append((kwargs["original_size"], kwargs["target_size"], kwargs["image"].shape))
        return original_call(self, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionXLImg2ImgPipeline, "__call__", spy)
    finished = _run(engine, _request(engine, hires_scale=2.0))
    assert finished[0].image.shape == (128, 128, 3)
    assert seen[0][:2] == ((128, 128), (128, 128))
    assert tuple(seen[0][2][-2:]) == (128 // engine.model.pipe.vae_scale_factor,) * 2  # latents went in, upscaled


def test_inpainting_models_skip_hires_with_a_note(tmp_path, tiny_family_dir):
    engine = _engine(tmp_path, tiny_family_dir("sd1", in_channels=9), previews=False)
    finished = _run(engine, _request(engine))
    assert finished[0].image.shape == (64, 64, 3)
    assert INPAINT_MODEL_NOTE in finished[0].note
