"""What every family's detector answers, and the checkpoint reading the Stable Diffusion
families share.

A detector says, from a file's safetensors header or a diffusers folder's JSON configs alone,
whether the model is of its family, and what the studio should know about it before loading
(label, native size, recommended settings, what its LoRAs look like). Pure Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from studio.core.errors import ErrorKind, StudioError
from studio.core.models.family import Family, ModelInfo, PanelFacts
from studio.core.models.safetensors_header import SafetensorsHeader

LDM_UNET = "model.diffusion_model."  # the UNet's tensors in an original (LDM/A1111) checkpoint
HINT_CHOOSE = (
    "Choose a Stable Diffusion 1.x, 2.x or SDXL checkpoint (.safetensors) or a diffusers model folder "
    "(the one with model_index.json)."
)


class Detector:
    """One model family, as its files show it. Subclasses set the class attributes and
    override what differs; the registry (studio.core.models.detectors) asks them in order."""

    family: ClassVar[Family]
    label: ClassVar[str]  # "SD 1.x", for people
    folder_classes: ClassVar[tuple[str, ...]] = ()  # model_index.json `_class_name`s of its diffusers folders
    # Recommended settings when the model's studio.json says none (None: the studio's own defaults).
    default_steps: ClassVar[int | None] = None
    default_guidance: ClassVar[float | None] = None
    default_sampler: ClassVar[str | None] = None

    # -- single files ----------------------------------------------------------------------
    def matches_file(self, header: SafetensorsHeader) -> bool:
        """Whether the checkpoint is of this family (asked in registry order: first wins)."""
        raise NotImplementedError

    def inspect_file(self, header: SafetensorsHeader) -> ModelInfo:
        """The file's ModelInfo, or a StudioError that says why the studio can't run it."""
        raise NotImplementedError

    # -- diffusers folders ------------------------------------------------------------------
    def matches_folder(self, index: dict, read_config) -> bool:
        """Whether a folder whose model_index.json is `index` is of this family;
        `read_config(relative path)` reads one of its JSON files ({} if missing)."""
        return str(index.get("_class_name", "")) in self.folder_classes

    def inspect_folder(self, folder: Path, index: dict, read_config) -> ModelInfo:
        raise NotImplementedError

    # -- what the studio shows and proposes --------------------------------------------------
    def model_label(self, info: ModelInfo) -> str:
        return self.label + (" inpainting" if info.inpaint else "")

    def panel(self, info: ModelInfo) -> PanelFacts:
        """The panel's fields for this model (the SD families use every one)."""
        return PanelFacts()

    def native_size(self, info: ModelInfo) -> int:
        raise NotImplementedError

    def recommended(self, info: ModelInfo) -> tuple[int | None, float | None, str | None]:
        """(steps, guidance, sampler) the family proposes for this model (None: the studio's own)."""
        return self.default_steps, self.default_guidance, self.default_sampler

    # -- LoRA files made for this family (studio.core.generation.lora_tags) -----------------
    lora_prefixes: ClassVar[tuple[str, ...]] = ()  # key prefixes only this family's LoRAs have
    lora_cross_attention_width: ClassVar[int | None] = None  # input width of attn2 to_k/to_v
    lora_text_width: ClassVar[int | None] = None  # input width of the text encoder's q_proj

    def lora_metadata_matches(self, text: str, metadata: dict[str, str]) -> bool:
        """Whether a trainer's metadata (`text`: ss_base_model_version and modelspec.architecture,
        lower case) names this family."""
        return False


# -- shared by the UNet families (SD 1.x, SD 2.x, SDXL) -------------------------------------------
def has_ldm_unet(header: SafetensorsHeader) -> bool:
    first_conv = header.shape(LDM_UNET + "input_blocks.0.0.weight")
    return first_conv is not None and len(first_conv) == 4


def prediction_hint(header: SafetensorsHeader) -> str | None:
    """v-prediction markers: the `v_pred` key (NoobAI, and A1111's convention) or modelspec metadata."""
    if "v_pred" in header.tensors:
        return "v_prediction"
    spec = header.metadata.get("modelspec.prediction_type", "").lower()
    if spec in ("v", "v_prediction", "v-prediction"):
        return "v_prediction"
    if spec in ("epsilon", "eps"):
        return "epsilon"
    return None


def ldm_checkpoint_info(header: SafetensorsHeader, family: Family, default_prediction: str | None) -> ModelInfo:
    """The ModelInfo of an original-layout SD checkpoint; refuses UNets the studio cannot run."""
    path, names = header.path, header.tensors
    channels = (header.shape(LDM_UNET + "input_blocks.0.0.weight") or (0, 0))[1]  # has_ldm_unet: 4 dims
    if channels == 8:
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{path.name} is an instruct-pix2pix model (8 input channels), which this version does not run.",
            HINT_CHOOSE,
        )
    if channels not in (4, 9):
        raise StudioError(ErrorKind.BAD_MODEL, f"{path.name} has a UNet with {channels} input channels; the studio runs 4 or 9.")
    counts: dict[str, int] = {}
    for info in names.values():
        counts[info.dtype] = counts.get(info.dtype, 0) + 1
    return ModelInfo(
        path=path,
        single_file=True,
        family=family,
        inpaint=channels == 9,
        prediction=prediction_hint(header) or default_prediction,
        zero_snr="ztsnr" in names,
        has_vae="first_stage_model.decoder.conv_in.weight" in names,
        size_bytes=header.file_size,
        dtype=max(counts, key=lambda dtype: counts[dtype]) if counts else "",
    )


def folder_weight_bytes(folder: Path) -> int:
    """The bytes of a diffusers folder's .safetensors weights (a file that vanished counts 0)."""
    size = 0
    for file in folder.rglob("*.safetensors"):
        try:
            size += file.stat().st_size
        except OSError:
            pass
    return size


def diffusers_folder_info(folder: Path, family: Family, read_config) -> ModelInfo:
    """The ModelInfo of a diffusers SD folder (unet/ and scheduler/ configs)."""
    unet = read_config("unet/config.json")
    scheduler = read_config("scheduler/scheduler_config.json")
    prediction = scheduler.get("prediction_type")
    size = folder_weight_bytes(folder)
    return ModelInfo(
        path=folder,
        single_file=False,
        family=family,
        inpaint=unet.get("in_channels") == 9,
        prediction=prediction if prediction in ("epsilon", "v_prediction") else "epsilon",
        zero_snr=bool(scheduler.get("rescale_betas_zero_snr")),
        has_vae=(folder / "vae").is_dir(),
        size_bytes=size,
    )
