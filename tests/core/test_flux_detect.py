"""Header-only Flux detection: every layout, variant, part and precision artists meet, from the
tensors alone (files are written under misleading names on purpose), and the official full-size
layouts as sparse files."""

import json
import math
import time

import pytest
import torch
from diffusers import FluxTransformer2DModel

from studio.core.errors import StudioError
from studio.core.models import flux_detect as fd
from studio.core.models.flux_detect import inspect_flux_header, inspect_flux_path
from studio.core.models.gguf_header import is_gguf, read_gguf_header
from studio.core.models.safetensors_header import read_header
from studio.engine.flux_convert import diffusers_to_bfl
from studio.engine.flux_loading import config_folder
from tests import flux_files as ff
from tests.checkpoint_files import write_flux_like, write_vae_only


@pytest.fixture(scope="module")
def tiny():
    return {variant: ff.build_tiny_flux(variant) for variant in ("dev", "schnell", "fill")}


@pytest.mark.parametrize("variant", ["dev", "schnell", "fill"])
@pytest.mark.parametrize("layout", ["bfl", "diffusers", "comfy-transformer"])
def test_transformer_variant_and_layout(tmp_path, tiny, variant, layout):
    model = tiny[variant]
    if layout == "diffusers":
        tensors = model.transformer.state_dict()
    elif layout == "bfl":
        tensors = ff.transformer_bfl(model)
    else:  # ComfyUI's models/diffusion_models file saved from a checkpoint: prefixed, nothing else
        tensors = {fd.COMFY_TRANSFORMER + k: v for k, v in ff.transformer_bfl(model).items()}
    path = ff.write(ff.stored(tensors, torch.bfloat16), tmp_path / "model.safetensors")
    found = inspect_flux_path(path)
    assert (found.kind, found.variant, found.dtype) == (fd.TRANSFORMER, variant, "bf16")
    assert found.layout == ("diffusers" if layout == "diffusers" else "bfl")
    assert found.prefix == (fd.COMFY_TRANSFORMER if layout == "comfy-transformer" else "")
    assert not (found.has_clip or found.has_t5 or found.has_vae)
    assert (found.width, found.text_width, found.pooled_width) == (32, 32, 32)
    assert found.guidance_distilled is (variant != "schnell")
    assert found.config_name == f"flux-{variant}"


def test_all_in_one_says_what_it_carries(tmp_path, tiny):
    path = ff.write(ff.stored(ff.all_in_one_tensors(tiny["dev"]), torch.bfloat16), tmp_path / "sd15-pruned.safetensors")
    found = inspect_flux_path(path)
    assert (found.kind, found.variant, found.layout, found.prefix) == (fd.ALL_IN_ONE, "dev", "bfl", fd.COMFY_TRANSFORMER)
    assert found.has_clip and found.has_t5 and found.has_vae
    assert found.label == "Flux.1 [dev] (all-in-one)"
    without_vae = {k: v for k, v in ff.all_in_one_tensors(tiny["dev"]).items() if not k.startswith(fd.COMFY_VAE)}
    found = inspect_flux_path(ff.write(ff.stored(without_vae, torch.bfloat16), tmp_path / "b.safetensors"))
    assert found.kind == fd.ALL_IN_ONE and found.has_clip and found.has_t5 and not found.has_vae


def test_split_parts_are_classified_by_their_tensors_not_their_names(tmp_path, tiny):
    model = tiny["dev"]
    cases = {  # written under each other's names on purpose
        fd.CLIP_L: (ff.clip_l_tensors(model), "t5xxl_fp16.safetensors", torch.float16, "fp16"),
        fd.T5: (ff.t5_tensors(model), "ae.safetensors", torch.float16, "fp16"),
        fd.VAE: (ff.vae_tensors(model), "clip_l.safetensors", torch.float32, "fp32"),
    }
    for kind, (tensors, name, dtype, label) in cases.items():
        found = inspect_flux_path(ff.write(ff.stored(tensors, dtype), tmp_path / name))
        assert (found.kind, found.dtype, found.variant) == (kind, label, None), kind
    t5_fp8 = inspect_flux_path(ff.write(ff.stored(ff.t5_tensors(model), ff.FP8), tmp_path / "t5.safetensors"))
    assert (t5_fp8.kind, t5_fp8.dtype, t5_fp8.scaled_fp8, t5_fp8.width) == (fd.T5, "fp8_e4m3fn", False, 32)
    t5_scaled = inspect_flux_path(ff.write(ff.scaled_fp8(ff.t5_tensors(model)), tmp_path / "t5s.safetensors"))
    assert (t5_scaled.kind, t5_scaled.dtype, t5_scaled.scaled_fp8) == (fd.T5, "fp8_e4m3fn", True)


def test_an_sd_vae_and_sd_checkpoints_are_not_flux(tmp_path):
    assert inspect_flux_path(write_vae_only(tmp_path / "ae.safetensors")) is None  # 4 latent channels


@pytest.mark.parametrize(
    "dtype, label, precision",
    [
        (torch.bfloat16, "bf16", "bf16"),
        (torch.float16, "fp16", "fp16"),
        (torch.float32, "fp32", "fp32"),
        (torch.float8_e4m3fn, "fp8_e4m3fn", "fp8 e4m3fn"),
        (torch.float8_e5m2, "fp8_e5m2", "fp8 e5m2"),
    ],
)
def test_precision(tmp_path, tiny, dtype, label, precision):
    path = ff.write(ff.stored(ff.transformer_bfl(tiny["schnell"]), dtype), tmp_path / "flux1-dev-bf16.safetensors")
    found = inspect_flux_path(path)
    assert (found.dtype, found.precision, found.scaled_fp8, found.variant) == (label, precision, False, "schnell")


def test_comfyui_scaled_fp8(tmp_path, tiny):
    tensors = {fd.COMFY_TRANSFORMER + k: v for k, v in ff.transformer_bfl(tiny["dev"]).items()}
    found = inspect_flux_path(ff.write(ff.scaled_fp8(tensors, fd.COMFY_TRANSFORMER), tmp_path / "m.safetensors"))
    assert (found.kind, found.dtype, found.scaled_fp8, found.precision) == (
        fd.TRANSFORMER,
        "fp8_e4m3fn",
        True,
        "fp8 e4m3fn (scaled)",
    )
    alone = inspect_flux_path(ff.write(ff.scaled_fp8(ff.transformer_bfl(tiny["dev"])), tmp_path / "a.safetensors"))
    assert alone.scaled_fp8 and alone.prefix == ""


def test_gguf_by_magic_with_its_quantization(tmp_path, tiny):
    pytest.importorskip("gguf")
    path = ff.write_gguf(tiny["schnell"], tmp_path / "flux1-dev.safetensors")  # the name lies
    assert is_gguf(path)
    header = read_gguf_header(path)
    assert header.tensors["double_blocks.0.img_attn.qkv.weight"].shape == (96, 32)
    assert header.tensors["double_blocks.0.img_attn.qkv.weight"].type_name == "Q8_0"
    assert header.metadata["general.architecture"] == "flux"
    found = inspect_flux_path(path)
    assert (found.kind, found.variant, found.dtype, found.gguf_quant, found.precision) == (
        fd.TRANSFORMER, "schnell", "gguf", "Q8_0", "Q8_0 GGUF"
    )  # fmt: skip
    fill = inspect_flux_path(ff.write_gguf(tiny["fill"], tmp_path / "fill.gguf"))
    assert fill.variant == "fill" and fill.width == 32


def test_truncated_gguf_is_one_clear_message(tmp_path, tiny):
    pytest.importorskip("gguf")
    path = ff.write_gguf(tiny["dev"], tmp_path / "f.gguf")
    data = path.read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) // 2])
    with pytest.raises(StudioError, match="outside the file|ends inside"):
        read_gguf_header(tmp_path / "cut.gguf")


def test_nf4_is_refused_with_what_to_use_instead(tmp_path):
    with pytest.raises(StudioError, match="NF4") as caught:
        inspect_flux_path(ff.write_nf4_like(tmp_path / "flux1-dev-bnb-nf4-v2.safetensors"))
    assert "GGUF" in caught.value.hint


def test_flux_like_blocks_that_are_not_flux_1_are_refused(tmp_path):
    bad = ff.write(
        {"double_blocks.0.img_attn.qkv.weight": torch.zeros(96, 32), "img_in.weight": torch.zeros(32, 64),
         "distilled_guidance_layer.in_proj.weight": torch.zeros(32, 64)},
        tmp_path / "chroma.safetensors",
    )  # fmt: skip
    with pytest.raises(StudioError, match="not a Flux.1 model"):
        inspect_flux_path(bad)


def test_older_tests_flux_like_file_is_still_flux_dev(tmp_path):
    found = inspect_flux_path(write_flux_like(tmp_path / "f.safetensors"))
    assert (found.kind, found.variant, found.dtype) == (fd.TRANSFORMER, "dev", "bf16")


# -- the official full-size layouts, as sparse files ---------------------------------------------
def _write_sparse(shapes: dict[str, tuple[int, ...]], path, dtype="BF16") -> int:
    header, offset = {}, 0
    for name, shape in shapes.items():
        nbytes = math.prod(shape) * 2
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as handle:
        handle.write(len(raw).to_bytes(8, "little") + raw)
        handle.truncate(8 + len(raw) + offset)
    return offset


@pytest.mark.parametrize("variant", ["dev", "schnell", "fill"])
@pytest.mark.parametrize("depth", [None, (1, 1), (2, 3)])
def test_official_full_size_layout_regardless_of_depth(tmp_path, variant, depth):
    config = dict(FluxTransformer2DModel.load_config(config_folder(variant) / "transformer"))
    if depth:
        config.update(num_layers=depth[0], num_single_layers=depth[1])
    with torch.device("meta"):
        state = FluxTransformer2DModel.from_config(config).state_dict()
    shapes = {fd.COMFY_TRANSFORMER + k: tuple(v.shape) for k, v in diffusers_to_bfl(state).items()}
    path = tmp_path / "flux.safetensors"
    data = _write_sparse(shapes, path)
    if depth is None:
        assert data > 23e9  # 11.9 B parameters in bf16
    started = time.perf_counter()
    found = inspect_flux_header(read_header(path))
    assert time.perf_counter() - started < 0.5
    assert (found.kind, found.variant, found.layout, found.dtype) == (fd.TRANSFORMER, variant, "bfl", "bf16")
    assert (found.width, found.text_width, found.pooled_width) == (3072, 4096, 768)
