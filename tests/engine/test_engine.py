"""The engine on a tiny random SD 1.x model: real diffusers code, on CPU, in seconds."""

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from studio.core.errors import ErrorKind
from studio.core.events import ImageFinished, JobCancelled, JobFailed, JobFinished, StepProgress
from studio.core.generation.request import GenerationRequest
from studio.core.generation.samplers import SAMPLER_NAMES
from studio.core.storage.outputs import OutputWriter, read_request
from studio.engine.engine import Engine


@pytest.fixture
def engine(tmp_path):
    events = []
    engine = Engine(OutputWriter(tmp_path / "out"), events.append)
    engine.events = events
    return engine


def _request(model, **changes):
    base = dict(prompt="a red circle", steps=4, width=64, height=64, seed=7, sampler="Euler", model=str(model))
    return GenerationRequest(**{**base, **changes})


def _of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_generates_and_saves_before_reporting(engine, tiny_model_dir):
    request = _request(tiny_model_dir)
    engine.generate(request, threading.Event())
    finished = _of(engine.events, ImageFinished)
    assert len(finished) == 1 and _of(engine.events, JobFinished)
    image = finished[0]
    assert image.path.exists()
    assert image.image.shape == (64, 64, 3) and image.image.dtype == np.uint8
    assert np.array_equal(np.asarray(Image.open(image.path)), image.image)
    assert read_request(image.path) == request.validated()


@pytest.mark.parametrize("sampler", ["Euler", "Euler a", "DPM++ 2M SDE Karras", "DPM++ SDE Karras", "DPM2 a Karras", "LCM"])
def test_same_request_same_pixels_and_other_seed_differs(engine, tiny_model_dir, sampler):
    """Ancestral and SDE samplers draw noise at every step: it must come from the seed too."""
    for seed in (7, 7, 8):
        engine.generate(_request(tiny_model_dir, seed=seed, sampler=sampler), threading.Event())
    a, b, c = (e.image for e in _of(engine.events, ImageFinished))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_one_preview_per_step_from_x0(engine, tiny_model_dir):
    engine.generate(_request(tiny_model_dir, steps=5), threading.Event())
    steps = _of(engine.events, StepProgress)
    assert [s.step for s in steps] == [1, 2, 3, 4, 5]
    assert all(s.total == 5 for s in steps)
    assert all(s.preview.shape == (32, 32, 3) and s.preview.dtype == np.uint8 for s in steps)


def test_batch_uses_consecutive_seeds(engine, tiny_model_dir):
    engine.generate(_request(tiny_model_dir, batch_count=3, seed=100), threading.Event())
    finished = _of(engine.events, ImageFinished)
    assert [f.request.seed for f in finished] == [100, 101, 102]
    assert len({f.path for f in finished}) == 3


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_every_sampler_runs_and_previews_x0(engine, tiny_model_dir, sampler, monkeypatch):
    seen = []
    original = engine._run_one

    def spy(model, request, index, cancel):
        result = original(model, request, index, cancel)
        seen.append(model.pipe.scheduler.__class__.__name__)
        return result

    monkeypatch.setattr(engine, "_run_one", spy)
    engine.generate(_request(tiny_model_dir, sampler=sampler, steps=3), threading.Event())
    assert _of(engine.events, JobFinished), _of(engine.events, JobFailed)
    assert _of(engine.events, StepProgress)


def test_cancel_at_step_k_skips_decode_and_next_job_works(engine, tiny_model_dir, monkeypatch):
    cancel = threading.Event()
    k = 3

    def emit(event):
        engine.events.append(event)
        if isinstance(event, StepProgress) and event.step == k:
            cancel.set()

    engine.emit = emit
    engine.load(str(tiny_model_dir))
    decodes = []
    vae = engine.model.pipe.vae
    original_decode = vae.decode
    monkeypatch.setattr(vae, "decode", lambda *a, **kw: decodes.append(1) or original_decode(*a, **kw))
    engine.generate(_request(tiny_model_dir, steps=10), cancel)
    assert [s.step for s in _of(engine.events, StepProgress)] == [1, 2, 3]
    assert _of(engine.events, JobCancelled) and not _of(engine.events, ImageFinished)
    assert decodes == []
    engine.events.clear()
    engine.generate(_request(tiny_model_dir, steps=2), threading.Event())
    assert _of(engine.events, JobFinished) and decodes == [1]


def test_invalid_size_is_reported_as_bad_input(engine, tiny_model_dir):
    engine.generate(_request(tiny_model_dir, width=100), threading.Event())
    (failed,) = _of(engine.events, JobFailed)
    assert failed.error.kind is ErrorKind.BAD_INPUT and "multiple of 8" in failed.error.message


@pytest.mark.parametrize(
    "make, kind, words",
    [
        (lambda p: p / "missing", ErrorKind.MODEL_NOT_FOUND, "No model found"),
        (lambda p: (p / "empty").mkdir() or p / "empty", ErrorKind.BAD_MODEL, "no model_index.json"),
        (lambda p: (p / "m.safetensors").write_bytes(b"x") and p / "m.safetensors", ErrorKind.BAD_MODEL,
         "not a valid .safetensors"),
        (lambda p: (p / "m.ckpt").write_bytes(b"x") and p / "m.ckpt", ErrorKind.BAD_MODEL, "pickled checkpoint"),
    ],
)
def test_bad_model_paths_fail_clearly(engine, tmp_path, make, kind, words):
    engine.generate(_request(make(tmp_path)), threading.Event())
    (failed,) = _of(engine.events, JobFailed)
    assert failed.error.kind is kind and words in failed.error.message


def test_corrupt_weights_fail_clearly_and_app_recovers(engine, tiny_model_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage" * 10)
    engine.generate(_request(broken), threading.Event())
    (failed,) = _of(engine.events, JobFailed)
    assert failed.error.kind is ErrorKind.BAD_MODEL and "broken" in failed.error.message
    engine.generate(_request(tiny_model_dir), threading.Event())
    assert _of(engine.events, JobFinished)


def test_pickled_weights_are_refused(engine, tiny_model_dir, tmp_path):
    import shutil

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, pickled)
    unet = pickled / "unet"
    torch.save({}, unet / "diffusion_pytorch_model.bin")
    (unet / "diffusion_pytorch_model.safetensors").unlink()
    engine.generate(_request(pickled), threading.Event())
    (failed,) = _of(engine.events, JobFailed)
    assert failed.error.kind is ErrorKind.BAD_MODEL and ".safetensors" in failed.error.hint


def test_out_of_memory_becomes_a_clear_error_and_next_job_works(engine, tiny_model_dir, monkeypatch):
    engine.load(str(tiny_model_dir))
    unet = engine.model.pipe.unet
    original = unet.forward
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(*args, **kwargs)

    monkeypatch.setattr(unet, "forward", flaky)
    engine.generate(_request(tiny_model_dir), threading.Event())
    (failed,) = _of(engine.events, JobFailed)
    assert failed.error.kind is ErrorKind.OUT_OF_MEMORY and "smaller size" in failed.error.hint
    engine.generate(_request(tiny_model_dir), threading.Event())
    assert _of(engine.events, JobFinished)


def test_model_too_big_for_the_device_is_a_clear_error(engine, tiny_model_dir, monkeypatch):
    from diffusers import StableDiffusionPipeline

    def fail_to_move(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")

    monkeypatch.setattr(StableDiffusionPipeline, "to", fail_to_move)
    engine.generate(_request(tiny_model_dir), threading.Event())
    (failed,) = _of(engine.events, JobFailed)
    assert failed.error.kind is ErrorKind.OUT_OF_MEMORY and "does not fit" in failed.error.message
