"""The test-side checkpoint writer is right when diffusers' own single-file code reads it back
into the very model it was written from; the tiny families follow the real models' rules."""

from __future__ import annotations

import json
import socket
import struct

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from studio.engine.tiny_model import CLIP_VOCAB_SIZE, build_tiny_family
from tests import checkpoint_files as cf

CASES = [("sd1", 4), ("sd1", 9), ("sd2", 4), ("sdxl", 4), ("sdxl", 9)]
CASE_IDS = [f"{family}-{channels}ch" for family, channels in CASES]


def _strip_text_model(state):
    """transformers >= 5.6 names CLIPTextModel's tensors without "text_model." (diffusers strips it too)."""
    return {key.removeprefix("text_model."): value for key, value in state.items()}


def _converted_components(pipe, checkpoint):
    """diffusers' forward conversion of an original-layout state dict, component by component."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        convert_open_clip_checkpoint,
    )

    family = cf.pipeline_family(pipe)
    out = {
        "unet": convert_ldm_unet_checkpoint(checkpoint, dict(pipe.unet.config)),
        "vae": convert_ldm_vae_checkpoint(checkpoint, dict(pipe.vae.config)),
    }
    if family == "sd1":
        out["text_encoder"] = _strip_text_model(convert_ldm_clip_checkpoint(checkpoint))
    elif family == "sd2":
        out["text_encoder"] = _strip_text_model(
            convert_open_clip_checkpoint(pipe.text_encoder, checkpoint, prefix=cf.SD2_TEXT_PREFIX)
        )
    else:
        out["text_encoder"] = _strip_text_model(convert_ldm_clip_checkpoint(checkpoint))
        out["text_encoder_2"] = convert_open_clip_checkpoint(pipe.text_encoder_2, checkpoint, prefix=cf.SDXL_TEXT_2_PREFIX)
    return out


def _expected_keys(pipe, component):
    keys = set(getattr(pipe, component).state_dict())
    if component == "text_encoder" and cf.pipeline_family(pipe) == "sd1":
        # A real SD 1.x file's position_ids buffer comes through diffusers' conversion; transformers
        # keeps it out of CLIPTextModel's state dict (non-persistent), so a loader must drop it.
        keys.add("embeddings.position_ids")
    return keys


@pytest.fixture(scope="module")
def pipes():
    made = {}

    def pipe_for(family, channels):
        if (family, channels) not in made:
            made[family, channels] = build_tiny_family(family, 0, channels)
        return made[family, channels]

    return pipe_for


# --- the tiny families -----------------------------------------------------------------------


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_tiny_family_follows_the_real_rules(family):
    pipe = build_tiny_family(family)
    for model in (pipe.unet, pipe.vae):
        assert model.config.norm_num_groups == 32
        assert tuple(model.config.block_out_channels) == (32, 64)
        assert model.config.layers_per_block == 1
    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if family == "sdxl" else [])
    for encoder in encoders:
        config = encoder.config
        assert (config.vocab_size, config.max_position_embeddings) == (CLIP_VOCAB_SIZE, 77)
        assert (config.bos_token_id, config.eos_token_id) == (49406, 49407)
        assert config.num_attention_heads == max(1, config.hidden_size // 64)
        assert config.num_hidden_layers == 2
    unet = pipe.unet.config
    if family == "sd1":
        assert (unet.attention_head_dim, unet.use_linear_projection) == (8, False)
        assert pipe.text_encoder.config.hidden_act == "quick_gelu"
        assert pipe.tokenizer.pad_token == "<|endoftext|>"
    else:
        assert (list(unet.attention_head_dim), unet.use_linear_projection) == ([1, 1], True)
    if family == "sd2":
        assert pipe.text_encoder.config.hidden_act == "gelu"
        assert pipe.scheduler.config.prediction_type == "v_prediction"
        assert pipe.tokenizer.pad_token == "!"
    if family == "sdxl":
        te1, te2 = pipe.text_encoder.config, pipe.text_encoder_2.config
        assert (te1.hidden_act, te2.hidden_act) == ("quick_gelu", "gelu")
        assert te1.hidden_size != te2.hidden_size  # see _TEXT_WIDTH in tiny_model
        assert type(pipe.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
        assert unet.cross_attention_dim == te1.hidden_size + te2.hidden_size
        assert unet.projection_class_embeddings_input_dim == 6 * unet.addition_time_embed_dim + te2.projection_dim
        assert list(unet.transformer_layers_per_block) == [1, 2]
        assert type(pipe.scheduler).__name__ == "EulerDiscreteScheduler"
        assert (pipe.vae.config.scaling_factor, pipe.vae.config.force_upcast) == (0.13025, True)
        assert (pipe.tokenizer.pad_token, pipe.tokenizer_2.pad_token) == ("<|endoftext|>", "!")
    ids = pipe.tokenizer("a red circle").input_ids
    assert max(ids) < CLIP_VOCAB_SIZE


def test_each_pipeline_owns_its_tokenizer():
    first, second = build_tiny_family("sd1"), build_tiny_family("sd1")
    first.tokenizer.add_tokens(["<my-embedding>"])
    assert len(second.tokenizer) == CLIP_VOCAB_SIZE


def test_same_seed_same_weights_other_seed_differs():
    a, b, c = (build_tiny_family("sdxl", seed).unet.conv_in.weight for seed in (3, 3, 4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.slow
def test_saved_family_folder_loads_as_its_pipeline(tiny_family_dir):
    folder = tiny_family_dir("sdxl", 9)  # save_tiny_family, shared with the end-to-end tests
    loaded = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
    assert type(loaded).__name__ == "StableDiffusionXLInpaintPipeline"
    assert loaded.unet.config.in_channels == 9
    assert torch.equal(loaded.unet.conv_in.weight, build_tiny_family("sdxl", 0, 9).unet.conv_in.weight)


# --- the writer, checked against diffusers' forward conversion -------------------------------


@pytest.mark.parametrize(("family", "channels"), CASES, ids=CASE_IDS)
def test_diffusers_conversion_gives_back_every_tensor(pipes, tmp_path, family, channels):
    pipe = pipes(family, channels)
    path = cf.write_single_file(pipe, tmp_path / "model.safetensors", dtype=torch.float32)
    converted = _converted_components(pipe, load_file(path))
    assert set(converted) == {"unet", "vae", "text_encoder"} | ({"text_encoder_2"} if family == "sdxl" else set())
    for component, state in converted.items():
        original = getattr(pipe, component).state_dict()
        assert set(state) == _expected_keys(pipe, component), component
        for key, value in original.items():
            assert value.shape == state[key].shape and torch.equal(value, state[key]), f"{component}: {key}"


@pytest.mark.parametrize(("family", "channels"), [("sd1", 4), ("sdxl", 4)])
def test_fp16_file_holds_the_rounded_weights(pipes, tmp_path, family, channels):
    pipe = pipes(family, channels)
    path = cf.write_single_file(pipe, tmp_path / "model.safetensors")  # fp16 is the default
    checkpoint = load_file(path)
    assert {value.dtype for value in checkpoint.values()} <= {torch.float16, torch.int64}
    for component, state in _converted_components(pipe, checkpoint).items():
        for key, value in getattr(pipe, component).state_dict().items():
            assert torch.equal(value.half(), state[key]), f"{component}: {key}"
            torch.testing.assert_close(value, state[key].float(), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(("family", "channels"), CASES, ids=CASE_IDS)
def test_file_uses_the_original_names_and_shapes(pipes, tmp_path, family, channels):
    from diffusers.loaders.single_file_utils import CHECKPOINT_KEY_NAMES, infer_diffusers_model_type

    pipe = pipes(family, channels)
    with safe_open(cf.write_single_file(pipe, tmp_path / "m.safetensors"), "pt") as f:
        shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
        assert f.metadata() is None
    u = cf.UNET_PREFIX
    assert shapes[u + "input_blocks.0.0.weight"] == (32, channels, 3, 3)
    assert shapes[u + "time_embed.0.weight"] == (128, 32)
    assert shapes["first_stage_model.encoder.mid.attn_1.q.weight"] == (64, 64, 1, 1)  # 1x1 convs
    assert shapes["first_stage_model.decoder.up.0.block.0.nin_shortcut.weight"] == (32, 64, 1, 1)
    if family == "sd1":
        assert shapes[u + "input_blocks.1.1.proj_in.weight"] == (32, 32, 1, 1)  # conv projection
        assert shapes[u + "output_blocks.1.1.conv.weight"] == (64, 64, 3, 3)  # upsampler, no attention
        assert shapes[cf.SD1_TEXT_PREFIX + "embeddings.position_ids"] == (1, 77)
        assert CHECKPOINT_KEY_NAMES["clip"] in shapes
        assert not any(key.startswith(("cond_stage_model.model.", "conditioner.")) for key in shapes)
    if family == "sd2":
        assert shapes[u + "input_blocks.1.1.proj_in.weight"] == (32, 32)  # linear projection
        assert shapes[cf.SD2_TEXT_PREFIX + "token_embedding.weight"] == (CLIP_VOCAB_SIZE, 32)
        assert shapes[cf.SD2_TEXT_PREFIX + "transformer.resblocks.1.attn.in_proj_weight"] == (96, 32)
        assert shapes[cf.SD2_TEXT_PREFIX + "logit_scale"] == ()
        assert set(cf.DDPM_BUFFERS) <= set(shapes)
    if family == "sdxl":
        assert shapes[u + "label_emb.0.0.weight"] == (128, 6 * 8 + 32)
        assert shapes[u + "input_blocks.3.1.transformer_blocks.1.attn2.to_k.weight"] == (64, 96)
        assert shapes[u + "output_blocks.1.2.conv.weight"] == (64, 64, 3, 3)  # upsampler after attention
        assert shapes[cf.SDXL_TEXT_2_PREFIX + "text_projection"] == (64, 32)  # [width, projection]
        assert CHECKPOINT_KEY_NAMES["clip_sdxl"] in shapes and CHECKPOINT_KEY_NAMES["open_clip_sdxl"] in shapes
        assert not any(key.startswith("cond_stage_model.") or key in cf.DDPM_BUFFERS for key in shapes)
    if channels == 9 and family == "sd1":
        assert infer_diffusers_model_type({k: torch.empty(s, device="meta") for k, s in shapes.items()}) == "inpainting"


def test_ema_copies_are_what_diffusers_extracts(pipes, tmp_path):
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    pipe = pipes("sd1", 4)
    path = cf.write_single_file(pipe, tmp_path / "train.safetensors", dtype=torch.float32, include_ema=True, ema_shift=1.0)
    checkpoint = load_file(path)
    unet_keys = [key for key in checkpoint if key.startswith(cf.UNET_PREFIX)]
    assert "model_ema.decay" in checkpoint and "model_ema.num_updates" in checkpoint
    ema = cf.ema_key(cf.UNET_PREFIX + "input_blocks.1.1.proj_in.weight")
    assert ema == "model_ema.diffusion_modelinput_blocks11proj_inweight"
    assert {cf.ema_key(key) for key in unet_keys} <= set(checkpoint)
    config = dict(pipe.unet.config)
    plain = convert_ldm_unet_checkpoint(checkpoint, config)
    ema = convert_ldm_unet_checkpoint(checkpoint, config, extract_ema=True)
    weight = pipe.unet.state_dict()["conv_in.weight"]
    assert torch.equal(plain["conv_in.weight"], weight)
    assert torch.equal(ema["conv_in.weight"], weight + 1.0)


def test_extra_tensors_and_minimal_files(pipes, tmp_path):
    pipe = pipes("sdxl", 4)
    path = cf.write_single_file(
        pipe, tmp_path / "v.safetensors", include_vae=False, real_extras=False,
        extra={"v_pred": torch.tensor([]), "ztsnr": torch.tensor([])}, metadata={"modelspec.architecture": "x"},
    )
    checkpoint = load_file(path)
    assert checkpoint["v_pred"].numel() == 0 and "ztsnr" in checkpoint
    assert not any(key.startswith("first_stage_model.") or key.endswith("logit_scale") for key in checkpoint)
    with safe_open(path, "pt") as f:
        assert f.metadata() == {"modelspec.architecture": "x"}


# --- diffusers' own loader, end to end, offline ----------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(OSError):
        socket.create_connection(("huggingface.co", 443))


def _generate(pipe, channels):
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(prompt="a red circle", num_inference_steps=2, height=64, width=64, output_type="np")
    if channels == 9:
        kwargs.update(image=Image.new("RGB", (64, 64), "red"), mask_image=Image.new("L", (64, 64), 255))
    return pipe(generator=torch.Generator().manual_seed(1), **kwargs).images


def _from_single_file(reference, path, folder, **kwargs):
    tokenizers = {name: getattr(reference, name) for name in ("tokenizer", "tokenizer_2") if getattr(reference, name, None)}
    return type(reference).from_single_file(str(path), config=str(folder), local_files_only=True, **tokenizers, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize(("family", "channels"), CASES, ids=CASE_IDS)
def test_from_single_file_offline_makes_the_same_pixels(tiny_family_dir, no_network, tmp_path, family, channels):
    folder = tiny_family_dir(family, channels)
    reference = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
    path = cf.write_single_file(reference, tmp_path / "model.safetensors", dtype=torch.float32)
    single = _from_single_file(reference, path, folder)
    assert type(single.scheduler) is type(reference.scheduler)
    assert single.scheduler.config.prediction_type == reference.scheduler.config.prediction_type
    assert single.vae.config.scaling_factor == reference.vae.config.scaling_factor
    # Identical weights; a tolerance only because CPU matmuls round differently when the same
    # values sit at a different memory alignment (mmapped folder vs converted tensors): ~1e-6.
    np.testing.assert_allclose(_generate(single, channels), _generate(reference, channels), rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(("family", "channels"), [("sd2", 4), ("sdxl", 4)])
def test_from_single_file_reads_an_fp16_file(tiny_family_dir, no_network, tmp_path, family, channels):
    folder = tiny_family_dir(family, channels)
    reference = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
    path = cf.write_single_file(reference, tmp_path / "model.safetensors", dtype=torch.float16)
    single = _from_single_file(reference, path, folder, torch_dtype=torch.float32)
    for name in ("unet", "vae", "text_encoder"):
        getattr(reference, name).load_state_dict(
            {key: value.half().float() for key, value in getattr(reference, name).state_dict().items()}
        )
    if family == "sdxl":
        reference.text_encoder_2.load_state_dict(
            {key: value.half().float() for key, value in reference.text_encoder_2.state_dict().items()}
        )
    np.testing.assert_allclose(_generate(single, channels), _generate(reference, channels), rtol=0, atol=1e-5)


# --- bad and foreign files -------------------------------------------------------------------


def _header(path):
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    return length, raw


def test_truncated_file_keeps_its_header_but_loses_data(tmp_path):
    whole = cf.write_single_file(build_tiny_family("sd1"), tmp_path / "whole.safetensors")
    cut = cf.write_truncated(tmp_path / "cut.safetensors", source=whole)
    length, raw = _header(cut)
    header = json.loads(raw[8 : 8 + length])
    assert set(header) - {"__metadata__"} == set(load_file(whole))
    assert len(raw) < whole.stat().st_size
    with pytest.raises(SafetensorError):
        load_file(cut)
    with pytest.raises(SafetensorError):
        load_file(cf.write_truncated(tmp_path / "small.safetensors"))


def test_lying_header_points_past_the_end(tmp_path):
    path = cf.write_lying_offsets(tmp_path / "lie.safetensors")
    length, raw = _header(path)
    header = json.loads(raw[8 : 8 + length])
    assert max(entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__") > len(raw) - 8 - length
    with pytest.raises(SafetensorError):
        load_file(path)


def test_header_length_beyond_the_file_and_zero_filled_file(tmp_path):
    too_long = cf.write_header_too_long(tmp_path / "long.safetensors")
    assert _header(too_long)[0] > too_long.stat().st_size
    zeros = cf.write_zero_filled(tmp_path / "zeros.safetensors")
    assert set(zeros.read_bytes()) == {0}
    for path in (too_long, zeros):
        with pytest.raises(SafetensorError):
            load_file(path)


def test_kohya_lora_has_its_module_triplets_and_metadata(tmp_path):
    path = cf.write_kohya_lora(tmp_path / "style.safetensors", rank=4)
    tensors = load_file(path)
    modules = {key.split(".")[0] for key in tensors}
    assert any(m.startswith("lora_unet_") for m in modules) and any(m.startswith("lora_te_") for m in modules)
    for module in modules:
        assert {f"{module}.lora_down.weight", f"{module}.lora_up.weight", f"{module}.alpha"} <= set(tensors)
        assert tensors[f"{module}.lora_down.weight"].shape[0] == 4
    assert tensors["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"].ndim == 4
    with safe_open(path, "pt") as f:
        assert f.metadata()["ss_network_module"] == "networks.lora"


def test_vae_only_file_is_the_tiny_vae_in_ldm_names(tmp_path):
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    vae = build_tiny_family("sd1").vae
    tensors = load_file(cf.write_vae_only(tmp_path / "vae.safetensors", vae))
    assert {key.split(".")[0] for key in tensors} == {"encoder", "decoder", "quant_conv", "post_quant_conv"}
    converted = convert_ldm_vae_checkpoint(tensors, dict(vae.config))
    assert set(converted) == set(vae.state_dict())
    assert all(torch.equal(value, converted[key]) for key, value in vae.state_dict().items())


def test_sd3_and_flux_like_files_carry_their_architecture_names(tmp_path):
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    sd3 = load_file(cf.write_sd3_like(tmp_path / "sd3.safetensors"))
    assert "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight" in sd3
    assert "model.diffusion_model.x_embedder.proj.weight" in sd3
    assert not any("input_blocks" in key for key in sd3)
    flux = load_file(cf.write_flux_like(tmp_path / "flux.safetensors"))
    assert {"double_blocks.0.img_attn.qkv.weight", "img_in.weight"} <= set(flux)
    assert infer_diffusers_model_type(flux) == "flux-dev"  # a third party agrees it looks like Flux


def test_pickled_ckpt_is_a_torch_save_of_the_original_layout(tmp_path):
    path = cf.write_pickled_ckpt(tmp_path / "old.ckpt")
    assert path.read_bytes()[:2] == b"PK"  # torch.save's zip container with a pickle inside
    loaded = torch.load(path, weights_only=True)
    assert loaded["global_step"] == 1000
    assert set(loaded["state_dict"]) == set(cf.original_state_dict(build_tiny_family("sd1")))
