"""Building a diffusers Flux pipeline offline from the files artists have.

Sources: an all-in-one file (ComfyUI/Forge), a transformer file (BFL or diffusers names; fp8,
scaled fp8 or GGUF) with separate CLIP-L / T5-XXL / VAE files, or a diffusers folder. Configs come
from resources/model-configs/flux-* when the file has the official shapes and are read off the
tensors otherwise (fine-tunes at reduced depth, the tiny test models); tokenizers come from
resources/. Nothing touches the network.

Memory: each part is read tensor by tensor from the file (safetensors' safe_open) straight into a
model built on the meta device (`load_state_dict(assign=True)`), so nothing is held twice. fp8
parts stay fp8 in memory: their linear and conv layers are cast to the compute dtype one layer at
a time around each forward (diffusers' layerwise casting); the few other weights (norm scales,
T5's embedding) are kept in the compute dtype. ComfyUI's scaled fp8 is dequantized into the
compute dtype while loading (a scaled-fp8 linear layer that keeps fp8 is left for later).
GGUF transformers load through diffusers' GGUF quantizer (weights stay quantized, dequantized per
layer at compute time).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import init_empty_weights
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    FluxFillPipeline,
    FluxImg2ImgPipeline,
    FluxInpaintPipeline,
    FluxPipeline,
    FluxTransformer2DModel,
)
from diffusers.hooks import apply_layerwise_casting
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from safetensors import safe_open
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from studio.core.errors import ErrorKind, StudioError
from studio.core.models import flux_detect as fd
from studio.core.models.flux_detect import FluxFile
from studio.core.models.safetensors_header import read_header
from studio.engine.families.base import configs_root
from studio.engine.flux_convert import bfl_to_diffusers
from studio.engine.flux_tokenizers import flux_clip_tokenizer, t5_tokenizer

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
_STORAGE = {"fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
CLIP_HEAD_WIDTH = 64  # CLIP-L: 768 wide, 12 heads; the head count is not in the tensors
MODES = ("txt2img", "img2img", "inpaint")


def rope_axes(head_dim: int) -> list[int]:
    """Flux's rotary axes (time, height, width) for an attention head of `head_dim`: (16, 56, 56)
    for the real 128; narrower test models keep the same shape of split, in even sizes."""
    if head_dim == 128:
        return [16, 56, 56]
    first = 2 * max(1, head_dim // 16)
    second = (head_dim - first) // 4 * 2
    return [first, second, head_dim - first - second]


def config_folder(variant: str) -> Path:
    return configs_root() / f"flux-{variant}"


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# -- reading tensors -------------------------------------------------------------------------------
def read_tensors(path: Path, prefix: str = "", keep: Callable[[str], bool] | None = None) -> dict[str, torch.Tensor]:
    """The tensors under `prefix` (prefix removed), read one at a time in their stored dtype."""
    out: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as handle:
        for name in handle.keys():  # noqa: SIM118  (safe_open is not a mapping)
            if name.startswith(prefix) and (keep is None or keep(name[len(prefix) :])):
                out[name[len(prefix) :]] = handle.get_tensor(name)
    return out


def _dequantize_scaled(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """ComfyUI's scaled fp8: weight * scale_weight, in `dtype`; the scale keys and marker dropped."""
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if name.endswith((".scale_weight", ".scale_input")) or name == "scaled_fp8":
            continue
        scale = state.get(name[: -len("weight")] + "scale_weight") if name.endswith(".weight") else None
        out[name] = (value.to(torch.float32) * scale.to(torch.float32)).to(dtype) if scale is not None else value
    return out


def _place(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str, ignore: tuple[str, ...] = ()) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    unexpected = [k for k in unexpected if not k.startswith(ignore)]
    if missing or unexpected:
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"The {what} in the file does not match its own shapes ({len(missing)} missing, {len(unexpected)} unexpected "
            f"tensors, e.g. {(missing or unexpected)[0]}).",
            "The file may be damaged or a model the studio does not know; download it again.",
        )


def _settle_dtype(model: torch.nn.Module, dtype: torch.dtype, keep: tuple[str, ...] = ()) -> None:
    """fp8 weights of linear and conv layers stay fp8 and are cast per layer around each forward;
    everything else, and the layers whose names match a `keep` pattern, is kept in `dtype`.
    Without fp8 weights the whole model goes to `dtype`."""
    storage = next((p.dtype for p in model.parameters() if p.dtype in FP8_DTYPES), None)
    if storage is None:
        torch.nn.Module.to(model, dtype)  # diffusers' own .to() warns about fp32 modules Flux has none of
        return
    castable = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    for module_name, module in model.named_modules():
        if isinstance(module, castable) and not any(re.search(k, module_name) for k in keep):
            continue
        for name, param in list(module.named_parameters(recurse=False)):
            if param.dtype != dtype:
                setattr(module, name, torch.nn.Parameter(param.to(dtype), requires_grad=False))
    # Biases and the odd bf16 matrix of an fp8 file go to fp8 too: each layer is one storage dtype.
    # Embeddings stay in `dtype`: transformers' text encoders report their first parameter's dtype
    # (the token embedding) and the pipeline casts prompt embeddings to it.
    apply_layerwise_casting(
        model, storage_dtype=storage, compute_dtype=dtype, skip_modules_pattern=keep, skip_modules_classes=(torch.nn.Embedding,)
    )


# -- configs from the tensors ----------------------------------------------------------------------
def _indices(names, prefix: str) -> int:
    found = {name[len(prefix) :].split(".", 1)[0] for name in names if name.startswith(prefix)}
    return len([i for i in found if i.isdigit()])


def transformer_config(state: dict[str, torch.Tensor], variant: str) -> dict:
    """FluxTransformer2DModel's config for a diffusers-layout state dict: the shipped one when the
    shapes are the official ones, else read off the tensors (depth, widths, heads)."""
    shape = {name: tuple(getattr(value, "quant_shape", value.shape)) for name, value in state.items()}
    hidden, in_channels = shape["x_embedder.weight"]
    head_dim = shape.get("transformer_blocks.0.attn.norm_q.weight", shape.get("single_transformer_blocks.0.attn.norm_q.weight"))
    head = head_dim[0] if head_dim else 128
    out = shape["proj_out.weight"][0]
    derived = {
        "_class_name": "FluxTransformer2DModel",
        "attention_head_dim": head,
        "axes_dims_rope": rope_axes(head),
        "guidance_embeds": "time_text_embed.guidance_embedder.linear_1.weight" in shape,
        "in_channels": in_channels,
        "joint_attention_dim": shape["context_embedder.weight"][1],
        "num_attention_heads": hidden // head,
        "num_layers": _indices(shape, "transformer_blocks."),
        "num_single_layers": _indices(shape, "single_transformer_blocks."),
        "out_channels": None if out == in_channels else out,
        "patch_size": 1,
        "pooled_projection_dim": shape["time_text_embed.text_embedder.linear_1.weight"][1],
    }
    shipped = _read_json(config_folder(variant) / "transformer" / "config.json")
    return shipped if shipped == derived else derived


def clip_config(state: dict[str, torch.Tensor]) -> CLIPTextConfig:
    config = CLIPTextConfig.from_pretrained(str(config_folder("dev") / "text_encoder"), local_files_only=True)
    vocab, width = state["embeddings.token_embedding.weight"].shape
    config.vocab_size, config.hidden_size = vocab, width
    config.max_position_embeddings = state["embeddings.position_embedding.weight"].shape[0]
    config.intermediate_size = state["encoder.layers.0.mlp.fc1.weight"].shape[0]
    config.num_hidden_layers = _indices(state, "encoder.layers.")
    config.num_attention_heads = max(1, width // CLIP_HEAD_WIDTH)
    config.projection_dim = width
    return config


def t5_config(state: dict[str, torch.Tensor]) -> T5Config:
    config = T5Config.from_pretrained(str(config_folder("dev") / "text_encoder_2"), local_files_only=True)
    vocab, width = state["shared.weight"].shape
    inner = state["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]
    buckets, heads = state["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].shape
    config.vocab_size, config.d_model, config.num_heads, config.d_kv = vocab, width, heads, inner // heads
    config.d_ff = state["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"].shape[0]
    config.num_layers = config.num_decoder_layers = _indices(state, "encoder.block.")
    config.relative_attention_num_buckets = buckets
    return config


def vae_config(state: dict[str, torch.Tensor]) -> dict:
    """AutoencoderKL's config for a BFL/LDM-layout autoencoder: the shipped Flux VAE's unless the
    widths or depth differ (group norm keeps 32 groups: not in the tensors)."""
    config = _read_json(config_folder("dev") / "vae" / "config.json")
    levels = _indices(state, "encoder.down.")
    channels = [state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] for i in range(levels)]
    config["block_out_channels"] = channels
    config["down_block_types"] = ["DownEncoderBlock2D"] * levels
    config["up_block_types"] = ["UpDecoderBlock2D"] * levels
    config["layers_per_block"] = _indices(state, "encoder.down.0.block.")
    config["latent_channels"] = state["decoder.conv_in.weight"].shape[1]
    config["use_quant_conv"] = "quant_conv.weight" in state
    config["use_post_quant_conv"] = "post_quant_conv.weight" in state
    return config


# -- the parts ---------------------------------------------------------------------------------
def load_transformer(flux: FluxFile, dtype: torch.dtype) -> FluxTransformer2DModel:
    if flux.gguf_quant:
        return _load_gguf_transformer(flux, dtype)
    state = read_tensors(flux.path, flux.prefix, keep=lambda name: "." in name)  # drops the bare `scaled_fp8` marker
    if flux.scaled_fp8:
        state = _dequantize_scaled(state, dtype)
    if flux.layout == fd.BFL:
        state = bfl_to_diffusers(state)
    assert flux.variant is not None
    with init_empty_weights():
        model = FluxTransformer2DModel.from_config(transformer_config(state, flux.variant))
    _place(model, state, "Flux transformer")
    _settle_dtype(model, dtype)
    return model.eval()


def _load_gguf_transformer(flux: FluxFile, dtype: torch.dtype) -> FluxTransformer2DModel:
    from diffusers import GGUFQuantizationConfig
    from diffusers.models.model_loading_utils import load_gguf_checkpoint

    state = bfl_to_diffusers(load_gguf_checkpoint(str(flux.path), return_tensors=True))
    assert flux.variant is not None
    config = transformer_config(state, flux.variant)
    with tempfile.TemporaryDirectory(prefix="flux-config-") as folder:
        (Path(folder) / "transformer").mkdir()
        (Path(folder) / "transformer" / "config.json").write_text(json.dumps(config), encoding="utf-8")
        model = FluxTransformer2DModel.from_single_file(
            state,
            config=folder,
            subfolder="transformer",
            local_files_only=True,
            torch_dtype=dtype,
            quantization_config=GGUFQuantizationConfig(compute_dtype=dtype),
        )
    return model.eval()


def load_clip_l(path: Path, prefix: str, dtype: torch.dtype) -> CLIPTextModel:
    full = prefix + "text_model."
    state = read_tensors(path, full)
    state.pop("embeddings.position_ids", None)
    with init_empty_weights():
        model = CLIPTextModel(clip_config(state))
    _place(model, state, "CLIP-L text encoder")
    _settle_dtype(model, dtype)
    return model.eval()


def load_t5(path: Path, prefix: str, dtype: torch.dtype, scaled: bool = False) -> T5EncoderModel:
    state = read_tensors(path, prefix, keep=lambda name: name.startswith(("shared.", "encoder.")) or name == "scaled_fp8")
    if scaled:
        state = _dequantize_scaled(state, dtype)
    state.pop("scaled_fp8", None)
    if "shared.weight" not in state and "encoder.embed_tokens.weight" in state:
        state["shared.weight"] = state["encoder.embed_tokens.weight"]
    state["encoder.embed_tokens.weight"] = state["shared.weight"]  # tied: one tensor for both names
    with init_empty_weights():
        model = T5EncoderModel(t5_config(state))
    _place(model, state, "T5-XXL text encoder")
    # T5 casts its feed-forward activations to the output projection's dtype before using it
    # (transformers keeps `wo` out of low precision for that reason): `wo` computes as it is.
    _settle_dtype(model, dtype, keep=(r"\.wo$",))
    model.encoder.embed_tokens.weight = model.shared.weight  # one tensor again if settling copied it
    return model.eval()


def load_vae(path: Path, prefix: str, dtype: torch.dtype) -> AutoencoderKL:
    state = read_tensors(
        path, prefix, keep=lambda name: name.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv."))
    )
    config = vae_config(state)
    if "encoder.down.0.block.0.conv1.weight" in state:  # the BFL/LDM names; diffusers-named files load as they are
        state = convert_ldm_vae_checkpoint(state, config)
    with init_empty_weights():
        model = AutoencoderKL.from_config(config)
    _place(model, state, "Flux VAE")
    torch.nn.Module.to(model, dtype)
    return model.eval()


# -- the pipeline --------------------------------------------------------------------------------
def _missing(kind: str, flux: FluxFile) -> StudioError:
    what = {
        fd.CLIP_L: ("the CLIP-L text encoder (clip_l.safetensors)", "models/text_encoders"),
        fd.T5: ("the T5-XXL text encoder (t5xxl_fp16.safetensors or t5xxl_fp8_e4m3fn.safetensors)", "models/text_encoders"),
        fd.VAE: ("the Flux VAE (ae.safetensors)", "models/vae"),
    }[kind]
    return StudioError(
        ErrorKind.BAD_MODEL,
        f"{flux.path.name} holds only the Flux transformer and needs {what[0]} beside it.",
        f"Put that file in your {what[1]} folder (as ComfyUI keeps it) or choose it with the model.",
    )


_PART_NAMES = {fd.CLIP_L: "a CLIP-L text encoder", fd.T5: "a T5-XXL text encoder", fd.VAE: "a Flux VAE"}


def _part(path: str | Path | None, kind: str, transformer: FluxFile) -> FluxFile | None:
    if path is None:
        return None
    found = fd.inspect_flux_path(path)
    if found is None or found.kind != kind:
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{Path(path).name} is not {_PART_NAMES[kind]}.",
            "Choose the file by what it is; its name does not matter.",
        )
    return found


def pipeline_class(variant: str | None):
    return FluxFillPipeline if variant == fd.FILL else FluxPipeline


def load_flux_pipeline(
    model: str | Path,
    *,
    clip_l: str | Path | None = None,
    t5: str | Path | None = None,
    vae: str | Path | None = None,
    dtype: torch.dtype = torch.bfloat16,
) -> FluxPipeline | FluxFillPipeline:
    """A Flux pipeline (FluxFillPipeline for a Fill model) on the CPU in `dtype` (fp8 parts stay fp8,
    GGUF stays quantized). Separate part files override the ones inside an all-in-one file."""
    model = Path(model)
    if model.is_dir():
        return load_flux_folder(model, dtype)
    flux = fd.inspect_flux_path(model)
    if flux is None or flux.kind not in (fd.TRANSFORMER, fd.ALL_IN_ONE):
        raise StudioError(
            ErrorKind.BAD_MODEL, f"{model.name} is not a Flux model.", "Choose a Flux transformer or all-in-one file."
        )
    sources: dict[str, tuple[Path, str, FluxFile | None]] = {}
    for kind, given, inside, prefix in (
        (fd.CLIP_L, clip_l, flux.has_clip, fd.COMFY_CLIP_L),
        (fd.T5, t5, flux.has_t5, fd.COMFY_T5),
        (fd.VAE, vae, flux.has_vae, fd.COMFY_VAE),
    ):
        part = _part(given, kind, flux)
        if part is not None:
            sources[kind] = (part.path, "", part)
        elif inside:
            sources[kind] = (flux.path, prefix, None)
        else:
            raise _missing(kind, flux)
    t5_path, t5_prefix, t5_file = sources[fd.T5]
    t5_scaled = t5_file.scaled_fp8 if t5_file else _scaled_part(flux.path, fd.COMFY_T5)
    config = config_folder(flux.variant or fd.DEV)
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(_read_json(config / "scheduler" / "scheduler_config.json"))
    parts = dict(
        scheduler=scheduler,
        vae=load_vae(sources[fd.VAE][0], sources[fd.VAE][1], dtype),
        text_encoder=load_clip_l(sources[fd.CLIP_L][0], sources[fd.CLIP_L][1], dtype),
        tokenizer=flux_clip_tokenizer(),
        text_encoder_2=load_t5(t5_path, t5_prefix, dtype, scaled=t5_scaled),
        tokenizer_2=t5_tokenizer(),
        transformer=load_transformer(flux, dtype),
    )
    _check_widths(flux, parts)
    return pipeline_class(flux.variant)(**parts)


def _scaled_part(path: Path, prefix: str) -> bool:
    header = read_header(path)
    return prefix + "scaled_fp8" in header.tensors or any(
        k.startswith(prefix) and k.endswith(".scale_weight") for k in header.tensors
    )


def _check_widths(flux: FluxFile, parts: dict) -> None:
    """Text encoders must give what the transformer reads: T5's width its text input, CLIP's its pooled input."""
    config = parts["transformer"].config
    for key, want, got in (
        ("text_encoder_2", config.joint_attention_dim, parts["text_encoder_2"].config.d_model),
        ("text_encoder", config.pooled_projection_dim, parts["text_encoder"].config.hidden_size),
    ):
        if want != got:
            name = "T5-XXL" if key == "text_encoder_2" else "CLIP-L"
            raise StudioError(
                ErrorKind.BAD_MODEL,
                f"The {name} text encoder chosen for {flux.path.name} is {got} wide; this Flux model reads {want}.",
                f"Choose the {name} file made for Flux.1 (ComfyUI's models/text_encoders).",
            )


def load_flux_folder(folder: Path, dtype: torch.dtype) -> FluxPipeline | FluxFillPipeline:
    """A diffusers folder (model_index.json): its own configs and tokenizers, loaded offline."""
    index = _read_json(folder / "model_index.json")
    cls = FluxFillPipeline if index.get("_class_name") == "FluxFillPipeline" else FluxPipeline
    return cls.from_pretrained(str(folder), local_files_only=True, dtype=dtype)


def mode_pipeline(pipe: FluxPipeline | FluxFillPipeline, mode: str):
    """The pipeline for `mode` on the same loaded components (no copy, no reload). A Fill model runs
    every mode through FluxFillPipeline (txt2img as a fully masked inpaint, as for SD inpainting models)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
    if isinstance(pipe, FluxFillPipeline):
        return pipe
    cls = {"txt2img": FluxPipeline, "img2img": FluxImg2ImgPipeline, "inpaint": FluxInpaintPipeline}[mode]
    if type(pipe) is cls:
        return pipe
    components = {k: v for k, v in pipe.components.items() if k not in ("image_encoder", "feature_extractor")}
    return cls(**components)
