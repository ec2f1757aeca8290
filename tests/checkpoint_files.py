"""Single-file checkpoints for tests: tiny models written in the original (LDM / A1111) layout,
and the damaged or foreign files a model loader meets in the wild.

`write_single_file` is the inverse of diffusers' single-file conversion
(diffusers.loaders.single_file_utils; its reverse is diffusers'
scripts/convert_diffusers_to_original_stable_diffusion.py and ..._sdxl.py). It is checked against
diffusers' own forward conversion in tests/test_checkpoint_files.py, never against itself.

Key layout per family:
  UNet            model.diffusion_model.{time_embed,label_emb,input_blocks,middle_block,output_blocks,out}.*
  VAE             first_stage_model.{encoder,decoder}.{down,mid,up}.*, quant_conv, post_quant_conv
  SD 1.x text     cond_stage_model.transformer.text_model.*            (Hugging Face CLIP layout)
  SD 2.x text     cond_stage_model.model.*                             (OpenCLIP layout)
  SDXL text       conditioner.embedders.0.transformer.text_model.*     (CLIP-L, Hugging Face layout)
                  conditioner.embedders.1.model.*                      (OpenCLIP bigG layout)
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch
from safetensors.torch import save_file

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_TEXT_PREFIX = "cond_stage_model.transformer.text_model."
SD2_TEXT_PREFIX = "cond_stage_model.model."
SDXL_TEXT_PREFIX = "conditioner.embedders.0.transformer.text_model."
SDXL_TEXT_2_PREFIX = "conditioner.embedders.1.model."

# Tensors real files carry that no diffusers component has. A loader must ignore them.
#   - CLIP's position_ids buffer (int64 [1, 77]): SD 1.x files saved by LDM / A1111.
#   - OpenCLIP's logit_scale (a scalar): SD 2.x and SDXL files (open_clip keeps it when it drops
#     the vision tower). SD 2.x also keeps text_projection, which its diffusers encoder lacks.
#   - The DDPM noise schedule buffers of LDM's LatentDiffusion (SD 1.x and 2.x; 1000 values each).
DDPM_BUFFERS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)

_RESNET_RENAMES = (
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("time_emb_proj.", "emb_layers.1."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("conv_shortcut.", "skip_connection."),
)
_UNET_TOP = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "add_embedding.linear_1.": "label_emb.0.0.",
    "add_embedding.linear_2.": "label_emb.0.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
_VAE_ATTENTION_RENAMES = (
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
)


# --- family and component layouts ------------------------------------------------------------


def pipeline_family(pipe) -> str:
    """"sd1", "sd2" or "sdxl", from the pipeline's components: SDXL has a second text encoder;
    SD 2.x's OpenCLIP encoder uses plain GELU where CLIP-L (SD 1.x) uses quick GELU."""
    if getattr(pipe, "text_encoder_2", None) is not None:
        return "sdxl"
    return "sd2" if pipe.text_encoder.config.hidden_act == "gelu" else "sd1"


def _unet_prefix_map(config) -> dict[str, str]:
    """diffusers block prefix -> LDM block prefix, walked the way LDM's UNetModel numbers blocks:
    input_blocks count every resnet(+attention) and each downsampler; output_blocks hold
    layers_per_block + 1 resnets per level, the level's upsampler riding on its last one."""
    levels = len(config.block_out_channels)
    per_level = config.layers_per_block
    mapping: dict[str, str] = {}
    index = 1
    for i in range(levels):
        for j in range(per_level):
            mapping[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{index}.0."
            mapping[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{index}.1."
            index += 1
        if i < levels - 1:
            mapping[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{index}.0.op."
            index += 1
    mapping["mid_block.resnets.0."] = "middle_block.0."
    mapping["mid_block.attentions.0."] = "middle_block.1."
    mapping["mid_block.resnets.1."] = "middle_block.2."
    index = 0
    for i, block_type in enumerate(config.up_block_types):
        has_attention = "CrossAttn" in block_type
        for j in range(per_level + 1):
            mapping[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{index}.0."
            mapping[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{index}.1."
            if j == per_level and i < levels - 1:
                mapping[f"up_blocks.{i}.upsamplers.0.conv."] = f"output_blocks.{index}.{2 if has_attention else 1}.conv."
            index += 1
    return mapping


def unet_to_original(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """A diffusers UNet2DConditionModel state dict in LDM names (without "model.diffusion_model.").
    Transformer blocks keep their names (LDM's SpatialTransformer uses the same ones)."""
    blocks = _unet_prefix_map(config)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = _replace_prefix(key, _UNET_TOP)
        if new is None:
            for old_prefix, ldm_prefix in blocks.items():
                if key.startswith(old_prefix):
                    rest = key[len(old_prefix):]
                    if ".resnets." in old_prefix:
                        rest = _rename_first(rest, _RESNET_RENAMES)
                    new = ldm_prefix + rest
                    break
        if new is None:
            raise KeyError(f"no LDM name for UNet tensor {key}")
        out[new] = value
    return out


def vae_to_original(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL state dict in LDM names (without "first_stage_model."). The
    mid-block attention is stored as 1x1 convolutions ([C, C, 1, 1]) as the original has it."""
    levels = len(config.block_out_channels)
    prefixes = {
        "encoder.conv_norm_out.": "encoder.norm_out.",
        "decoder.conv_norm_out.": "decoder.norm_out.",
    }
    for side in ("encoder", "decoder"):
        for j in range(2):
            prefixes[f"{side}.mid_block.resnets.{j}."] = f"{side}.mid.block_{j + 1}."
        prefixes[f"{side}.mid_block.attentions.0."] = f"{side}.mid.attn_1."
    for i in range(levels):
        prefixes[f"encoder.down_blocks.{i}.resnets."] = f"encoder.down.{i}.block."
        prefixes[f"encoder.down_blocks.{i}.downsamplers.0."] = f"encoder.down.{i}.downsample."
        # The decoder's levels run the other way round in LDM: up.0 is the full-resolution one.
        prefixes[f"decoder.up_blocks.{i}.resnets."] = f"decoder.up.{levels - 1 - i}.block."
        prefixes[f"decoder.up_blocks.{i}.upsamplers.0."] = f"decoder.up.{levels - 1 - i}.upsample."
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = _replace_prefix(key, prefixes) or key  # conv_in/out, quant_conv, post_quant_conv
        if ".mid.attn_1." in new:
            new = _rename_first(new, _VAE_ATTENTION_RENAMES, anywhere=True)
            if value.ndim == 2:
                value = value[:, :, None, None]
        new = new.replace(".conv_shortcut.", ".nin_shortcut.")
        out[new] = value
    return out


def clip_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers CLIPTextModel state dict in the "text_model.*" names checkpoints use
    (transformers >= 5.6 dropped the text_model wrapper from CLIPTextModel's own names)."""
    return {"text_model." + key.removeprefix("text_model."): value for key, value in state.items()}


def open_clip_to_original(state: dict[str, torch.Tensor], real_extras: bool = True) -> dict[str, torch.Tensor]:
    """A transformers CLIP text model (with or without projection) in OpenCLIP's names: fused
    q/k/v (attn.in_proj_*), resblocks, ln_final, and text_projection as a plain [width, dim]
    matrix (x @ text_projection), i.e. the transpose of the Linear weight diffusers holds.
    real_extras adds logit_scale and, for an encoder without projection (SD 2.x), the unused
    text_projection real files keep."""
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        key = key.removeprefix("text_model.")
        if key == "embeddings.token_embedding.weight":
            out["token_embedding.weight"] = value
        elif key == "embeddings.position_embedding.weight":
            out["positional_embedding"] = value
        elif key.startswith("final_layer_norm."):
            out["ln_final." + key.split(".")[-1]] = value
        elif key == "text_projection.weight":
            out["text_projection"] = value.T.contiguous()
        elif key.startswith("encoder.layers."):
            _, _, layer, module, *rest = key.split(".")
            base = f"transformer.resblocks.{layer}."
            name = ".".join(rest)
            if module == "self_attn" and rest[0] in ("q_proj", "k_proj", "v_proj"):
                fused.setdefault(f"{base}attn.in_proj_{rest[1]}", {})[rest[0]] = value
            elif module == "self_attn":
                out[f"{base}attn.{name}"] = value  # out_proj.*
            elif module == "mlp":
                out[f"{base}mlp.{name.replace('fc1.', 'c_fc.').replace('fc2.', 'c_proj.')}"] = value
            else:
                out[f"{base}{ {'layer_norm1': 'ln_1', 'layer_norm2': 'ln_2'}[module] }.{name}"] = value
        else:
            raise KeyError(f"no OpenCLIP name for text encoder tensor {key}")
    for key, parts in fused.items():
        out[key] = torch.cat([parts["q_proj"], parts["k_proj"], parts["v_proj"]], dim=0)
    if real_extras:
        out["logit_scale"] = torch.tensor(math.log(1 / 0.07))
        if "text_projection" not in out:
            # SD 2.x files keep OpenCLIP-H's projection though nothing uses it; diffusers reads
            # its first dimension as the encoder width when it splits in_proj.
            width = out["positional_embedding"].shape[-1]
            out["text_projection"] = torch.eye(width)
    return out


def ddpm_buffers(scheduler) -> dict[str, torch.Tensor]:
    """LDM LatentDiffusion's schedule buffers (register_schedule) for the scheduler's betas."""
    betas = scheduler.betas.to(torch.float64)
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
    buffers = {
        "betas": betas,
        "alphas_cumprod": alphas_cumprod,
        "alphas_cumprod_prev": alphas_cumprod_prev,
        "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).sqrt(),
        "log_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).log(),
        "sqrt_recip_alphas_cumprod": (1.0 / alphas_cumprod).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / alphas_cumprod - 1).sqrt(),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": posterior_variance.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * alphas_cumprod_prev.sqrt() / (1.0 - alphas_cumprod),
        "posterior_mean_coef2": (1.0 - alphas_cumprod_prev) * (1.0 - betas).sqrt() / (1.0 - alphas_cumprod),
    }
    assert tuple(buffers) == DDPM_BUFFERS
    return {key: value.to(torch.float32) for key, value in buffers.items()}


def ema_key(unet_key: str) -> str:
    """LDM's LitEma name for a UNet tensor: "model." dropped, the remaining dots removed."""
    return "model_ema." + unet_key.removeprefix("model.").replace(".", "")


def original_state_dict(
    pipe,
    *,
    include_vae: bool = True,
    include_ema: bool = False,
    ema_shift: float = 0.0,
    real_extras: bool = True,
    family: str | None = None,
) -> dict[str, torch.Tensor]:
    """Every tensor of `pipe` under its original single-file name (fp32, as the models hold them)."""
    family = family or pipeline_family(pipe)
    tensors: dict[str, torch.Tensor] = {}
    unet = unet_to_original(pipe.unet.state_dict(), pipe.unet.config)
    tensors.update({UNET_PREFIX + key: value for key, value in unet.items()})
    if include_vae:
        vae = vae_to_original(pipe.vae.state_dict(), pipe.vae.config)
        tensors.update({VAE_PREFIX + key: value for key, value in vae.items()})
    if family == "sd1":
        text = clip_to_original(pipe.text_encoder.state_dict())
        tensors.update({"cond_stage_model.transformer." + key: value for key, value in text.items()})
    elif family == "sd2":
        text = open_clip_to_original(pipe.text_encoder.state_dict(), real_extras)
        tensors.update({SD2_TEXT_PREFIX + key: value for key, value in text.items()})
    elif family == "sdxl":
        text = clip_to_original(pipe.text_encoder.state_dict())
        tensors.update({"conditioner.embedders.0.transformer." + key: value for key, value in text.items()})
        text_2 = open_clip_to_original(pipe.text_encoder_2.state_dict(), real_extras)
        tensors.update({SDXL_TEXT_2_PREFIX + key: value for key, value in text_2.items()})
    else:
        raise ValueError(f"unknown family {family!r}")
    if real_extras and family in ("sd1", "sd2"):
        tensors.update(ddpm_buffers(pipe.scheduler))
        if family == "sd1":
            positions = pipe.text_encoder.config.max_position_embeddings
            tensors[SD1_TEXT_PREFIX + "embeddings.position_ids"] = torch.arange(positions, dtype=torch.int64)[None]
    if include_ema:
        tensors["model_ema.decay"] = torch.tensor(0.9999)
        tensors["model_ema.num_updates"] = torch.tensor(1000, dtype=torch.int32)
        for key in [k for k in tensors if k.startswith(UNET_PREFIX)]:
            tensors[ema_key(key)] = tensors[key] + ema_shift if tensors[key].is_floating_point() else tensors[key]
    return tensors


def write_single_file(
    pipe,
    path: str | Path,
    *,
    dtype: torch.dtype = torch.float16,
    include_vae: bool = True,
    include_ema: bool = False,
    ema_shift: float = 0.0,
    real_extras: bool = True,
    extra: dict[str, torch.Tensor] | None = None,
    metadata: dict[str, str] | None = None,
    family: str | None = None,
) -> Path:
    """Write `pipe` as one original-layout .safetensors file and return its path.

    dtype: what floating tensors are stored as (real files are fp16 or fp32; integers stay).
    include_ema: add LDM training-checkpoint EMA copies (model_ema.*), shifted by `ema_shift` so a
      test can tell which set a loader used. real_extras: also write the tensors real files carry
      that no diffusers model has (see DDPM_BUFFERS and the notes above it).
    extra: more tensors, e.g. {"v_pred": torch.tensor([])} as A1111 marks v-prediction SDXL files.
    """
    tensors = original_state_dict(
        pipe, include_vae=include_vae, include_ema=include_ema, ema_shift=ema_shift,
        real_extras=real_extras, family=family,
    )
    tensors.update(extra or {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(_stored(tensors, dtype), str(path), metadata=metadata)
    return path


def _stored(tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Owned, contiguous copies (safetensors refuses shared storage) with floats in `dtype`."""
    return {
        key: (value.detach().to(dtype) if value.is_floating_point() else value.detach()).contiguous().clone()
        for key, value in tensors.items()
    }


def _replace_prefix(key: str, prefixes: dict[str, str]) -> str | None:
    for old, new in prefixes.items():
        if key.startswith(old):
            return new + key[len(old):]
    return None


def _rename_first(text: str, renames, anywhere: bool = False) -> str:
    for old, new in renames:
        if text.startswith(old):
            return new + text[len(old):]
        if anywhere and f".{old}" in text:
            return text.replace(f".{old}", f".{new}", 1)
    return text


# --- bad and foreign files -------------------------------------------------------------------


def _small_tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        UNET_PREFIX + "input_blocks.0.0.weight": torch.randn(32, 4, 3, 3, generator=generator),
        UNET_PREFIX + "input_blocks.0.0.bias": torch.randn(32, generator=generator),
        UNET_PREFIX + "out.2.weight": torch.randn(4, 32, 3, 3, generator=generator),
    }


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    """A raw safetensors file: 8-byte little-endian header length, JSON header, data."""
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format pads the header to 8 bytes with spaces
    return struct.pack("<Q", len(encoded)) + encoded + data


def write_truncated(path: str | Path, source: str | Path | None = None, keep: float = 0.5) -> Path:
    """A checkpoint cut off mid-data (an interrupted download): the header is whole and lists
    every tensor, but only `keep` of the data bytes are there."""
    path = Path(path)
    if source is None:
        save_file(_small_tensors(), str(path))
        source = path
    raw = Path(source).read_bytes()
    header_end = 8 + struct.unpack("<Q", raw[:8])[0]
    path.write_bytes(raw[: header_end + int((len(raw) - header_end) * keep)])
    return path


def write_lying_offsets(path: str | Path) -> Path:
    """A well-formed header whose last tensor's data_offsets run past the end of the file."""
    data = torch.zeros(16, dtype=torch.float32).numpy().tobytes()
    header = {
        "__metadata__": {"format": "pt"},
        UNET_PREFIX + "input_blocks.0.0.bias": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]},
        UNET_PREFIX + "out.2.weight": {"dtype": "F32", "shape": [4, 32, 3, 3], "data_offsets": [64, 64 + 4 * 4 * 32 * 9]},
    }
    path = Path(path)
    path.write_bytes(safetensors_bytes(header, data))
    return path


def write_header_too_long(path: str | Path) -> Path:
    """A file whose first 8 bytes announce a header longer than the whole file."""
    path = Path(path)
    path.write_bytes(struct.pack("<Q", 10_000_000) + b'{"x":' + b" " * 59)
    return path


def write_zero_filled(path: str | Path, size: int = 4096) -> Path:
    """All zero bytes (a sparse file left by a failed copy): header length 0, no JSON."""
    path = Path(path)
    path.write_bytes(bytes(size))
    return path


def write_kohya_lora(path: str | Path, rank: int = 4, seed: int = 0) -> Path:
    """A kohya-ss LoRA for SD 1.x: lora_unet_* / lora_te_* modules, each with lora_down, lora_up
    and alpha, plus the ss_* training metadata such files carry. Shapes fit the tiny SD 1.x model."""
    generator = torch.Generator().manual_seed(seed)
    modules = {
        "lora_unet_down_blocks_0_attentions_0_proj_in": (32, 32, True),
        "lora_unet_down_blocks_0_attentions_0_proj_out": (32, 32, True),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": (32, 32, False),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k": (32, 32, False),
        "lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_attn1_to_out_0": (32, 32, False),
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj": (32, 32, False),
        "lora_te_text_model_encoder_layers_0_mlp_fc1": (32, 37, False),
    }
    tensors: dict[str, torch.Tensor] = {}
    for name, (in_features, out_features, conv) in modules.items():
        down = torch.randn(rank, in_features, generator=generator) * 0.01
        up = torch.zeros(out_features, rank)
        if conv:  # SD 1.x proj_in/proj_out are 1x1 convolutions
            down, up = down[:, :, None, None], up[:, :, None, None]
        tensors[f"{name}.lora_down.weight"] = down.to(torch.float16)
        tensors[f"{name}.lora_up.weight"] = up.to(torch.float16)
        tensors[f"{name}.alpha"] = torch.tensor(float(rank), dtype=torch.float16)
    metadata = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(float(rank)),
        "ss_base_model_version": "sd_v1",
        "ss_output_name": Path(path).stem,
    }
    path = Path(path)
    save_file(tensors, str(path), metadata=metadata)
    return path


def write_vae_only(path: str | Path, vae=None, dtype: torch.dtype = torch.float32) -> Path:
    """A standalone VAE file as they are shared (vae-ft-mse-840000 style): LDM names without the
    first_stage_model. prefix. `vae` defaults to the tiny SD 1.x VAE."""
    if vae is None:
        from studio.engine.tiny_model import build_tiny_family

        vae = build_tiny_family("sd1").vae
    path = Path(path)
    save_file(_stored(vae_to_original(vae.state_dict(), vae.config), dtype), str(path))
    return path


def write_sd3_like(path: str | Path, width: int = 64, seed: int = 0) -> Path:
    """A few tensors under SD3's MMDiT names (joint_blocks, x_embedder, context_embedder ...)."""
    generator = torch.Generator().manual_seed(seed)
    p = UNET_PREFIX
    shapes = {
        p + "x_embedder.proj.weight": (width, 16, 2, 2),
        p + "x_embedder.proj.bias": (width,),
        p + "pos_embed": (1, 64, width),
        p + "context_embedder.weight": (width, 128),
        p + "t_embedder.mlp.0.weight": (width, 256),
        p + "y_embedder.mlp.0.weight": (width, 96),
        p + "joint_blocks.0.x_block.attn.qkv.weight": (3 * width, width),
        p + "joint_blocks.0.x_block.adaLN_modulation.1.bias": (6 * width,),
        p + "joint_blocks.0.context_block.attn.qkv.weight": (3 * width, width),
        p + "joint_blocks.0.context_block.adaLN_modulation.1.bias": (6 * width,),
        p + "final_layer.linear.weight": (64, width),
    }
    return _write_random(path, shapes, generator)


def write_flux_like(path: str | Path, width: int = 64, seed: int = 0) -> Path:
    """A few tensors under Flux's names as BFL ships them (no model.diffusion_model. prefix)."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {
        "img_in.weight": (width, 64),
        "img_in.bias": (width,),
        "txt_in.weight": (width, 128),
        "time_in.in_layer.weight": (width, 256),
        "vector_in.in_layer.weight": (width, 96),
        "guidance_in.in_layer.weight": (width, 256),
        "guidance_in.in_layer.bias": (width,),
        "double_blocks.0.img_attn.qkv.weight": (3 * width, width),
        "double_blocks.0.img_attn.norm.query_norm.scale": (width // 2,),
        "double_blocks.0.img_attn.norm.key_norm.scale": (width // 2,),
        "double_blocks.0.txt_attn.qkv.weight": (3 * width, width),
        "single_blocks.0.linear1.weight": (7 * width, width),
        "final_layer.linear.weight": (64, width),
    }
    return _write_random(path, shapes, generator, torch.bfloat16)


def _write_random(path, shapes, generator, dtype: torch.dtype = torch.float16) -> Path:
    path = Path(path)
    tensors = {key: torch.randn(*shape, generator=generator).to(dtype) for key, shape in shapes.items()}
    save_file(tensors, str(path))
    return path


def write_pickled_ckpt(path: str | Path, pipe=None) -> Path:
    """An old-style .ckpt: a torch.save pickle of {"state_dict": ..., "global_step": ...}, which
    loading would unpickle (run code). `pipe` defaults to the tiny SD 1.x model."""
    if pipe is None:
        from studio.engine.tiny_model import build_tiny_family

        pipe = build_tiny_family("sd1")
    path = Path(path)
    torch.save({"state_dict": original_state_dict(pipe), "epoch": 0, "global_step": 1000}, path)
    return path
