"""What a model file or folder is: its family, format and options, from its contents alone.

The family comes from tensor names and shapes (single files) or the pipeline's own configs
(diffusers folders), never from the file name and never over the network. Pure Python: the
model library scans many files with this before torch is even imported.
"""

from __future__ import annotations

from pathlib import Path

from studio.core.errors import ErrorKind, StudioError
from studio.core.models.detectors import DETECTORS, supported_labels
from studio.core.models.detectors.base import HINT_CHOOSE, LDM_UNET
from studio.core.models.family import Family, ModelInfo
from studio.core.models.safetensors_header import SafetensorsHeader, read_header
from studio.core.storage.jsonfile import read_json_object

__all__ = ["Family", "ModelInfo", "inspect_model", "inspect_single_file"]

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def inspect_model(path: str | Path) -> ModelInfo:
    """Identify a model file or folder, or raise a StudioError that says what it is instead."""
    path = Path(path).expanduser()
    if not path.exists():
        raise StudioError(ErrorKind.MODEL_NOT_FOUND, f"No model found at {path}.", HINT_CHOOSE)
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
    if suffix == ".gguf":
        for detector in DETECTORS:
            inspect_gguf = getattr(detector, "inspect_gguf", None)
            if inspect_gguf is not None:
                return inspect_gguf(path)
    if suffix != ".safetensors":
        raise StudioError(ErrorKind.BAD_MODEL, f"{path.name} is not a model file.", HINT_CHOOSE)
    return inspect_single_file(read_header(path))


def inspect_single_file(header: SafetensorsHeader) -> ModelInfo:
    """The family whose detector claims the file reads it (studio.core.models.detectors)."""
    _refuse_non_checkpoints(header)
    for detector in DETECTORS:
        if detector.matches_file(header):
            return detector.inspect_file(header)
    _refuse_other_models(header)
    raise StudioError(
        ErrorKind.BAD_MODEL,
        f"{header.path.name} is not a Stable Diffusion checkpoint the studio knows (no UNet found).",
        HINT_CHOOSE,
    )


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
    if ("decoder.conv_in.weight" in names or "encoder.conv_in.weight" in names) and not header.has_prefix(LDM_UNET):
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


def _refuse_other_models(header: SafetensorsHeader) -> None:
    """Models of families the studio does not run, and single diffusers components."""
    name = header.path.name
    families = {
        "SD3": (LDM_UNET + "joint_blocks.", "joint_blocks."),
        "Stable Cascade": ("down_blocks.1.0.channelwise.", "clip_txt_mapper."),
        "PixArt/Sana": ("blocks.0.cross_attn.", "y_embedder."),
        "Z-Image / Lumina": (LDM_UNET + "cap_embedder.", LDM_UNET + "layers.0.adaLN_modulation."),
    }
    for label, prefixes in families.items():
        if any(header.has_prefix(p) for p in prefixes):
            raise StudioError(
                ErrorKind.BAD_MODEL,
                f"{name} is a {label} model; this version of the studio runs {supported_labels()} models.",
                "Choose an SD 1.x, SD 2.x or SDXL checkpoint (SDXL fine-tunes such as Pony or Illustrious work).",
            )
    if header.has_prefix("conv_in.") and header.has_prefix("down_blocks."):
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{name} holds one diffusers component, not a whole model.",
            "Choose the model's folder (with model_index.json) or a single-file checkpoint.",
        )


# -- diffusers folders -------------------------------------------------------------------------
def _read_config(path: Path) -> dict:
    return read_json_object(path, max_bytes=4 * 1024 * 1024) or {}  # the one tolerant reader


def _inspect_folder(folder: Path) -> ModelInfo:
    index = folder / "model_index.json"
    if not index.is_file():
        raise StudioError(ErrorKind.BAD_MODEL, f"{folder} is not a model folder (it has no model_index.json).", HINT_CHOOSE)
    config = _read_config(index)
    if not config:
        raise StudioError(ErrorKind.BAD_MODEL, f"The model_index.json in {folder.name} is damaged or unreadable.")
    config["_class_name"] = str(config.get("_class_name", ""))[:100]

    def read(relative: str) -> dict:
        return _read_config(folder / relative)

    for detector in DETECTORS:
        if detector.matches_folder(config, read):
            return detector.inspect_folder(folder, config, read)
    raise StudioError(
        ErrorKind.BAD_MODEL,
        f"{folder.name} is a {config['_class_name'] or 'unknown'} model; this version runs {supported_labels()} models.",
        HINT_CHOOSE,
    )
