"""SD 2.x: one OpenCLIP ViT-H text encoder; 768 px v-prediction, or 512 px epsilon (base)."""

from __future__ import annotations

import torch

from studio.core.models.family import Family, ModelInfo
from studio.engine.embeddings import SD_KEY
from studio.engine.families.base import TextEncoder
from studio.engine.families.sd1 import SAFETY_CHECKER_OFF, SD_LATENT
from studio.engine.families.stable_diffusion import PAD_BANG, SD_PIPELINES, CheckpointTextEncoder, UNetFamily


def is_v_prediction_sd2(unet) -> bool:
    """A1111's test for SD 2.x checkpoints that do not say: at t=999 a v-prediction UNet's output
    is far below its input on a flat grey latent, an epsilon UNet's is not
    (A1111 modules/sd_models_config.py, is_using_v_parameterization_for_sd2)."""
    param = next(unet.parameters())
    with torch.no_grad():
        x = torch.full((1, unet.config.in_channels, 8, 8), 0.5, device=param.device, dtype=param.dtype)
        context = torch.full((1, 2, unet.config.cross_attention_dim), 0.5, device=param.device, dtype=param.dtype)
        out = unet(x, torch.tensor([999], device=param.device), encoder_hidden_states=context).sample
        return (out.float() - x.float()[:, :4]).mean().item() < -1


class SD2Adapter(UNetFamily):
    family = Family.SD2
    pipeline_names = SD_PIPELINES
    # stabilityai/stable-diffusion-2-1 (768, v), -2-1-base (512, epsilon), -2-inpainting
    configs = ("sd2-v", "sd2-base", "sd2-inpaint")
    latent = SD_LATENT
    tokenizer_pads = (PAD_BANG,)
    checkpoint_text_encoders = (CheckpointTextEncoder("text_encoder", "cond_stage_model.model.", "openclip",
                                                      drops_last_layer=True, max_layers=24),)

    def config_name(self, info: ModelInfo) -> str:
        if info.inpaint:
            return "sd2-inpaint"
        return "sd2-base" if info.prediction == "epsilon" else "sd2-v"

    def load_arguments(self) -> dict:
        return dict(SAFETY_CHECKER_OFF)

    def after_load(self, pipe, info: ModelInfo) -> None:
        if info.single_file and info.prediction is None and not info.inpaint:
            if not is_v_prediction_sd2(pipe.unet):  # the shipped SD 2.x config says v; this one is not
                pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, prediction_type="epsilon")

    def text_encoders(self, pipe) -> list[TextEncoder]:
        # diffusers' SD 2.x encoder already ends at OpenCLIP's penultimate layer, the one A1111
        # reads; A1111 ignores clip skip for SD 2.x (the base class's rule).
        return [TextEncoder(pipe.tokenizer, pipe.text_encoder, SD_KEY, penultimate=False)]
