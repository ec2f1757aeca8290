"""A tiny random SD 1.x model built from config, saved as a real diffusers folder.

For tests and the CPU benchmark: it runs real diffusers code in milliseconds per step and
needs nothing from the network (its tokenizer is built locally).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel

from studio.engine.word_tokenizer import build_word_tokenizer

TINY_WORDS = ("a", "red", "green", "blue", "circle", "square", "on", "the", "left", "right", "background", ",")


def build_tiny_pipeline(seed: int = 0, in_channels: int = 4):
    """Components shaped like diffusers' own fast tests (tests/pipelines/stable_diffusion).
    in_channels=9 makes a dedicated inpainting model (latents + mask + masked-image latents)."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=8,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=2,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=2,
            pad_token_id=1,
            vocab_size=600,
            max_position_embeddings=77,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    cls = StableDiffusionInpaintPipeline if in_channels == 9 else StableDiffusionPipeline
    return cls(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=build_word_tokenizer(TINY_WORDS),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_model(folder: Path, seed: int = 0, in_channels: int = 4) -> Path:
    folder = Path(folder)
    build_tiny_pipeline(seed, in_channels).save_pretrained(str(folder), safe_serialization=True)
    return folder


# --- Tiny models of every family, shaped so a loader can rebuild them from tensor shapes alone ---
#
# The single-file loader infers each component's config from the tensors it finds, so these models
# follow the real models' rules where the rules show in shapes: GroupNorm with 32 groups, the real
# CLIP vocabulary and position count, one attention head per 64 channels (SD 2.x, SDXL, OpenCLIP),
# SD 1.x's fixed 8 heads, SDXL's blocks without attention at the top resolution. Only the sizes are
# small. tests/checkpoint_files.py writes them out in the original (LDM) single-file layout.

FAMILIES = ("sd1", "sd2", "sdxl")
CLIP_VOCAB_SIZE = 49408
CLIP_BOS, CLIP_EOS = 49406, 49407
TINY_CHANNELS = (32, 64)
# Text encoder widths. SDXL's two encoders must differ in width: diffusers' single-file loader
# picks an encoder's tensors by comparing position-embedding widths (768 vs 1280 in the real model),
# so two equal widths would load CLIP-L's weights into OpenCLIP-bigG's place.
_TEXT_WIDTH = {"sd1": 32, "sd2": 32, "sdxl": 32, "sdxl_2": 64}
_TEXT_INTERMEDIATE = {32: 37, 64: 64}
SDXL_PROJECTION_DIM = 32
SDXL_TIME_EMBED_DIM = 8


def _heads(width: int) -> int:
    """OpenCLIP and the SD 2.x / SDXL UNets use 64-channel heads; tiny widths get one head."""
    return max(1, width // 64)


def _clip_text_config(width: int, act: str, projection_dim: int | None = None):
    from transformers import CLIPTextConfig

    extra = {"projection_dim": projection_dim} if projection_dim else {}
    return CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        max_position_embeddings=77,
        bos_token_id=CLIP_BOS,
        eos_token_id=CLIP_EOS,
        pad_token_id=1,
        hidden_size=width,
        intermediate_size=_TEXT_INTERMEDIATE[width],
        num_attention_heads=_heads(width),
        num_hidden_layers=2,
        hidden_act=act,
        layer_norm_eps=1e-05,
        **extra,
    )


def _family_tokenizer(pad_token: str):
    """The shipped real CLIP vocabulary when that module is there; a word tokenizer until then.

    SD 1.x and CLIP-L pad with the end token; OpenCLIP (SD 2.x, SDXL's second encoder) pads with "!".
    """
    import importlib.util

    if importlib.util.find_spec("studio.engine.clip_tokenizers") is not None:
        import copy

        from studio.engine.clip_tokenizers import clip_tokenizer

        # clip_tokenizer() hands out one cached object; a test that adds textual-inversion tokens
        # to a tiny pipeline's tokenizer must not change every other pipeline's (~0.3 s a copy).
        return copy.deepcopy(clip_tokenizer(pad_token))
    tokenizer = build_word_tokenizer(TINY_WORDS)
    if tokenizer.pad_token != pad_token:
        tokenizer.pad_token = pad_token
    return tokenizer


def _tiny_vae(scaling_factor: float = 0.18215, force_upcast: bool = False) -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(TINY_CHANNELS),
        up_block_types=("UpDecoderBlock2D",) * len(TINY_CHANNELS),
        block_out_channels=TINY_CHANNELS,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=32,
        scaling_factor=scaling_factor,
        force_upcast=force_upcast,
    )


def _tiny_unet(family: str, in_channels: int, cross_attention_dim: int) -> UNet2DConditionModel:
    common = dict(
        sample_size=32,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=TINY_CHANNELS,
        layers_per_block=1,
        norm_num_groups=32,
        cross_attention_dim=cross_attention_dim,
    )
    if family == "sd1":
        # SD 1.x: attention at every level but the lowest, 8 heads (diffusers' attention_head_dim).
        return UNet2DConditionModel(
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            attention_head_dim=8,
            use_linear_projection=False,
            **common,
        )
    heads = [_heads(c) for c in TINY_CHANNELS]
    if family == "sd2":
        return UNet2DConditionModel(
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            attention_head_dim=heads,
            use_linear_projection=True,
            **common,
        )
    # SDXL: no attention at the top resolution, deeper transformers below, size/crop conditioning.
    return UNet2DConditionModel(
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=heads,
        use_linear_projection=True,
        transformer_layers_per_block=(1, 2),
        addition_embed_type="text_time",
        addition_time_embed_dim=SDXL_TIME_EMBED_DIM,
        projection_class_embeddings_input_dim=6 * SDXL_TIME_EMBED_DIM + SDXL_PROJECTION_DIM,
        **common,
    )


def _sd_scheduler(prediction_type: str) -> DDIMScheduler:
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


def _sdxl_scheduler():
    from diffusers import EulerDiscreteScheduler

    # stabilityai/stable-diffusion-xl-base-1.0's scheduler/scheduler_config.json
    return EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        interpolation_type="linear",
        use_karras_sigmas=False,
        timestep_spacing="leading",
        steps_offset=1,
    )


def build_tiny_family(family: str, seed: int = 0, in_channels: int = 4):
    """A tiny random pipeline of `family` ("sd1", "sd2", "sdxl"); in_channels=9 makes the
    inpainting variant. Same seed, same weights."""
    from transformers import CLIPTextModelWithProjection

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    if in_channels not in (4, 9):
        raise ValueError(f"in_channels must be 4 or 9, not {in_channels}")
    torch.manual_seed(seed)
    if family == "sdxl":
        text_encoder = CLIPTextModel(_clip_text_config(_TEXT_WIDTH["sdxl"], "quick_gelu"))
        text_encoder_2 = CLIPTextModelWithProjection(
            _clip_text_config(_TEXT_WIDTH["sdxl_2"], "gelu", projection_dim=SDXL_PROJECTION_DIM)
        )
        context = _TEXT_WIDTH["sdxl"] + _TEXT_WIDTH["sdxl_2"]
        components = dict(
            vae=_tiny_vae(scaling_factor=0.13025, force_upcast=True),
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=_family_tokenizer("<|endoftext|>"),
            tokenizer_2=_family_tokenizer("!"),
            unet=_tiny_unet("sdxl", in_channels, context),
            scheduler=_sdxl_scheduler(),
            force_zeros_for_empty_prompt=True,
            add_watermarker=False,
        )
        if in_channels == 9:
            from diffusers import StableDiffusionXLInpaintPipeline

            return StableDiffusionXLInpaintPipeline(requires_aesthetics_score=False, **components)
        from diffusers import StableDiffusionXLPipeline

        return StableDiffusionXLPipeline(**components)

    act, pad, prediction = ("quick_gelu", "<|endoftext|>", "epsilon") if family == "sd1" else ("gelu", "!", "v_prediction")
    width = _TEXT_WIDTH[family]
    cls = StableDiffusionInpaintPipeline if in_channels == 9 else StableDiffusionPipeline
    return cls(
        vae=_tiny_vae(),
        text_encoder=CLIPTextModel(_clip_text_config(width, act)),
        tokenizer=_family_tokenizer(pad),
        unet=_tiny_unet(family, in_channels, width),
        scheduler=_sd_scheduler(prediction),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_family(folder: Path, family: str, seed: int = 0, in_channels: int = 4) -> Path:
    """build_tiny_family(...) saved as a diffusers folder (safetensors weights)."""
    folder = Path(folder)
    build_tiny_family(family, seed, in_channels).save_pretrained(str(folder), safe_serialization=True)
    return folder
