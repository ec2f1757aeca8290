"""SD 2.x: one OpenCLIP-H text encoder; the 768 models predict v, the 512 base model noise."""

from __future__ import annotations

from pathlib import Path

from studio.core.models.detectors.base import (
    LDM_UNET,
    Detector,
    diffusers_folder_info,
    has_ldm_unet,
    ldm_checkpoint_info,
)
from studio.core.models.family import Family, ModelInfo
from studio.core.models.safetensors_header import SafetensorsHeader

SD_FOLDER_CLASSES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline")


def _linear_proj_in(header: SafetensorsHeader) -> bool:
    """SD 2.x UNets project into their transformers with a linear layer; SD 1.x with a 1x1 conv."""
    for name, info in header.tensors.items():
        if name.startswith(LDM_UNET + "input_blocks.") and name.endswith(".proj_in.weight"):
            return len(info.shape) == 2
    return False


class SD2Detector(Detector):
    family = Family.SD2
    label = "SD 2.x"
    folder_classes = SD_FOLDER_CLASSES
    lora_cross_attention_width = 1024
    lora_text_width = 1024

    def matches_file(self, header: SafetensorsHeader) -> bool:
        return has_ldm_unet(header) and (header.has_prefix("cond_stage_model.model.") or _linear_proj_in(header))

    def inspect_file(self, header: SafetensorsHeader) -> ModelInfo:
        # No default prediction: the 768 models are v, the base model epsilon, and few files say
        # which; the engine tests the UNet once loaded (studio.engine.families.sd2).
        return ldm_checkpoint_info(header, self.family, None)

    def matches_folder(self, index: dict, read_config) -> bool:
        if not super().matches_folder(index, read_config):
            return False
        unet = read_config("unet/config.json")
        return unet.get("cross_attention_dim") == 1024 or unet.get("use_linear_projection") is True

    def inspect_folder(self, folder: Path, index: dict, read_config) -> ModelInfo:
        return diffusers_folder_info(folder, self.family, read_config)

    def model_label(self, info: ModelInfo) -> str:
        text = self.label + (" v" if info.prediction == "v_prediction" else "")
        return text + (" inpainting" if info.inpaint else "")

    def native_size(self, info: ModelInfo) -> int:
        if info.prediction != "epsilon" and not info.inpaint:
            return 768  # SD 2.x 768-v, the common one, unless the file says epsilon (2.x-base)
        return 512

    def lora_metadata_matches(self, text: str, metadata: dict[str, str]) -> bool:
        return "sd_v2" in text or "stable-diffusion-v2" in text or metadata.get("ss_v2") == "True"
