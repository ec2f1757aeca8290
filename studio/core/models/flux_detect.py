"""What a Flux.1 file is, from its header alone: a transformer (and its variant, layout and
precision), an all-in-one checkpoint, or one of the parts ComfyUI keeps apart (CLIP-L, T5-XXL,
the 16-channel VAE). Never from the file name. Pure Python, one linear pass over the tensor names.

Layouts met in the wild:
  BFL original      double_blocks.N.*, single_blocks.N.*, img_in, txt_in, time_in, vector_in,
                    guidance_in ([dev] and Fill only), final_layer (black-forest-labs' own files,
                    city96's GGUFs, most fine-tunes)
  ComfyUI / Forge   the BFL keys under model.diffusion_model., with the text encoders under
  all-in-one        text_encoders.clip_l.transformer.text_model.* (Hugging Face CLIP layout) and
                    text_encoders.t5xxl.transformer.{shared,encoder}.* (Hugging Face T5 layout),
                    the VAE under vae.* (BFL/LDM autoencoder layout): comfy/sd.py save_checkpoint
  diffusers         transformer_blocks.N.*, single_transformer_blocks.N.*, x_embedder, context_embedder,
                    time_text_embed.guidance_embedder ([dev] and Fill only)
  ComfyUI scaled    fp8 weights plus a float32 `<layer>.scale_weight` per linear layer (real weight =
  fp8               weight * scale_weight) and an empty `scaled_fp8` tensor whose dtype names the format

Variants: [schnell] has no guidance embedding; Fill's image input takes 384 features (64 latent +
320 mask and masked-image features) where [dev] and [schnell] take 64. Neither depends on how
many blocks the file has.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from studio.core.errors import ErrorKind, StudioError
from studio.core.models.gguf_header import GGUFHeader, is_gguf, read_gguf_header
from studio.core.models.safetensors_header import SafetensorsHeader, read_header

TRANSFORMER, ALL_IN_ONE, CLIP_L, T5, VAE = "transformer", "all-in-one", "clip_l", "t5", "vae"
BFL, DIFFUSERS = "bfl", "diffusers"
DEV, SCHNELL, FILL = "dev", "schnell", "fill"

COMFY_TRANSFORMER = "model.diffusion_model."
COMFY_CLIP_L = "text_encoders.clip_l.transformer."
COMFY_T5 = "text_encoders.t5xxl.transformer."
COMFY_VAE = "vae."

PACKED_LATENT = 64  # 16 latent channels x a 2x2 patch
FILL_IN = 384  # packed latents (64) + packed masked-image latents (64) + the mask packed 8x8 then 2x2 (256)
CLIP_L_WIDTH, CLIP_VOCAB = 768, 49408
OPENCLIP_WIDTHS = (1024, 1280)
T5_XXL_WIDTH, T5_VOCAB = 4096, 32128
LATENT_CHANNELS = 16

_DTYPES = {"BF16": "bf16", "F16": "fp16", "F32": "fp32", "F8_E4M3": "fp8_e4m3fn", "F8_E5M2": "fp8_e5m2"}
_NF4_MARKERS = (".absmax", ".quant_map", ".quant_state.bitsandbytes__nf4", ".quant_state.bitsandbytes__fp4", ".nested_absmax")
_HINT_FORMATS = (
    "Use the same model as fp8 or bf16 .safetensors, or as a GGUF (Q8_0, Q5_K_S, Q4_K_S) for small cards; "
    "all of those load on any machine."
)


@dataclass(frozen=True)
class FluxFile:
    """One Flux file as its header describes it."""

    path: Path
    kind: str  # TRANSFORMER, ALL_IN_ONE, CLIP_L, T5 or VAE
    variant: str | None = None  # DEV, SCHNELL or FILL (transformer and all-in-one only)
    layout: str | None = None  # BFL or DIFFUSERS, the transformer's key layout
    dtype: str = ""  # bf16, fp16, fp32, fp8_e4m3fn, fp8_e5m2, or gguf: the main part's weight matrices
    scaled_fp8: bool = False  # ComfyUI's scaled fp8: weights must be multiplied by their scale_weight
    gguf_quant: str | None = None  # the commonest quantization of a GGUF's weight matrices ("Q8_0", "Q4_K")
    has_clip: bool = False
    has_t5: bool = False
    has_vae: bool = False
    prefix: str = ""  # the main part's key prefix in the file (COMFY_TRANSFORMER in all-in-one files)
    width: int = 0  # hidden width: transformer 3072, CLIP-L 768, T5-XXL 4096; VAE: its latent channels
    text_width: int = 0  # transformer only: the T5 width it reads (4096) ...
    pooled_width: int = 0  # ... and the CLIP width of its pooled input (768)
    size_bytes: int = 0

    @property
    def guidance_distilled(self) -> bool:
        """[dev] and Fill take one guidance value ("Distilled CFG") and no negative pass."""
        return self.variant in (DEV, FILL)

    @property
    def config_name(self) -> str | None:
        """The shipped diffusers configs (resources/model-configs/<name>) for a transformer."""
        return f"flux-{self.variant}" if self.variant else None

    @property
    def label(self) -> str:
        if self.kind == CLIP_L:
            return "CLIP-L text encoder"
        if self.kind == T5:
            return "T5-XXL text encoder"
        if self.kind == VAE:
            return "Flux VAE"
        text = {DEV: "Flux.1 [dev]", SCHNELL: "Flux.1 [schnell]", FILL: "Flux.1 Fill"}.get(self.variant or "", "Flux.1")
        return text + (" (all-in-one)" if self.kind == ALL_IN_ONE else "")

    @property
    def precision(self) -> str:
        """The precision as people say it ("Q4_K GGUF", "fp8 e4m3fn (scaled)", "bf16"), for the model picker."""
        if self.gguf_quant:
            return f"{self.gguf_quant} GGUF"
        if self.dtype.startswith("fp8"):
            return "fp8 " + self.dtype[4:] + (" (scaled)" if self.scaled_fp8 else "")
        return self.dtype


class _Scan:
    """What one pass over the tensor names found, grouped by part."""

    def __init__(self) -> None:
        self.groups: dict[str, Counter[str]] = {}  # part -> dtype counts of its weight matrices
        self.scaled: set[str] = set()  # parts with ComfyUI fp8 scales ("" for a root-level `scaled_fp8`)
        self.nf4 = False

    def count(self, part: str, dtype: str, ndim: int) -> None:
        counter = self.groups.setdefault(part, Counter())
        if ndim >= 2:  # matrices and kernels say the storage format; norms and biases often stay wider
            counter[dtype] += 1
        else:
            counter.setdefault(dtype, 0)


def _part_of(name: str) -> str:
    """Which part a root-level (or prefixed) tensor name belongs to."""
    if name.startswith(COMFY_TRANSFORMER):
        return TRANSFORMER
    if name.startswith(COMFY_CLIP_L) or name.startswith("text_encoders.clip_l."):
        return CLIP_L
    if name.startswith(COMFY_T5) or name.startswith("text_encoders.t5xxl."):
        return T5
    if name.startswith(COMFY_VAE):
        return VAE
    if name.startswith(("double_blocks.", "single_blocks.", "transformer_blocks.", "single_transformer_blocks.")):
        return TRANSFORMER
    if name.startswith(("img_in.", "txt_in.", "time_in.", "vector_in.", "guidance_in.", "final_layer.")):
        return TRANSFORMER
    if name.startswith(("x_embedder.", "context_embedder.", "time_text_embed.", "norm_out.", "proj_out.")):
        return TRANSFORMER
    if name.startswith(("text_model.", "text_projection.", "logit_scale")):
        return CLIP_L
    if name.startswith(("encoder.block.", "shared.", "encoder.final_layer_norm.", "encoder.embed_tokens.")):
        return T5
    if name.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")):
        return VAE
    return ""


def inspect_flux_header(header: SafetensorsHeader) -> FluxFile | None:
    """The Flux file `header` describes, or None when it is no Flux part at all (an SD checkpoint,
    a LoRA ...). Raises StudioError for Flux-like files the studio cannot run, saying what they are."""
    names = header.tensors
    scan = _Scan()
    for name, info in names.items():
        if name.endswith(_NF4_MARKERS):
            scan.nf4 = True
        part = _part_of(name)
        if name.endswith((".scale_weight", ".scale_input")) or name == "scaled_fp8" or name.endswith(".scaled_fp8"):
            scan.scaled.add(part)
        if part:
            scan.count(part, info.dtype, len(info.shape))
    transformer = _transformer(header)
    if transformer is not None:
        prefix, layout = transformer
        if scan.nf4:
            raise StudioError(
                ErrorKind.BAD_MODEL,
                f"{header.path.name} is a Flux model quantized to NF4 with bitsandbytes, which the studio does not load "
                "(it needs a CUDA-only library and its own loader).",
                _HINT_FORMATS,
            )
        variant = _variant(header, prefix, layout)
        if layout == BFL:
            widths = (f"{prefix}img_in.weight", f"{prefix}txt_in.weight", f"{prefix}vector_in.in_layer.weight")
        else:
            widths = (
                f"{prefix}x_embedder.weight",
                f"{prefix}context_embedder.weight",
                f"{prefix}time_text_embed.text_embedder.linear_1.weight",
            )
        hidden, text, pooled = (header.shape(name) or (0, 0) for name in widths)
        has_clip = _is_clip_l(header, COMFY_CLIP_L)
        has_t5 = _is_t5_xxl(header, COMFY_T5)
        has_vae = _vae_channels(header, COMFY_VAE) == LATENT_CHANNELS
        return FluxFile(
            path=header.path,
            kind=ALL_IN_ONE if (has_clip or has_t5 or has_vae) else TRANSFORMER,
            variant=variant,
            layout=layout,
            dtype=_dominant(scan.groups.get(TRANSFORMER)),
            scaled_fp8=TRANSFORMER in scan.scaled or (not prefix and "" in scan.scaled),
            has_clip=has_clip,
            has_t5=has_t5,
            has_vae=has_vae,
            prefix=prefix,
            width=hidden[0],
            text_width=text[-1],
            pooled_width=pooled[-1],
            size_bytes=header.file_size,
        )
    if header.has_prefix(COMFY_TRANSFORMER):
        return None  # an SD-family or other checkpoint: not ours
    for kind, found, width_of in (
        (CLIP_L, _is_clip_l(header, ""), "text_model.embeddings.token_embedding.weight"),
        (T5, _is_t5_xxl(header, ""), "encoder.final_layer_norm.weight"),
    ):
        if found:
            return FluxFile(
                path=header.path,
                kind=kind,
                dtype=_dominant(scan.groups.get(kind)),
                scaled_fp8=bool(scan.scaled & {kind, ""}),
                width=(header.shape(width_of) or (0,))[-1],
                size_bytes=header.file_size,
            )
    if _vae_channels(header, "") == LATENT_CHANNELS and not scan.groups.get(TRANSFORMER):
        return FluxFile(
            path=header.path, kind=VAE, dtype=_dominant(scan.groups.get(VAE)), width=LATENT_CHANNELS, size_bytes=header.file_size
        )
    return None


def _transformer(header: SafetensorsHeader) -> tuple[str, str] | None:
    """(prefix, layout) of a Flux.1 transformer in the file, or None. Other models built on Flux's
    blocks (Chroma, Flux.2) are refused by name rather than run wrongly."""
    for prefix in (COMFY_TRANSFORMER, ""):
        if f"{prefix}double_blocks.0.img_attn.qkv.weight" in header.tensors or (
            f"{prefix}img_in.weight" in header.tensors and f"{prefix}final_layer.linear.weight" in header.tensors
        ):
            if f"{prefix}vector_in.in_layer.weight" not in header.tensors:
                raise StudioError(
                    ErrorKind.BAD_MODEL,
                    f"{header.path.name} is built on Flux's blocks but is not a Flux.1 model (Chroma or Flux.2, for example); "
                    "this version of the studio runs Flux.1 [dev], [schnell] and Fill.",
                    "Choose a Flux.1 model or a fine-tune of one.",
                )
            return prefix, BFL
        text_embedder = f"{prefix}time_text_embed.text_embedder.linear_1.weight"
        if f"{prefix}x_embedder.weight" in header.tensors and text_embedder in header.tensors:
            return prefix, DIFFUSERS
    return None


def _variant(header: SafetensorsHeader, prefix: str, layout: str) -> str:
    if layout == BFL:
        img_in, guidance = f"{prefix}img_in.weight", f"{prefix}guidance_in.in_layer.weight"
    else:
        img_in, guidance = f"{prefix}x_embedder.weight", f"{prefix}time_text_embed.guidance_embedder.linear_1.weight"
    return _variant_from(header.shape(img_in), guidance in header.tensors, header.path.name)


def _variant_from(img_in: tuple[int, ...] | None, has_guidance: bool, name: str) -> str:
    in_features = img_in[-1] if img_in else PACKED_LATENT
    if in_features == FILL_IN:
        return FILL
    if in_features != PACKED_LATENT:
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{name} is a Flux model whose image input takes {in_features} features (a Depth or Canny control model, "
            "or Kontext-like); this version runs Flux.1 [dev], [schnell] and Fill.",
            "Choose a Flux.1 [dev], [schnell] or Fill model.",
        )
    return DEV if has_guidance else SCHNELL


def _is_clip_l(header: SafetensorsHeader, prefix: str) -> bool:
    """A CLIP text encoder (Hugging Face names, CLIP's 49,408-token vocabulary) that is not one of
    OpenCLIP's (ViT-H 1024 or bigG 1280 wide, SD 2.x's and SDXL's). Real CLIP-L is 768 wide; the
    width the transformer needs is checked when parts are paired (FluxFile.width)."""
    shape = header.shape(f"{prefix}text_model.embeddings.token_embedding.weight")
    return shape is not None and len(shape) == 2 and shape[0] == CLIP_VOCAB and shape[1] not in OPENCLIP_WIDTHS


def _is_t5_xxl(header: SafetensorsHeader, prefix: str) -> bool:
    """A T5 v1.1 encoder (T5's 32,128-token vocabulary; UMT5's is 256,384). T5-XXL is 4096 wide;
    the width is checked against the transformer's text input when parts are paired."""
    if header.shape(f"{prefix}encoder.final_layer_norm.weight") is None:
        return False
    embedding = header.shape(f"{prefix}shared.weight") or header.shape(f"{prefix}encoder.embed_tokens.weight")
    return embedding is not None and embedding[0] == T5_VOCAB


def _vae_channels(header: SafetensorsHeader, prefix: str) -> int | None:
    """The latent channels of an autoencoder (BFL/LDM or diffusers layout): the decoder's first conv."""
    shape = header.shape(f"{prefix}decoder.conv_in.weight")
    return shape[1] if shape is not None and len(shape) == 4 else None


def _dominant(counts: Counter[str] | None) -> str:
    if not counts:
        return ""
    raw = max(counts, key=lambda d: (counts[d], d))
    return _DTYPES.get(raw, raw.lower())


# -- GGUF ----------------------------------------------------------------------------------------
def inspect_flux_gguf(header: GGUFHeader) -> FluxFile | None:
    """A GGUF Flux transformer (city96's layout: BFL keys, `general.architecture` "flux"), or None."""
    tensors = header.tensors
    if "double_blocks.0.img_attn.qkv.weight" not in tensors and "img_in.weight" not in tensors:
        arch = str(header.metadata.get("general.architecture", ""))
        if arch in ("t5", "t5encoder"):
            raise StudioError(
                ErrorKind.BAD_MODEL,
                f"{header.path.name} is a T5 text encoder in GGUF, which the studio does not load.",
                "Use t5xxl_fp16.safetensors or t5xxl_fp8_e4m3fn.safetensors as the T5-XXL text encoder.",
            )
        return None
    if "vector_in.in_layer.weight" not in tensors:
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{header.path.name} is built on Flux's blocks but is not a Flux.1 model (Chroma or Flux.2, for example).",
            "Choose a Flux.1 model or a fine-tune of one.",
        )
    variant = _variant_from(header.shape("img_in.weight"), "guidance_in.in_layer.weight" in tensors, header.path.name)
    quants: Counter[str] = Counter(t.type_name for t in tensors.values() if len(t.shape) >= 2)
    quant = max(quants, key=lambda q: (quants[q], q)) if quants else None
    return FluxFile(
        path=header.path,
        kind=TRANSFORMER,
        variant=variant,
        layout=BFL,
        dtype="gguf",
        gguf_quant=quant,
        width=(header.shape("img_in.weight") or (0,))[0],
        text_width=(header.shape("txt_in.weight") or (0,))[-1],
        pooled_width=(header.shape("vector_in.in_layer.weight") or (0,))[-1],
        size_bytes=header.file_size,
    )


def inspect_flux_path(path: str | Path) -> FluxFile | None:
    """inspect_flux_header or inspect_flux_gguf, told apart by the file's first bytes."""
    path = Path(path)
    if is_gguf(path):
        return inspect_flux_gguf(read_gguf_header(path))
    return inspect_flux_header(read_header(path))
