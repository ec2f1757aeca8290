"""SDXL: two text encoders (CLIP-L and OpenCLIP-bigG) and size conditioning."""

from __future__ import annotations

from pathlib import Path

from studio.core.errors import ErrorKind, StudioError
from studio.core.models.detectors.base import (
    LDM_UNET,
    Detector,
    diffusers_folder_info,
    has_ldm_unet,
    ldm_checkpoint_info,
)
from studio.core.models.family import Family, ModelInfo
from studio.core.models.safetensors_header import SafetensorsHeader

_REFINER_HINT = "Choose an SDXL base model (or a fine-tune of one)."


class SDXLDetector(Detector):
    family = Family.SDXL
    label = "SDXL"
    folder_classes = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline")
    lora_prefixes = ("lora_te1_", "lora_te2_", "text_encoder_2.", "te2.")
    lora_cross_attention_width = 2048

    def matches_file(self, header: SafetensorsHeader) -> bool:
        return has_ldm_unet(header) and (
            "conditioner.embedders.1.model.positional_embedding" in header.tensors
            or header.has_prefix(LDM_UNET + "label_emb.")
        )

    def inspect_file(self, header: SafetensorsHeader) -> ModelInfo:
        if not header.has_prefix("conditioner.embedders.1.") and header.has_prefix("conditioner.embedders.0.model."):
            raise StudioError(
                ErrorKind.BAD_MODEL,
                f"{header.path.name} is an SDXL refiner; it refines another model's output and cannot start a picture.",
                _REFINER_HINT,
            )
        return ldm_checkpoint_info(header, self.family, "epsilon")

    def inspect_folder(self, folder: Path, index: dict, read_config) -> ModelInfo:
        if not isinstance(index.get("text_encoder"), list) or index.get("text_encoder", [None])[0] is None:
            raise StudioError(
                ErrorKind.BAD_MODEL,
                f"{folder.name} is an SDXL refiner; it refines another model's output and cannot start a picture.",
                _REFINER_HINT,
            )
        return diffusers_folder_info(folder, self.family, read_config)

    def native_size(self, info: ModelInfo) -> int:
        return 1024

    def lora_metadata_matches(self, text: str, metadata: dict[str, str]) -> bool:
        return "sdxl" in text or "stable-diffusion-xl" in text
