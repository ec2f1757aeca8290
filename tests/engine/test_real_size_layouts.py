"""Real-size checkpoints of every family, without their weights: the real architectures are built
on the meta device from the shipped configs, written under their original single-file names into a
sparse .safetensors file (header real, data all zero, no disk used), and must be detected as their
family and read back to exactly the shipped configs (no patched copy). This checks the detection
and the shape-reading against the official layouts at full size, in a second."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from studio.core.models.model_detect import inspect_model
from studio.core.models.safetensors_header import read_header
from studio.engine.checkpoint_config import checkpoint_config_dir
from studio.engine.families import adapter_for, config_dir
from studio.engine.schedulers import make_scheduler
from tests.checkpoint_files import original_state_dict

CASES = [  # (shipped config, family, label, native size, metadata)
    ("sd15", "sd1", "SD 1.x", 512, {}),
    ("sd15-inpaint", "sd1", "SD 1.x inpainting", 512, {}),
    ("sd2-v", "sd2", "SD 2.x", 768, {}),  # says nothing: v assumed, settled by A1111's test at load
    ("sd2-base", "sd2", "SD 2.x", 512, {"modelspec.prediction_type": "epsilon"}),
    ("sd2-inpaint", "sd2", "SD 2.x inpainting", 512, {"modelspec.prediction_type": "epsilon"}),
    ("sdxl", "sdxl", "SDXL", 1024, {}),
    ("sdxl-inpaint", "sdxl", "SDXL inpainting", 1024, {}),
]


def _meta_pipe(folder):
    with torch.device("meta"):
        parts = {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder")),
        }
        if (folder / "text_encoder_2").is_dir():
            config = CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
            parts["text_encoder_2"] = CLIPTextModelWithProjection(config)
    scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    parts["scheduler"] = make_scheduler("DDIM", scheduler_config)
    return SimpleNamespace(**parts)


def _write_sparse(tensors, path, metadata):
    """A .safetensors whose header is exact and whose data region is a hole (all zeros)."""
    header, offset = {}, 0
    for name, tensor in tensors.items():
        dtype, size = ("I64", 8) if tensor.dtype == torch.int64 else ("F16", 2)
        nbytes = math.prod(tensor.shape) * size
        header[name] = {"dtype": dtype, "shape": list(tensor.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as handle:
        handle.write(len(raw).to_bytes(8, "little") + raw)
        handle.truncate(8 + len(raw) + offset)
    return offset


@pytest.mark.parametrize("config_name, family, label, native, metadata", CASES)
def test_official_layout_is_detected_and_reads_back_to_the_shipped_config(tmp_path, config_name, family, label, native, metadata):
    pipe = _meta_pipe(config_dir(config_name))
    path = tmp_path / f"{config_name}.safetensors"
    data_bytes = _write_sparse(original_state_dict(pipe, family=family), path, metadata)
    assert data_bytes > 1.5e9  # real size (fp16): SD 1.x about 2 GB, SDXL about 7 GB
    info = inspect_model(path)
    chosen = adapter_for(info.family).config_name(info)
    assert (info.family.value, info.label, info.native_size, chosen) == (family, label, native, config_name)
    assert checkpoint_config_dir(info, read_header(path)) == config_dir(config_name)  # nothing to patch
