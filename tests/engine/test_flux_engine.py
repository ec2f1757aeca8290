"""Flux through the real Engine: every file layout artists have, parts found in a ComfyUI-like
folder tree, dev / schnell / Fill, the three modes on one loaded model, previews each step,
reproducible seeds and cancel within a step. Tiny random models (tests/flux_files.py)."""

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from studio.core.errors import ErrorKind
from studio.core.events import ImageFinished, JobCancelled, JobFailed, ModelLoaded, ModelLoading, StepProgress
from studio.core.generation.request import GenerationRequest, Mode
from studio.core.models.model_detect import inspect_model
from studio.engine.engine import Engine
from tests import flux_files as ff

SIZE = 64


class _Writer:
    def save(self, image, request):
        return None, request


def _engine(library=()):
    events = []
    engine = Engine(_Writer(), events.append)
    engine.library_dirs = [str(p) for p in library]
    return engine, events


def _request(model, **extra):
    values = dict(prompt="a red circle", steps=3, width=SIZE, height=SIZE, guidance=3.5, seed=7, model=str(model),
                  sampler="Euler")
    values.update(extra)
    return GenerationRequest(**values)


def _run(engine, events, request, cancel=None):
    start = len(events)
    engine.generate(request, cancel or threading.Event(), save_images=False)
    new = events[start:]
    failed = [e for e in new if isinstance(e, JobFailed)]
    assert not failed, failed[0].error
    (image,) = [e for e in new if isinstance(e, ImageFinished)]
    return image, new


@pytest.fixture(scope="module")
def dev():
    return ff.build_tiny_flux("dev")


@pytest.fixture(scope="module")
def aio(dev, tmp_path_factory):
    folder = tmp_path_factory.mktemp("aio")
    return ff.write(ff.stored(ff.all_in_one_tensors(dev), torch.bfloat16), folder / "flux1-dev-aio.safetensors")


def _comfy_tree(model, root: Path, dtype=torch.bfloat16) -> Path:
    """ComfyUI's models/ folders: the transformer in diffusion_models, text encoders, VAE."""
    parts = ff.write_flux_parts(model, root / "scratch", dtype)
    models = root / "models"
    for folder, part in (("diffusion_models", parts.transformer), ("text_encoders", parts.clip_l),
                         ("text_encoders", parts.t5), ("vae", parts.vae)):
        (models / folder).mkdir(parents=True, exist_ok=True)
        part.rename(models / folder / ("model.safetensors" if folder == "diffusion_models" else part.name))
    return models / "diffusion_models" / "model.safetensors"


def test_all_in_one_file_makes_an_image_with_a_preview_every_step(aio):
    info = inspect_model(aio)
    assert (info.family.value, info.variant, info.has_vae, info.label) == ("flux", "dev", True, "Flux.1 [dev]")
    engine, events = _engine()
    image, new = _run(engine, events, _request(aio))
    assert image.image.shape == (SIZE, SIZE, 3) and image.image.std() > 0
    steps = [e for e in new if isinstance(e, StepProgress)]
    assert [s.step for s in steps] == [1, 2, 3]
    assert all(s.preview is not None and s.preview.shape == (SIZE // 8, SIZE // 8, 3) for s in steps)
    assert image.note == ""  # Euler is Flux's own sampler: nothing to say


def test_the_same_seed_gives_the_same_pixels_and_another_seed_others(aio):
    engine, events = _engine()
    first, _ = _run(engine, events, _request(aio))
    again, _ = _run(engine, events, _request(aio))
    other, _ = _run(engine, events, _request(aio, seed=8))
    assert np.array_equal(first.image, again.image)
    assert not np.array_equal(first.image, other.image)


def test_unweighted_prompt_gives_diffusers_own_image(aio, dev):
    """The studio's prompt encoding of a plain prompt is diffusers' encode_prompt, bit for bit."""
    from studio.engine.flux_loading import load_flux_pipeline

    engine, events = _engine()
    image, _ = _run(engine, events, _request(aio))
    pipe = load_flux_pipeline(aio, dtype=torch.float32)
    want = pipe(prompt="a red circle", height=SIZE, width=SIZE, num_inference_steps=3, guidance_scale=3.5,
                generator=torch.Generator().manual_seed(7), output_type="np").images[0]
    assert np.array_equal(image.image, (want * 255).round().clip(0, 255).astype(np.uint8))


def test_emphasis_and_prompt_editing_change_the_picture(aio):
    engine, events = _engine()
    plain, _ = _run(engine, events, _request(aio))
    weighted, _ = _run(engine, events, _request(aio, prompt="a (red:1.5) circle"))
    edited, _ = _run(engine, events, _request(aio, prompt="a [red:blue:1] circle"))
    assert not np.array_equal(plain.image, weighted.image)
    blue, _ = _run(engine, events, _request(aio, prompt="a blue circle"))
    assert not np.array_equal(plain.image, edited.image) and not np.array_equal(blue.image, edited.image)


def test_img2img_and_inpaint_run_on_the_same_loaded_weights(aio, tmp_path):
    engine, events = _engine()
    _run(engine, events, _request(aio))
    transformer = engine.model.pipe.transformer
    init = tmp_path / "init.png"
    Image.fromarray(np.full((SIZE, SIZE, 3), 200, np.uint8)).save(init)
    mask = tmp_path / "mask.png"
    pixels = np.zeros((SIZE, SIZE), np.uint8)
    pixels[16:48, 16:48] = 255
    Image.fromarray(pixels).save(mask)
    img2img, _ = _run(engine, events, _request(aio, mode=Mode.IMG2IMG, init_image=str(init), strength=0.6))
    inpaint, _ = _run(engine, events, _request(aio, mode=Mode.INPAINT, init_image=str(init), mask=str(mask), mask_blur=0))
    assert sum(isinstance(e, ModelLoaded) for e in events) == 1  # one load for all three modes
    assert engine.model.pipeline(Mode.IMG2IMG).transformer is transformer
    assert engine.model.pipeline(Mode.INPAINT).transformer is transformer
    assert img2img.image.shape == inpaint.image.shape == (SIZE, SIZE, 3)
    assert (inpaint.image[:8, :8] == 200).all()  # outside the mask: the input, composited back


def test_split_parts_are_found_in_comfyui_folders_and_named(dev, tmp_path):
    transformer = _comfy_tree(dev, tmp_path)
    engine, events = _engine()
    image, new = _run(engine, events, _request(transformer))
    (loading,) = [e for e in new if isinstance(e, ModelLoading)]
    for name in ("clip_l.safetensors", "t5xxl_fp16.safetensors", "ae.safetensors"):
        assert name in loading.note
    assert image.image.std() > 0


def test_a_missing_part_names_the_file_and_where_it_goes(dev, tmp_path):
    transformer = _comfy_tree(dev, tmp_path)
    (tmp_path / "models" / "text_encoders" / "t5xxl_fp16.safetensors").unlink()
    engine, events = _engine()
    engine.generate(_request(transformer), threading.Event(), save_images=False)
    (failed,) = [e for e in events if isinstance(e, JobFailed)]
    assert failed.error.kind is ErrorKind.BAD_MODEL
    assert "T5-XXL text encoder" in failed.error.message and "t5xxl_fp16.safetensors" in failed.error.message
    assert "models/text_encoders" in failed.error.hint


def test_chosen_parts_win_over_found_ones(dev, tmp_path):
    transformer = _comfy_tree(dev, tmp_path)
    other = ff.build_tiny_flux("dev", seed=1)
    chosen = ff.write_flux_parts(other, tmp_path / "elsewhere")
    engine, events = _engine()
    found, _ = _run(engine, events, _request(transformer))
    picked, new = _run(engine, events, _request(transformer, text_encoders=f"{chosen.clip_l}\n{chosen.t5}"))
    assert not np.array_equal(found.image, picked.image)
    (loading,) = [e for e in new if isinstance(e, ModelLoading)]
    assert "t5xxl" not in loading.note  # nothing was looked up for the text encoders; the VAE was
    assert "ae.safetensors" in loading.note


def test_schnell_and_fill(tmp_path):
    schnell = ff.build_tiny_flux("schnell")
    path = ff.write(ff.stored(ff.all_in_one_tensors(schnell), torch.bfloat16), tmp_path / "schnell.safetensors")
    info = inspect_model(path)
    assert info.variant == "schnell" and not info.panel.guidance and info.panel.token_limit == 256
    engine, events = _engine()
    image, _ = _run(engine, events, _request(path, steps=2))
    assert image.image.std() > 0
    fill = ff.build_tiny_flux("fill")
    path = ff.write(ff.stored(ff.all_in_one_tensors(fill), torch.bfloat16), tmp_path / "fill.safetensors")
    assert inspect_model(path).inpaint
    image, new = _run(engine, events, _request(path, steps=2, guidance=30.0))  # txt2img as a fully masked fill
    assert image.image.std() > 0 and len([e for e in new if isinstance(e, StepProgress)]) == 2


def test_a_sampler_without_a_flow_form_is_named_not_swapped_silently(aio):
    engine, events = _engine()
    euler, _ = _run(engine, events, _request(aio))
    other, _ = _run(engine, events, _request(aio, sampler="DPM++ 2M Karras"))
    assert "DPM++ 2M Karras" in other.note and "Euler" in other.note
    assert np.array_equal(euler.image, other.image)


def test_lora_tags_get_a_note_and_do_not_crash(aio):
    engine, events = _engine()
    image, _ = _run(engine, events, _request(aio, prompt="a red circle <lora:style:0.8>"))
    assert "not applied yet" in image.note


def test_cancel_within_a_step(aio):
    engine, events = _engine()
    cancel = threading.Event()

    def stop_at_first_step(event):
        events.append(event)
        if isinstance(event, StepProgress):
            cancel.set()

    engine.emit = stop_at_first_step
    engine.generate(_request(aio, steps=20), cancel, save_images=False)
    assert any(isinstance(e, JobCancelled) for e in events)
    assert max(e.step for e in events if isinstance(e, StepProgress)) == 1
