"""What the studio knows a model to be: its family and the options read from its files.

Pure Python (the model library builds these before torch is imported). The facts that differ
by family (its label, native size, recommended settings) live with the family's detector
(studio.core.models.detectors); everything the engine does differently lives in its adapter
(studio.engine.families).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path


class Family(str, enum.Enum):
    SD1 = "sd1"
    SD2 = "sd2"
    SDXL = "sdxl"
    FLUX = "flux"

    @property
    def label(self) -> str:
        from studio.core.models.detectors import detector_for

        return detector_for(self).label


@dataclass(frozen=True)
class PanelFacts:
    """What the generation panel shows for a model: a field the model does not read is hidden,
    never silently ignored."""

    guidance_label: str = "CFG"  # "Distilled CFG" for guidance-distilled models (Flux dev)
    guidance: bool = True  # False: the model takes no guidance at all (Flux schnell)
    negative_prompt: bool = True  # False: no negative pass (guidance-distilled models)
    clip_skip: bool = True
    token_limit: int = 75  # per chunk of the prompt the token counter shows (T5: 512, no chunks)
    token_counter: str = "clip"  # which tokenizer counts: "clip" or "t5"


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    single_file: bool
    family: Family
    inpaint: bool = False  # a dedicated inpainting denoiser (SD: 9 input channels)
    prediction: str | None = None  # "epsilon" / "v_prediction"; None: decide when loading
    zero_snr: bool = False  # trained with zero terminal SNR (NoobAI v-pred and friends)
    has_vae: bool = True
    size_bytes: int = 0
    dtype: str = ""  # the file's dominant tensor type (F16, BF16, F32), single files only
    variant: str = ""  # within the family: Flux "dev", "schnell" or "fill"; "" for the SD families

    @property
    def name(self) -> str:
        return self.path.stem if self.single_file else self.path.name

    @property
    def label(self) -> str:
        """"SDXL", "SD 1.x inpainting", "SD 2.x v" ... for the model picker."""
        from studio.core.models.detectors import detector_for

        return detector_for(self.family).model_label(self)

    @property
    def panel(self) -> PanelFacts:
        """Which fields the panel shows for this model and how it names them."""
        from studio.core.models.detectors import detector_for

        return detector_for(self.family).panel(self)

    @property
    def native_size(self) -> int:
        """The side of the square the model was trained at."""
        from studio.core.models.detectors import detector_for

        return detector_for(self.family).native_size(self)
