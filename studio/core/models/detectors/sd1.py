"""SD 1.x: one CLIP-L text encoder; any original-layout SD UNet no other family claims."""

from __future__ import annotations

from pathlib import Path

from studio.core.models.detectors.base import Detector, diffusers_folder_info, has_ldm_unet, ldm_checkpoint_info
from studio.core.models.detectors.sd2 import SD_FOLDER_CLASSES
from studio.core.models.family import Family, ModelInfo
from studio.core.models.safetensors_header import SafetensorsHeader


class SD1Detector(Detector):
    """Asked last among the UNet families: SDXL and SD 2.x have markers of their own, SD 1.x none."""

    family = Family.SD1
    label = "SD 1.x"
    folder_classes = SD_FOLDER_CLASSES
    lora_cross_attention_width = 768
    lora_text_width = 768

    def matches_file(self, header: SafetensorsHeader) -> bool:
        return has_ldm_unet(header)

    def inspect_file(self, header: SafetensorsHeader) -> ModelInfo:
        return ldm_checkpoint_info(header, self.family, "epsilon")

    def inspect_folder(self, folder: Path, index: dict, read_config) -> ModelInfo:
        return diffusers_folder_info(folder, self.family, read_config)

    def native_size(self, info: ModelInfo) -> int:
        return 512

    def lora_metadata_matches(self, text: str, metadata: dict[str, str]) -> bool:
        return "sd_v1" in text or "stable-diffusion-v1" in text
