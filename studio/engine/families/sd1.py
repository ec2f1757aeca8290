"""SD 1.x: one CLIP ViT-L text encoder, 512 px, A1111's clip skip."""

from __future__ import annotations

from studio.core.models.family import Family, ModelInfo
from studio.core.models.safetensors_header import SafetensorsHeader
from studio.engine.embeddings import SD_KEY
from studio.engine.families.base import LatentFormat, TextEncoder
from studio.engine.families.stable_diffusion import PAD_EOS, SD_PIPELINES, CheckpointTextEncoder, UNetFamily

# The SD VAE's latents (shared by SD 1.x and SD 2.x); community preview factors (InvokeAI step_callback.py).
SD_LATENT = LatentFormat(
    channels=4,
    scaling_factor=0.18215,
    preview_factors=(
        (0.3444, 0.1385, 0.0670),
        (0.1247, 0.4027, 0.1494),
        (-0.3192, 0.2513, 0.2103),
        (-0.1307, -0.1874, -0.7445),
    ),
)
SAFETY_CHECKER_OFF = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


class SD1Adapter(UNetFamily):
    family = Family.SD1
    pipeline_names = SD_PIPELINES
    configs = ("sd15", "sd15-inpaint")  # runwayml/stable-diffusion-v1-5, runwayml/stable-diffusion-inpainting
    latent = SD_LATENT
    tokenizer_pads = (PAD_EOS,)
    checkpoint_text_encoders = (CheckpointTextEncoder("text_encoder", "cond_stage_model.transformer.text_model.", "hf"),)

    def config_name(self, info: ModelInfo) -> str:
        return "sd15-inpaint" if info.inpaint else "sd15"

    def load_arguments(self) -> dict:
        return dict(SAFETY_CHECKER_OFF)  # a local tool for artists

    def text_encoders(self, pipe) -> list[TextEncoder]:
        return [TextEncoder(pipe.tokenizer, pipe.text_encoder, SD_KEY, penultimate=False)]

    def clip_skip(self, requested: int) -> int:
        return requested  # A1111 applies clip skip to SD 1.x only

    def finish_unet_config(self, config: dict, header: SafetensorsHeader, channels: list, depths: list[int],
                           mid_depth: int) -> None:
        config["attention_head_dim"] = 8  # SD 1.x UNets have 8 heads at every level
