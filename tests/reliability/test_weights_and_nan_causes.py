"""Weights past any sane range, LoRA tags by the hundred, and NaN images: emphasis is held to
-100..100, repeats of one LoRA merge as A1111 applies them, a job takes at most ten LoRAs, and a
NaN image names the LoRA, embedding or VAE that made it instead of always blaming the model."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from studio.core.events import ImageFinished, JobFailed
from studio.core.generation.lora_tags import MAX_LORAS_PER_JOB, job_loras, lora_tags, merge_repeats
from studio.core.generation.prompt_syntax import MAX_EMPHASIS, parse_prompt_attention
from studio.core.generation.request import GenerationRequest
from studio.core.storage.outputs import OutputWriter
from studio.engine.engine import Engine
from tests import checkpoint_files as files

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# -- emphasis --------------------------------------------------------------------------------------
@pytest.mark.parametrize("prompt", ["(" * 1000 + "cat", "(cat:" + "9" * 400 + ")", "(cat:99999)"])
def test_emphasis_beyond_the_range_is_held_to_it(prompt):
    assert parse_prompt_attention(prompt) == [("cat", MAX_EMPHASIS)]


def test_emphasis_within_the_range_is_the_float_a1111_computes():
    assert parse_prompt_attention("((cat)) [dog] (fox:-1.5)") == [
        ("cat", 1.1 * 1.1), (" ", 1.0), ("dog", 1 / 1.1), (" ", 1.0), ("fox", -1.5)]
    weights = [w for _, w in parse_prompt_attention("((cat:0):" + "9" * 400 + ")")]
    assert all(math.isfinite(w) for w in weights)  # 0 x infinity was NaN


# -- LoRA tags -------------------------------------------------------------------------------------
def test_a_repeated_lora_is_applied_as_a1111_does_mentions_times_the_last_weight():
    (tag,) = merge_repeats(lora_tags("<lora:a:0.3> x <lora:a:0.4>"))
    assert (tag.name, tag.weight, tag.unet) == ("a", 0.8, 0.8)
    (tag,) = merge_repeats(lora_tags("<lora:a:0.3:1> <lora:a:0.5:0.25>"))
    assert (tag.weight, tag.unet) == (1.0, 0.5)


def test_a_thousand_mentions_add_up_to_no_more_than_one_lora_takes():
    (tag,) = merge_repeats(lora_tags("<lora:a:2>" * 1000))
    assert tag.weight == 2.0
    assert tag.note == ("LoRA a is named 1,000 times at weight 2, which adds up to 2000; used 2, the most one "
                        "LoRA takes.")


def test_a_job_takes_at_most_ten_loras_and_says_which_it_left_out():
    tags, note = job_loras("".join(f"<lora:l{i}:0.5>" for i in range(100)) + "<lora:off:0>")
    applied = [t for t in tags if not t.is_off]
    assert [t.name for t in applied] == [f"l{i}" for i in range(MAX_LORAS_PER_JOB)] and MAX_LORAS_PER_JOB == 10
    assert note == ("The prompt names 100 LoRAs; an image takes at most 10, so the first 10 were used and 90 "
                    "left out (l10, l11, l12, …).")
    assert job_loras("<lora:a> <lora:a> <lora:b>")[1] == ""


# -- through the engine ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_pipe():
    from studio.engine.tiny_model import build_tiny_pipeline

    return build_tiny_pipeline(0)


@pytest.fixture
def engine(tmp_path):
    events: list = []
    engine = Engine(OutputWriter(tmp_path / "out"), events.append, previews=False)
    engine.events = events
    return engine


def _run(engine, model_dir, prompt, **changes):
    engine.events.clear()
    request = dict(prompt=prompt, steps=2, width=64, height=64, seed=7, sampler="Euler", model=str(model_dir))
    engine.generate(GenerationRequest(**{**request, **changes}), threading.Event())
    return engine.events


def _image(events):
    finished = [e for e in events if isinstance(e, ImageFinished)]
    assert finished, events
    return finished[0].image


def _failure(events):
    (failed,) = [e for e in events if isinstance(e, JobFailed)]
    return failed.error


def test_a_thousand_nested_brackets_render_as_weight_100(engine, tiny_model_dir):
    nested = _image(_run(engine, tiny_model_dir, "a " + "(" * 1000 + "cat"))  # 1.1**1000: NaN before
    assert np.array_equal(nested, _image(_run(engine, tiny_model_dir, "a (cat:100)")))


def test_repeats_of_one_lora_render_as_a1111_applies_them(engine, tiny_model_dir, tiny_pipe, tmp_path):
    from studio.dev.bench_lora import make_kohya_lora

    make_kohya_lora(tiny_pipe, tmp_path / "loras" / "style.safetensors", seed=1)
    engine.lora_dirs = [str(tmp_path / "loras")]
    repeated = _image(_run(engine, tiny_model_dir, "a cat <lora:style:0.3> <lora:style:0.4>"))
    assert np.array_equal(repeated, _image(_run(engine, tiny_model_dir, "a cat <lora:style:0.8>")))


def test_a_lora_holding_nan_is_named_as_the_cause(engine, tiny_model_dir, tiny_pipe, tmp_path):
    from studio.dev.bench_lora import make_kohya_lora

    path = make_kohya_lora(tiny_pipe, tmp_path / "loras" / "burnt.safetensors", seed=1)
    tensors = load_file(str(path))
    tensors = {k: torch.full_like(v, float("nan")) if "lora_up" in k else v for k, v in tensors.items()}
    save_file(tensors, str(path))
    engine.lora_dirs = [str(tmp_path / "loras")]
    error = _failure(_run(engine, tiny_model_dir, "a cat <lora:burnt:0.8>"))
    assert error.message == "The LoRA burnt holds invalid (NaN) numbers, so the image came out invalid."
    assert "download it again" in error.hint


def test_a_vae_that_decodes_to_nan_is_named_not_the_model(engine, tiny_model_dir, tiny_pipe, tmp_path):
    vae = files.write_vae_only(tmp_path / "broken-vae.safetensors", tiny_pipe.vae)
    tensors = load_file(str(vae))
    key = next(k for k in tensors if k.startswith("decoder.conv_out.weight"))
    tensors[key] = torch.full_like(tensors[key], float("inf"))
    save_file(tensors, str(vae))
    error = _failure(_run(engine, tiny_model_dir, "a cat", vae=str(vae)))
    assert error.message == "The VAE broken-vae.safetensors produced an invalid (NaN) image."
    assert "VAE picker" in error.hint
