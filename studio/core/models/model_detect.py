"""What a model file or folder is: its family, format and options, from its contents alone.

The family comes from tensor names and shapes (single files) or the pipeline's own configs
(diffusers folders), never from the file name and never over the network. Pure Python: the
model library scans many files with this before torch is even imported.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from studio.core.errors import ErrorKind, StudioError
from studio.core.models.safetensors_header import SafetensorsHeader, read_header
from studio.core.storage.jsonfile import read_json_object

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
_UNET = "model.diffusion_model."
_HINT_CHOOSE = (
    "Choose a Stable Diffusion 1.x, 2.x or SDXL checkpoint (.safetensors) or a diffusers model folder "
    "(the one with model_index.json)."
)


class Family(str, enum.Enum):
    SD1 = "sd1"
    SD2 = "sd2"
    SDXL = "sdxl"

    @property
    def label(self) -> str:
        return {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}[self.value]


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    single_file: bool
    family: Family
    inpaint: bool = False  # a dedicated 9-channel inpainting UNet
    prediction: str | None = None  # "epsilon" / "v_prediction"; None: decide when loading
    zero_snr: bool = False  # trained with zero terminal SNR (NoobAI v-pred and friends)
    has_vae: bool = True
    size_bytes: int = 0
    dtype: str = ""  # the file's dominant tensor type (F16, BF16, F32), single files only

    @property
    def name(self) -> str:
        return self.path.stem if self.single_file else self.path.name

    @property
    def label(self) -> str:
        """"SDXL", "SD 1.x inpainting", "SD 2.x v" ... for the model picker."""
        text = self.family.label
        if self.family is Family.SD2 and self.prediction == "v_prediction":
            text += " v"
        if self.inpaint:
            text += " inpainting"
        return text

    @property
    def config_name(self) -> str:
        """The shipped component configs (resources/model-configs/<name>) for this model."""
        if self.family is Family.SDXL:
            return "sdxl-inpaint" if self.inpaint else "sdxl"
        if self.family is Family.SD2:
            if self.inpaint:
                return "sd2-inpaint"
            return "sd2-base" if self.prediction == "epsilon" else "sd2-v"
        return "sd15-inpaint" if self.inpaint else "sd15"

    @property
    def native_size(self) -> int:
        if self.family is Family.SDXL:
            return 1024
        if self.family is Family.SD2 and self.prediction != "epsilon" and not self.inpaint:
            return 768  # SD 2.x 768-v, the common one, unless the file says epsilon (2.x-base)
        return 512


def inspect_model(path: str | Path) -> ModelInfo:
    """Identify a model file or folder, or raise a StudioError that says what it is instead."""
    path = Path(path).expanduser()
    if not path.exists():
        raise StudioError(ErrorKind.MODEL_NOT_FOUND, f"No model found at {path}.", _HINT_CHOOSE)
    if path.is_dir():
        return _inspect_folder(path)
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{path.name} is a pickled checkpoint ({suffix}); the studio does not open those, because "
            "loading a pickle can run any code hidden in it.",
            "Download the .safetensors version of this model (model sites offer one for nearly every "
            "model), or convert it once in a tool you trust.",
        )
    if suffix != ".safetensors":
        raise StudioError(ErrorKind.BAD_MODEL, f"{path.name} is not a model file.", _HINT_CHOOSE)
    return inspect_single_file(read_header(path))


def inspect_single_file(header: SafetensorsHeader) -> ModelInfo:
    names = header.tensors
    path = header.path
    _refuse_non_checkpoints(header)
    first_conv = header.shape(_UNET + "input_blocks.0.0.weight")
    if first_conv is None or len(first_conv) != 4:
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{path.name} is not a Stable Diffusion checkpoint the studio knows (no UNet found).",
            _HINT_CHOOSE,
        )
    if "conditioner.embedders.1.model.positional_embedding" in names or header.has_prefix(_UNET + "label_emb."):
        if not header.has_prefix("conditioner.embedders.1.") and header.has_prefix("conditioner.embedders.0.model."):
            raise StudioError(
                ErrorKind.BAD_MODEL,
                f"{path.name} is an SDXL refiner; it refines another model's output and cannot start a picture.",
                "Choose an SDXL base model (or a fine-tune of one).",
            )
        family = Family.SDXL
    elif header.has_prefix("cond_stage_model.model.") or _linear_proj_in(header):
        family = Family.SD2
    else:
        family = Family.SD1
    channels = first_conv[1]
    if channels == 8:
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{path.name} is an instruct-pix2pix model (8 input channels), which this version does not run.",
            _HINT_CHOOSE,
        )
    if channels not in (4, 9):
        raise StudioError(ErrorKind.BAD_MODEL, f"{path.name} has a UNet with {channels} input channels; the studio runs 4 or 9.")
    prediction = _prediction_hint(header)
    if prediction is None and family is not Family.SD2:
        prediction = "epsilon"  # SD 1.x and SDXL are epsilon unless the file says otherwise
    counts: dict[str, int] = {}
    for info in names.values():
        counts[info.dtype] = counts.get(info.dtype, 0) + 1
    return ModelInfo(
        path=path,
        single_file=True,
        family=family,
        inpaint=channels == 9,
        prediction=prediction,
        zero_snr="ztsnr" in names,
        has_vae="first_stage_model.decoder.conv_in.weight" in names,
        size_bytes=header.file_size,
        dtype=max(counts, key=counts.get) if counts else "",
    )


def _linear_proj_in(header: SafetensorsHeader) -> bool:
    """SD 2.x UNets project into their transformers with a linear layer; SD 1.x with a 1x1 conv."""
    for name, info in header.tensors.items():
        if name.startswith(_UNET + "input_blocks.") and name.endswith(".proj_in.weight"):
            return len(info.shape) == 2
    return False


def _prediction_hint(header: SafetensorsHeader) -> str | None:
    """v-prediction markers: the `v_pred` key (NoobAI, and A1111's convention) or modelspec metadata."""
    if "v_pred" in header.tensors:
        return "v_prediction"
    spec = header.metadata.get("modelspec.prediction_type", "").lower()
    if spec in ("v", "v_prediction", "v-prediction"):
        return "v_prediction"
    if spec in ("epsilon", "eps"):
        return "epsilon"
    return None


def _refuse_non_checkpoints(header: SafetensorsHeader) -> None:
    """Files artists often pick by mistake, each with a message that says what it is."""
    names = header.tensors
    name = header.path.name
    if any(k.startswith(("lora_unet_", "lora_te", "lora_transformer_")) or ".lora_down." in k or ".lora_A." in k for k in names):
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{name} is a LoRA, not a model.",
            "Put it in your LoRA folder and use it with <lora:NAME:WEIGHT> in the prompt, on top of a model.",
        )
    if ("decoder.conv_in.weight" in names or "encoder.conv_in.weight" in names) and not header.has_prefix(_UNET):
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{name} is a VAE, not a model.",
            "Choose it in the VAE picker (or pass --vae); choose a checkpoint as the model.",
        )
    if set(names) <= {"emb_params", "clip_l", "clip_g"} or header.has_prefix("string_to_param"):
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{name} is a textual inversion embedding, not a model.",
            "Put it in your embeddings folder and write its name in the prompt.",
        )
    families = {
        "SD3": (_UNET + "joint_blocks.", "joint_blocks."),
        "Flux": (_UNET + "double_blocks.", "double_blocks."),
        "Stable Cascade": ("down_blocks.1.0.channelwise.", "clip_txt_mapper."),
        "PixArt/Sana": ("blocks.0.cross_attn.", "y_embedder."),
        "Z-Image / Lumina": (_UNET + "cap_embedder.", _UNET + "layers.0.adaLN_modulation."),
    }
    for label, prefixes in families.items():
        if any(header.has_prefix(p) for p in prefixes):
            raise StudioError(
                ErrorKind.BAD_MODEL,
                f"{name} is a {label} model; this version of the studio runs SD 1.x, SD 2.x and SDXL models.",
                "Choose an SD 1.x, SD 2.x or SDXL checkpoint (SDXL fine-tunes such as Pony or Illustrious work).",
            )
    if header.has_prefix("conv_in.") and header.has_prefix("down_blocks."):
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{name} holds one diffusers component, not a whole model.",
            "Choose the model's folder (with model_index.json) or a single-file checkpoint.",
        )


# -- diffusers folders -------------------------------------------------------------------------
_FOLDER_CLASSES = (
    "StableDiffusionPipeline",
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionInpaintPipeline",
    "StableDiffusionXLPipeline",
    "StableDiffusionXLImg2ImgPipeline",
    "StableDiffusionXLInpaintPipeline",
)


def _read_config(path: Path) -> dict:
    return read_json_object(path, max_bytes=4 * 1024 * 1024) or {}  # the one tolerant reader


def _inspect_folder(folder: Path) -> ModelInfo:
    index = folder / "model_index.json"
    if not index.is_file():
        raise StudioError(ErrorKind.BAD_MODEL, f"{folder} is not a model folder (it has no model_index.json).", _HINT_CHOOSE)
    config = _read_config(index)
    if not config:
        raise StudioError(ErrorKind.BAD_MODEL, f"The model_index.json in {folder.name} is damaged or unreadable.")
    class_name = str(config.get("_class_name", ""))[:100]
    if class_name not in _FOLDER_CLASSES:
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{folder.name} is a {class_name or 'unknown'} model; this version runs SD 1.x, SD 2.x and SDXL models.",
            _HINT_CHOOSE,
        )
    unet = _read_config(folder / "unet" / "config.json")
    scheduler = _read_config(folder / "scheduler" / "scheduler_config.json")
    if "XL" in class_name:
        if not isinstance(config.get("text_encoder"), list) or config.get("text_encoder", [None])[0] is None:
            raise StudioError(
                ErrorKind.BAD_MODEL,
                f"{folder.name} is an SDXL refiner; it refines another model's output and cannot start a picture.",
                "Choose an SDXL base model (or a fine-tune of one).",
            )
        family = Family.SDXL
    elif unet.get("cross_attention_dim") == 1024 or unet.get("use_linear_projection") is True:
        family = Family.SD2
    else:
        family = Family.SD1
    prediction = scheduler.get("prediction_type")
    size = 0
    for file in folder.rglob("*.safetensors"):
        try:
            size += file.stat().st_size
        except OSError:
            pass
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
