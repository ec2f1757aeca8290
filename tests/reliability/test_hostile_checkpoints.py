"""Crafted checkpoints whose headers declare more blocks or layers than any real model: the
loader reads the config off the header in linear time and refuses them in one sentence, in
milliseconds, before diffusers builds a module of them."""

from __future__ import annotations

import time

import pytest
import torch

from studio.core.errors import ErrorKind, StudioError
from studio.core.models.model_detect import inspect_model
from studio.engine.loader import load_pipeline
from studio.engine.tiny_model import build_tiny_family
from tests import checkpoint_files as files


@pytest.fixture(scope="module")
def tiny_sd1():
    return build_tiny_family("sd1", seed=0)


def _refusal(path) -> tuple[StudioError, float]:
    started = time.perf_counter()
    with pytest.raises(StudioError) as raised:
        load_pipeline(inspect_model(path), "cpu", torch.float32)
    return raised.value, time.perf_counter() - started


def _tiny(count: int) -> dict[str, torch.Tensor]:
    return {str(i): torch.zeros(1, dtype=torch.float16) for i in range(count)}


def test_thousands_of_extra_unet_blocks_are_refused_in_milliseconds(tiny_sd1, tmp_path):
    # The campaign's file: 8,000 extra blocks took 102 s (one pass over every name per block).
    extra = {f"{files.UNET_PREFIX}input_blocks.{12 + k}.1.transformer_blocks.0.norm1.weight": t
             for k, t in enumerate(_tiny(3000).values())}
    path = files.write_single_file(tiny_sd1, tmp_path / "blocks.safetensors", extra=extra)
    error, seconds = _refusal(path)
    assert error.kind is ErrorKind.BAD_MODEL
    assert error.message == ("blocks.safetensors is damaged or not a real model: it declares 3,012 UNet input "
                             "blocks, and no Stable Diffusion model has more than 12.")
    assert seconds < 1.0, f"{seconds:.1f} s"


def test_a_text_encoder_of_thousands_of_layers_is_refused_before_it_is_built(tiny_sd1, tmp_path):
    # 5,000 declared layers failed after 220 s: diffusers built every one before the weights missed.
    extra = {f"{files.SD1_TEXT_PREFIX}encoder.layers.{4999}.layer_norm1.weight": torch.zeros(1)}
    path = files.write_single_file(tiny_sd1, tmp_path / "layers.safetensors", extra=extra)
    error, seconds = _refusal(path)
    assert "damaged or not a real model: it declares 5,000 layers in its text encoder" in error.message
    assert "no Stable Diffusion model has more than 12" in error.message
    assert seconds < 1.0, f"{seconds:.1f} s"


@pytest.mark.parametrize("key, what", [
    ("first_stage_model.decoder.up.9.block.0.conv1.bias", "10 VAE levels"),
    ("model.diffusion_model.middle_block.1.transformer_blocks.40.norm1.weight", "41 transformer blocks"),
])
def test_other_parts_beyond_every_real_model_are_refused(tiny_sd1, tmp_path, what, key):
    path = files.write_single_file(tiny_sd1, tmp_path / "part.safetensors", extra={key: torch.zeros(1)})
    error, _ = _refusal(path)
    assert f"it declares {what}" in error.message
