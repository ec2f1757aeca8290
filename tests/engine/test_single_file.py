"""Single-file checkpoints of every family, through the real detection, config inference,
diffusers loading and generation, offline. The files are tiny random models written in the
original LDM layout by tests/checkpoint_files.py (the inverse of diffusers' conversion)."""

import json
import socket
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from studio.core.errors import ErrorKind
from studio.core.events import ImageFinished, JobFailed, StepProgress
from studio.core.generation.request import GenerationRequest, Mode
from studio.core.models.model_detect import Family, inspect_model
from studio.core.models.model_hash import file_sha256
from studio.core.storage.outputs import OutputWriter, read_request
from studio.engine.engine import Engine
from studio.engine.families import adapter_for
from studio.engine.tiny_model import build_tiny_family
from tests import checkpoint_files as files

FAMILIES = [("sd1", 4), ("sd2", 4), ("sdxl", 4), ("sd1", 9), ("sdxl", 9)]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Loading must never reach the network: any socket use fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """family key -> (diffusers folder, fp32 single file, fp16 single file) of the same weights."""
    root = tmp_path_factory.mktemp("checkpoints")
    made = {}

    def get(family, channels=4):
        key = (family, channels)
        if key not in made:
            pipe = build_tiny_family(family, seed=0, in_channels=channels)
            folder = root / f"{family}-{channels}"
            pipe.save_pretrained(str(folder), safe_serialization=True)
            extra = {"v_pred": torch.zeros(0)} if family == "sd2" else None  # the tiny SD 2.x is v-prediction
            fp32 = files.write_single_file(pipe, root / f"{family}-{channels}.safetensors", dtype=torch.float32, extra=extra)
            fp16 = files.write_single_file(pipe, root / f"{family}-{channels}-fp16.safetensors", dtype=torch.float16, extra=extra)
            # A single file runs with its family's shipped noise schedule: give the folder the same.
            info = inspect_model(fp32)
            shipped = json.loads((adapter_for(info.family).config_dir(info) / "scheduler" / "scheduler_config.json").read_text())
            shipped["prediction_type"] = info.prediction
            (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(shipped))
            made[key] = (folder, fp32, fp16)
        return made[key]

    return get


def _engine(tmp_path):
    events = []
    engine = Engine(OutputWriter(tmp_path / "out"), events.append)
    engine.events = events
    return engine


def _request(model, **changes):
    base = dict(prompt="a red circle", steps=2, width=64, height=64, seed=3, sampler="Euler", model=str(model))
    return GenerationRequest(**{**base, **changes})


def _image(engine, request) -> np.ndarray:
    engine.events.clear()
    engine.generate(request, threading.Event())
    failed = [e for e in engine.events if isinstance(e, JobFailed)]
    assert not failed, failed[0].error
    (finished,) = [e for e in engine.events if isinstance(e, ImageFinished)]
    return finished.image


@pytest.mark.parametrize("family, channels", FAMILIES)
def test_detected_from_tensor_names_and_shapes(checkpoints, family, channels, tmp_path):
    _, fp32, _ = checkpoints(family, channels)
    renamed = tmp_path / "sdxl_v1-5_model_2.1.safetensors"  # a misleading name changes nothing
    renamed.write_bytes(fp32.read_bytes())
    info = inspect_model(renamed)
    assert info.family is Family(family) and info.single_file and info.has_vae
    assert info.inpaint is (channels == 9)
    assert info.native_size == (1024 if family == "sdxl" else 768 if family == "sd2" and channels == 4 else 512)


@pytest.mark.parametrize("family, channels", FAMILIES)
def test_single_file_loads_the_same_model_as_the_diffusers_folder(checkpoints, family, channels, tmp_path):
    """Proves the configs read off the shapes and the key mapping reproduce the model exactly:
    every weight is identical, and so (to rounding) are the pixels."""
    folder, fp32, fp16 = checkpoints(family, channels)
    engine = _engine(tmp_path)
    from_folder = _image(engine, _request(folder))
    folder_pipe = engine.model.pipe
    from_file = _image(engine, _request(fp32))
    file_pipe = engine.model.pipe
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if getattr(folder_pipe, name, None) is None:
            continue
        a, b = getattr(folder_pipe, name).state_dict(), getattr(file_pipe, name).state_dict()
        assert a.keys() == b.keys(), name
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert np.abs(from_folder.astype(int) - from_file.astype(int)).max() <= 1
    half_stored = _image(engine, _request(fp16))  # fp16 weights, computed in fp32 on the CPU
    assert np.abs(half_stored.astype(int) - from_file.astype(int)).mean() < 3


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_every_mode_on_the_same_loaded_weights(checkpoints, family, tmp_path):
    _, fp32, _ = checkpoints(family)
    engine = _engine(tmp_path)
    first = _image(engine, _request(fp32))
    loaded = engine.model
    source = tmp_path / "in.png"
    Image.fromarray(first).save(source)
    mask = tmp_path / "mask.png"
    m = Image.new("L", (64, 64), 0)
    m.paste(255, (16, 16, 48, 48))
    m.save(mask)
    img2img = _image(engine, _request(fp32, mode=Mode.IMG2IMG, init_image=str(source), strength=0.5))
    inpaint = _image(engine, _request(fp32, mode=Mode.INPAINT, init_image=str(source), mask=str(mask), mask_blur=0))
    assert engine.model is loaded  # never reloaded
    assert img2img.shape == inpaint.shape == (64, 64, 3)
    assert np.array_equal(inpaint[:8, :8], first[:8, :8])  # outside the mask the input is kept
    steps = [e for e in engine.events if isinstance(e, StepProgress)]
    side = 64 // engine.model.pipe.vae_scale_factor  # previews come at latent resolution
    assert steps and all(s.preview is not None and s.preview.shape == (side, side, 3) for s in steps)


def test_sdxl_samplers_all_run(checkpoints, tmp_path):
    from studio.core.generation.samplers import SAMPLER_NAMES

    _, fp32, _ = checkpoints("sdxl")
    engine = _engine(tmp_path)
    for sampler in SAMPLER_NAMES:
        assert _image(engine, _request(fp32, sampler=sampler)).shape == (64, 64, 3)


def test_saved_image_carries_the_a1111_model_hash(checkpoints, tmp_path):
    from studio.core.formats.infotext import format_infotext

    _, fp32, _ = checkpoints("sd1")
    engine = _engine(tmp_path)
    _image(engine, _request(fp32))
    (finished,) = [e for e in engine.events if isinstance(e, ImageFinished)]
    expected = file_sha256(fp32)[:10]
    assert finished.request.model_hash == expected
    assert read_request(finished.path).model_hash == expected
    assert f"Model hash: {expected}, Model: sd1-4," in format_infotext(finished.request)


def test_ema_keys_are_ignored(checkpoints, tmp_path):
    folder, fp32, _ = checkpoints("sd1")
    pipe = build_tiny_family("sd1", seed=0)
    with_ema = files.write_single_file(pipe, tmp_path / "ema.safetensors", dtype=torch.float32, include_ema=True, ema_shift=1.0)
    engine = _engine(tmp_path)
    assert np.array_equal(_image(engine, _request(with_ema)), _image(engine, _request(fp32)))


def test_checkpoint_without_vae_needs_one_and_takes_a_vae_file(tmp_path):
    pipe = build_tiny_family("sd1", seed=0)
    no_vae = files.write_single_file(pipe, tmp_path / "novae.safetensors", dtype=torch.float32, include_vae=False)
    vae_file = files.write_vae_only(tmp_path / "my-vae.safetensors", pipe.vae)
    engine = _engine(tmp_path)
    engine.generate(_request(no_vae), threading.Event())
    (failed,) = [e for e in engine.events if isinstance(e, JobFailed)]
    assert failed.error.kind is ErrorKind.BAD_MODEL and "no VAE" in failed.error.message
    assert _image(engine, _request(no_vae, vae=str(vae_file))).shape == (64, 64, 3)


def test_vae_choice_swaps_only_the_vae(checkpoints, tmp_path):
    _, fp32, _ = checkpoints("sd1")
    other = build_tiny_family("sd1", seed=5).vae
    vae_file = files.write_vae_only(tmp_path / "other-vae.safetensors", other)
    engine = _engine(tmp_path)
    own = _image(engine, _request(fp32))
    unet = engine.model.pipe.unet
    swapped = _image(engine, _request(fp32, vae=str(vae_file)))
    assert engine.model.pipe.unet is unet and not np.array_equal(own, swapped)
    assert np.array_equal(_image(engine, _request(fp32)), own)  # "Automatic" brings the model's own back


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: files.write_truncated(p / "cut.safetensors"), "not a valid .safetensors"),
        (lambda p: files.write_lying_offsets(p / "lies.safetensors"), "outside the file"),
        (lambda p: files.write_header_too_long(p / "long.safetensors"), "header length"),
        (lambda p: files.write_zero_filled(p / "zero.safetensors"), "not a valid .safetensors"),
        (lambda p: files.write_kohya_lora(p / "style.safetensors"), "is a LoRA"),
        (lambda p: files.write_vae_only(p / "vae.safetensors"), "is a VAE"),
        (lambda p: files.write_sd3_like(p / "sd3.safetensors"), "SD3 model"),
        (lambda p: files.write_flux_like(p / "flux.safetensors"), "holds only the Flux transformer"),
        (lambda p: files.write_pickled_ckpt(p / "old.ckpt"), "pickled checkpoint"),
    ],
)
def test_bad_files_give_one_clear_message(tmp_path, make, words):
    path = make(tmp_path)
    engine = _engine(tmp_path)
    engine.generate(_request(path), threading.Event())
    (failed,) = [e for e in engine.events if isinstance(e, JobFailed)]
    assert failed.error.kind is ErrorKind.BAD_MODEL, failed.error
    assert words in failed.error.message, failed.error.message


def test_nan_vae_decode_is_retried_in_fp32_and_remembered(tmp_path):
    """A VAE that overflows in half precision (as SDXL's does) decodes black; the studio retries in
    fp32, says so once, and later images go straight to fp32."""
    from studio.engine import vae as vae_module
    from studio.engine.vae import FP32_NOTE, VaeDecoder

    pipe = build_tiny_family("sdxl", seed=0)
    pipe.vae.to(torch.float16)

    def overflow_in_half(module, inputs, output):
        return torch.full_like(output, float("nan")) if output.dtype == torch.float16 else output

    pipe.vae.decoder.register_forward_hook(overflow_in_half)
    info = inspect_model(files.write_single_file(pipe, tmp_path / "xl.safetensors", dtype=torch.float32))
    latents = torch.randn(1, 4, 8, 8)
    decoder = VaeDecoder(info)
    image, note = decoder.decode(pipe, latents)
    assert np.isfinite(image).all() and note == FP32_NOTE
    assert pipe.vae.dtype == torch.float16  # cast back: img2img encodes its input in the UNet's dtype
    again = VaeDecoder(info)  # a new session: remembered on disk
    image2, note2 = again.decode(pipe, latents)
    assert note2 == "" and np.allclose(image, image2)
    assert str(info.path) in vae_module._memory_file().read_text()


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_mode_pipelines_keep_the_weights_in_their_precision(family):
    """from_pipe would cast the shared UNet/VAE/text encoders to fp32 unless told otherwise: on a
    GPU the first img2img job would double the model's memory and halve every later job's speed."""
    from studio.engine.loader import pipeline_for_mode

    pipe = build_tiny_family(family).to(torch.bfloat16)  # bf16 stands in for the GPUs' fp16
    for mode in (Mode.IMG2IMG, Mode.INPAINT):
        view = pipeline_for_mode(pipe, Family(family), mode)
        assert view.unet is pipe.unet
        assert {p.dtype for p in pipe.unet.parameters()} == {torch.bfloat16}
        assert pipe.vae.dtype == pipe.text_encoder.dtype == torch.bfloat16
