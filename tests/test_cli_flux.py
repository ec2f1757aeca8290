"""`studio generate --model FILE` with Flux: an all-in-one file, and a transformer whose text
encoders and VAE are passed with --text-encoder / --vae (or found in ComfyUI's folders)."""

import json

import pytest
import torch
from PIL import Image

from tests import flux_files as ff
from tests.test_cli import _run


@pytest.mark.slow
def test_generate_with_a_flux_all_in_one_file_and_with_split_parts(tmp_path, studio_home):
    model = ff.build_tiny_flux("dev")
    aio = ff.write(ff.stored(ff.all_in_one_tensors(model), torch.bfloat16), tmp_path / "flux-aio.safetensors")
    out = tmp_path / "aio.png"
    result = _run("generate", "--prompt", "a red circle", "--model", str(aio), "--steps", "2", "--size", "64x64",
                  "--seed", "3", "--out", str(out), env_home=studio_home)
    assert result.returncode == 0, result.stderr
    with Image.open(out) as image:
        assert image.size == (64, 64)
    parts = ff.write_flux_parts(model, tmp_path / "parts")
    split = tmp_path / "split.png"
    result = _run("generate", "--prompt", "a red circle", "--model", str(parts.transformer), "--steps", "2",
                  "--size", "64x64", "--seed", "3", "--text-encoder", str(parts.clip_l), "--text-encoder", str(parts.t5),
                  "--vae", str(parts.vae), "--out", str(split), env_home=studio_home)
    assert result.returncode == 0, result.stderr
    with Image.open(split) as image:
        assert image.size == (64, 64)
        request = json.loads(image.info["studio_request"])  # the parts used, for exact replay
    assert request["text_encoders"].splitlines() == [str(parts.clip_l.resolve()), str(parts.t5.resolve())]


@pytest.mark.slow
def test_generate_names_the_missing_part(tmp_path, studio_home):
    model = ff.build_tiny_flux("dev")
    parts = ff.write_flux_parts(model, tmp_path / "models" / "diffusion_models")
    parts.t5.unlink()
    result = _run("generate", "--prompt", "x", "--model", str(parts.transformer), "--steps", "1", "--size", "64x64",
                  "--out", str(tmp_path / "x.png"), env_home=studio_home)
    assert result.returncode == 1
    assert "T5-XXL text encoder" in result.stderr and "models/text_encoders" in result.stderr
