"""SDXL: CLIP ViT-L and OpenCLIP bigG read together, a pooled embedding, size conditioning."""

from __future__ import annotations

from studio.core.models.family import Family, ModelInfo
from studio.core.models.safetensors_header import SafetensorsHeader
from studio.engine.embeddings import SDXL_KEYS
from studio.engine.families.base import LatentFormat, TextEncoder
from studio.engine.families.stable_diffusion import PAD_BANG, PAD_EOS, CheckpointTextEncoder, UNetFamily

UNET = "model.diffusion_model."
# ComfyUI comfy/latent_formats.py SDXL, with its bias
SDXL_LATENT = LatentFormat(
    channels=4,
    scaling_factor=0.13025,
    preview_factors=(
        (0.3651, 0.4232, 0.4341),
        (-0.2533, -0.0042, 0.1068),
        (0.1076, 0.1111, -0.0362),
        (-0.3165, -0.2492, -0.2188),
    ),
    preview_bias=(0.1084, -0.0175, -0.0011),
)


class SDXLAdapter(UNetFamily):
    family = Family.SDXL
    pipeline_names = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline")
    # stabilityai/stable-diffusion-xl-base-1.0, diffusers/stable-diffusion-xl-1.0-inpainting-0.1
    configs = ("sdxl", "sdxl-inpaint")
    latent = SDXL_LATENT
    tokenizer_pads = (PAD_EOS, PAD_BANG)
    checkpoint_text_encoders = (
        CheckpointTextEncoder("text_encoder", "conditioner.embedders.0.transformer.text_model.", "hf"),
        CheckpointTextEncoder("text_encoder_2", "conditioner.embedders.1.model.", "openclip", projection=True,
                              max_layers=32),
    )
    prompt_tensor_inputs = ("prompt_embeds", "add_text_embeds")  # the pooled embeddings, inside the loop

    def config_name(self, info: ModelInfo) -> str:
        return "sdxl-inpaint" if info.inpaint else "sdxl"

    def load_arguments(self) -> dict:
        return {"add_watermarker": False}  # no invisible watermark in the artist's pictures

    def text_encoders(self, pipe) -> list[TextEncoder]:
        # Both read from the penultimate layer without the final norm, as SDXL's pipeline does;
        # A1111 leaves clip skip off for SDXL (sdxl_clip_l_skip), so pasted "Clip skip: 2"
        # infotexts (Pony, Illustrious) render as there.
        return [
            TextEncoder(pipe.tokenizer, pipe.text_encoder, SDXL_KEYS[0], penultimate=True),
            TextEncoder(pipe.tokenizer_2, pipe.text_encoder_2, SDXL_KEYS[1], penultimate=True, pooled=True),
        ]

    def zero_empty_negative(self, pipe) -> bool:
        return bool(getattr(pipe.config, "force_zeros_for_empty_prompt", False))

    def call_arguments(self, request) -> dict:
        """Size and crop conditioning: the picture as asked, uncropped."""
        size = (request.height, request.width)
        return {"original_size": size, "target_size": size, "crops_coords_top_left": (0, 0)}

    def finish_unet_config(self, config: dict, header: SafetensorsHeader, channels: list, depths: list[int],
                           mid_depth: int) -> None:
        super().finish_unet_config(config, header, channels, depths, mid_depth)
        depths = [depth or 1 for depth in depths]
        config["transformer_layers_per_block"] = depths
        if mid_depth and mid_depth != depths[-1]:
            config["transformer_layers_per_block"] = depths[:-1] + [mid_depth]
        adm = header.shape(UNET + "label_emb.0.0.weight")
        projection = header.shape("conditioner.embedders.1.model.text_projection")
        if adm is not None:
            config["projection_class_embeddings_input_dim"] = adm[1]
            if projection is not None:
                config["addition_time_embed_dim"] = (adm[1] - projection[1]) // 6
