"""The diffusers component configs we ship per model family, for opening single-file checkpoints.

`XxxPipeline.from_single_file(path, config=config_dir(family), local_files_only=True, ...)` reads
the pipeline layout and every component's config from these folders instead of the Hub. They
hold no weights and no tokenizer vocabulary (that lives once in resources/clip-tokenizer; pass
`studio.engine.clip_tokenizers.clip_tokenizer(pad)` for each `tokenizer_pads` entry). Where the
values come from: resources/model-configs/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.core.storage.paths import resources_dir

_EOS = "<|endoftext|>"
_BANG = "!"


@dataclass(frozen=True)
class FamilyConfig:
    name: str
    folder: str  # under resources/model-configs/
    pipeline_class: str  # diffusers class name, as in the folder's model_index.json
    native_width: int  # the resolution the model was trained at
    native_height: int
    prediction_type: str  # "epsilon" or "v_prediction": what the UNet predicts
    in_channels: int  # 4, or 9 for inpainting UNets (latents + mask + masked image)
    tokenizer_pads: tuple[str, ...]  # pad token of `tokenizer` (and `tokenizer_2`)

    @property
    def is_inpaint(self) -> bool:
        return self.in_channels == 9

    @property
    def is_sdxl(self) -> bool:
        return len(self.tokenizer_pads) == 2


FAMILY_CONFIGS: dict[str, FamilyConfig] = {
    c.name: c
    for c in (
        # runwayml/stable-diffusion-v1-5 (now stable-diffusion-v1-5/stable-diffusion-v1-5)
        FamilyConfig("sd15", "sd15", "StableDiffusionPipeline", 512, 512, "epsilon", 4, (_EOS,)),
        # runwayml/stable-diffusion-inpainting
        FamilyConfig("sd15-inpaint", "sd15-inpaint", "StableDiffusionInpaintPipeline", 512, 512, "epsilon", 9, (_EOS,)),
        # stabilityai/stable-diffusion-2-1 (768, v-prediction)
        FamilyConfig("sd2-v", "sd2-v", "StableDiffusionPipeline", 768, 768, "v_prediction", 4, (_BANG,)),
        # stabilityai/stable-diffusion-2-1-base
        FamilyConfig("sd2-base", "sd2-base", "StableDiffusionPipeline", 512, 512, "epsilon", 4, (_BANG,)),
        # stabilityai/stable-diffusion-2-inpainting
        FamilyConfig("sd2-inpaint", "sd2-inpaint", "StableDiffusionInpaintPipeline", 512, 512, "epsilon", 9, (_BANG,)),
        # stabilityai/stable-diffusion-xl-base-1.0
        FamilyConfig("sdxl", "sdxl", "StableDiffusionXLPipeline", 1024, 1024, "epsilon", 4, (_EOS, _BANG)),
        # diffusers/stable-diffusion-xl-1.0-inpainting-0.1
        FamilyConfig(
            "sdxl-inpaint", "sdxl-inpaint", "StableDiffusionXLInpaintPipeline", 1024, 1024, "epsilon", 9, (_EOS, _BANG)
        ),
    )
}


def configs_root() -> Path:
    return resources_dir() / "model-configs"


def config_dir(family: str) -> Path:
    """The diffusers pipeline folder of `family`; KeyError for a family we ship no configs for."""
    try:
        entry = FAMILY_CONFIGS[family]
    except KeyError:
        raise KeyError(f"no shipped model configs for family {family!r}; known: {', '.join(FAMILY_CONFIGS)}") from None
    return configs_root() / entry.folder
