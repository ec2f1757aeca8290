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
