"""Flux files for tests: tiny random Flux.1 models built from config with diffusers/transformers,
written in the layouts artists download them in.

  BFL original     the transformer alone, BFL names (black-forest-labs' flux1-dev.safetensors)
  diffusers        the transformer alone, diffusers names (a diffusers folder's transformer/ shard)
  ComfyUI all-in-one  model.diffusion_model.* + text_encoders.clip_l.transformer.text_model.* +
                   text_encoders.t5xxl.transformer.* + vae.* (comfy/sd.py save_checkpoint with
                   comfy/supported_models.py Flux: text_encoder_key_prefix "text_encoders.",
                   vae_key_prefix "vae."; ComfyUI's CLIP also saves text_projection and logit_scale)
  split parts      clip_l.safetensors (text_model.*), t5xxl_fp16.safetensors (shared/encoder.*),
                   ae.safetensors (BFL/LDM autoencoder names)
  fp8              weights as torch.float8_e4m3fn; ComfyUI's "scaled fp8" adds a float32
                   `<layer>.scale_weight` per linear layer and an empty `scaled_fp8` tensor
  GGUF             city96's layout: BFL names, general.architecture "flux", Q8_0 matrices

The BFL writer is diffusers_to_bfl (studio.engine.flux_convert), checked against diffusers' own
forward conversion in tests/engine/test_flux_convert.py. The tiny model keeps Flux's real latent
geometry (16 VAE channels, 8x downsampling, 2x2 packing: 64 image features, 384 for Fill) and is
narrow everywhere else (diffusers' fast-test sizes: 2 heads of 16, one block of each kind).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from studio.core.models.flux_detect import COMFY_CLIP_L, COMFY_T5, COMFY_TRANSFORMER, COMFY_VAE
from studio.engine.flux_convert import diffusers_to_bfl
from studio.engine.flux_loading import CLIP_HEAD_WIDTH, rope_axes
from tests.checkpoint_files import clip_to_original, vae_to_original

FP8 = torch.float8_e4m3fn
TINY_HEADS, TINY_HEAD_DIM = 2, 16
TINY_TEXT = 32  # T5 width (joint_attention_dim) and CLIP width (pooled_projection_dim)


def tiny_transformer_config(variant: str = "dev", **overrides) -> dict:
    """diffusers' FluxTransformer2DModel fast-test sizes, with Flux's real packed-latent input."""
    config = dict(
        patch_size=1,
        in_channels=384 if variant == "fill" else 64,
        out_channels=64 if variant == "fill" else None,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=TINY_HEAD_DIM,
        num_attention_heads=TINY_HEADS,
        joint_attention_dim=TINY_TEXT,
        pooled_projection_dim=TINY_TEXT,
        guidance_embeds=variant != "schnell",
        axes_dims_rope=rope_axes(TINY_HEAD_DIM),
    )
    config.update(overrides)
    return config


def build_tiny_flux(variant: str = "dev", seed: int = 0, fp8_exact: bool = False) -> SimpleNamespace:
    """transformer, text_encoder (CLIP-L-shaped), text_encoder_2 (T5-shaped), vae and scheduler of a
    tiny Flux.1 model. `fp8_exact` rounds every weight to a float8_e4m3fn value, so that fp8 and
    wider files of this model hold exactly the same numbers (the images must then match too)."""
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(**tiny_transformer_config(variant))
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,  # the real tokenizer's ids
            hidden_size=TINY_TEXT,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=max(1, TINY_TEXT // CLIP_HEAD_WIDTH),
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=TINY_TEXT,
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=1,
        )
    )
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=32128,
            d_model=TINY_TEXT,
            d_kv=8,
            d_ff=64,
            num_layers=1,
            num_heads=4,
            relative_attention_num_buckets=32,
            relative_attention_max_distance=128,
            feed_forward_proj="gated-gelu",
            dense_act_fn="gelu_new",
            is_gated_act=True,
            layer_norm_epsilon=1e-6,
            tie_word_embeddings=False,
        )
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=[32, 32, 32, 32],
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=32,
        sample_size=64,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    models = (transformer, clip, t5, vae)
    if fp8_exact:
        with torch.no_grad():
            for model in models:
                for param in model.parameters():
                    param.copy_(param.to(FP8).to(param.dtype))
    for model in models:
        model.eval()
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0 if variant != "schnell" else 1.0, use_dynamic_shifting=variant != "schnell"
    )
    return SimpleNamespace(transformer=transformer, text_encoder=clip, text_encoder_2=t5, vae=vae, scheduler=scheduler)


# -- state dicts in the layouts files use ---------------------------------------------------------
def transformer_bfl(model) -> dict[str, torch.Tensor]:
    return diffusers_to_bfl(model.transformer.state_dict())


def clip_l_tensors(model, comfy_extras: bool = True) -> dict[str, torch.Tensor]:
    """ComfyUI's clip_l.safetensors: Hugging Face names under text_model., plus the projection and
    logit scale ComfyUI's own CLIP class carries (nothing in diffusers reads them)."""
    out = clip_to_original(model.text_encoder.state_dict())
    out.pop("text_model.embeddings.position_ids", None)
    if comfy_extras:
        width = model.text_encoder.config.hidden_size
        out["text_projection.weight"] = torch.eye(width)
        out["logit_scale"] = torch.tensor(4.6055)
    return out


def t5_tensors(model) -> dict[str, torch.Tensor]:
    """t5xxl_fp16.safetensors: T5EncoderModel's names (shared.weight, encoder.block.N...)."""
    state = model.text_encoder_2.state_dict()
    state.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight; files keep one copy
    return {key: value.contiguous() for key, value in state.items()}


def vae_tensors(model) -> dict[str, torch.Tensor]:
    """ae.safetensors: the BFL/LDM autoencoder names."""
    return vae_to_original(model.vae.state_dict(), model.vae.config)


def all_in_one_tensors(model) -> dict[str, torch.Tensor]:
    out = {COMFY_TRANSFORMER + key: value for key, value in transformer_bfl(model).items()}
    out.update({COMFY_CLIP_L + key: value for key, value in clip_l_tensors(model).items()})
    out.update({COMFY_T5 + key: value for key, value in t5_tensors(model).items()})
    out.update({COMFY_VAE + key: value for key, value in vae_tensors(model).items()})
    return out


def stored(tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating tensors in `dtype`, fp8 as ComfyUI and BFL store it: only matrices and kernels, with
    norms, biases and scalars kept in bf16 (what fp8 Flux files on model sites hold)."""
    out = {}
    for key, value in tensors.items():
        if not value.is_floating_point():
            out[key] = value.contiguous()
        elif dtype in (FP8, torch.float8_e5m2):
            out[key] = value.to(dtype if value.ndim >= 2 else torch.bfloat16).contiguous()
        else:
            out[key] = value.to(dtype).contiguous()
    return out


def scaled_fp8(tensors: dict[str, torch.Tensor], prefix: str = "", seed: int = 0) -> dict[str, torch.Tensor]:
    """ComfyUI's scaled fp8: each 2-D weight under `prefix` stored as weight / scale in fp8 with a
    float32 `scale_weight` beside it, and an empty `scaled_fp8` marker. Real files use max|w| / 448,
    well below 1 for trained weights; these are powers of two below 1, so an fp8_exact model's weights
    only move up the fp8 range (never into its coarser subnormals) and come back exactly."""
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if key.startswith(prefix) and key.endswith(".weight") and value.ndim == 2:
            scale = torch.tensor(2.0 ** int(torch.randint(-4, 0, (), generator=generator)), dtype=torch.float32)
            out[key] = (value.float() / scale).to(FP8)
            out[key[: -len("weight")] + "scale_weight"] = scale
        elif value.is_floating_point():
            out[key] = value.to(torch.bfloat16).contiguous()
        else:
            out[key] = value
    out[prefix + "scaled_fp8"] = torch.empty(0, dtype=FP8)
    return out


def write(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    path = Path(path)
    save_file(tensors, str(path), metadata=metadata)
    return path


def write_flux_parts(model, folder: str | Path, dtype: torch.dtype = torch.bfloat16) -> SimpleNamespace:
    """ComfyUI's split files of `model`: the transformer (BFL names), clip_l, t5xxl and ae."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return SimpleNamespace(
        transformer=write(stored(transformer_bfl(model), dtype), folder / "flux1-dev.safetensors"),
        clip_l=write(stored(clip_l_tensors(model), torch.float16), folder / "clip_l.safetensors"),
        t5=write(stored(t5_tensors(model), torch.float16), folder / "t5xxl_fp16.safetensors"),
        vae=write(stored(vae_tensors(model), torch.float32), folder / "ae.safetensors"),
    )


def write_gguf(model, path: str | Path, quant: str = "Q8_0") -> Path:
    """city96's Flux GGUF layout: BFL names, `quant` for matrices whose rows fill its blocks,
    F32 for the rest (biases, norm scales: what his converter keeps unquantized)."""
    import gguf
    import numpy as np

    path = Path(path)
    qtype = getattr(gguf.GGMLQuantizationType, quant)
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    writer = gguf.GGUFWriter(str(path), arch="flux")
    writer.add_file_type(int(qtype))
    for name, tensor in transformer_bfl(model).items():
        data = tensor.detach().float().numpy()
        if data.ndim == 2 and data.shape[-1] % block == 0:
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(name, data.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_nf4_like(path: str | Path) -> Path:
    """A few tensors as bitsandbytes-NF4 Flux files carry them (Forge's flux1-dev-bnb-nf4)."""
    p = COMFY_TRANSFORMER
    tensors = {
        p + "img_in.weight": torch.zeros(32, 64, dtype=torch.bfloat16),
        p + "vector_in.in_layer.weight": torch.zeros(32, 32, dtype=torch.bfloat16),
        p + "double_blocks.0.img_attn.qkv.weight": torch.zeros(1536, 1, dtype=torch.uint8),
        p + "double_blocks.0.img_attn.qkv.weight.absmax": torch.zeros(48),
        p + "double_blocks.0.img_attn.qkv.weight.quant_map": torch.zeros(16),
        p + "double_blocks.0.img_attn.qkv.weight.quant_state.bitsandbytes__nf4": torch.zeros(100, dtype=torch.uint8),
        p + "final_layer.linear.weight": torch.zeros(64, 32, dtype=torch.bfloat16),
    }
    return write(tensors, path)
