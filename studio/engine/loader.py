"""Loading an SD 1.x model from a diffusers-format folder: offline, safetensors only."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from studio.core.errors import ErrorKind, StudioError
from studio.engine.errors import is_out_of_memory

SUPPORTED_CLASSES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline")
_HINT_FOLDER = "Choose a diffusers model folder: the one that holds model_index.json, unet/, vae/ and text_encoder/."


def check_model_folder(path: str | Path) -> Path:
    """The folder, or a StudioError saying in plain words why it is not a usable model."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise StudioError(ErrorKind.MODEL_NOT_FOUND, f"No model found at {folder}.", _HINT_FOLDER)
    if folder.is_file():
        if folder.suffix.lower() in (".safetensors", ".ckpt", ".pt", ".bin"):
            raise StudioError(
                ErrorKind.BAD_MODEL,
                f"{folder.name} is a single-file checkpoint; the studio loads diffusers-format folders.",
                _HINT_FOLDER,
            )
        raise StudioError(ErrorKind.BAD_MODEL, f"{folder} is a file, not a model folder.", _HINT_FOLDER)
    index = folder / "model_index.json"
    if not index.is_file():
        raise StudioError(ErrorKind.BAD_MODEL, f"{folder} has no model_index.json.", _HINT_FOLDER)
    try:
        class_name = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
    except (OSError, ValueError, AttributeError) as exc:
        raise StudioError(ErrorKind.BAD_MODEL, f"The model_index.json in {folder} is damaged ({exc}).") from exc
    if class_name not in SUPPORTED_CLASSES:
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{folder.name} is a {class_name or 'unknown'} model; this version runs Stable Diffusion 1.x models.",
        )
    return folder


def _unet_in_channels(folder: Path) -> int:
    try:
        return int(json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8")).get("in_channels", 4))
    except (OSError, ValueError, TypeError):
        return 4  # let from_pretrained report the real problem


def pipeline_for_mode(pipe, mode):
    """A pipeline for txt2img / img2img / inpaint that shares `pipe`'s components (from_pipe)."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline

    from studio.core.request import Mode

    cls = {
        Mode.TXT2IMG: StableDiffusionPipeline,
        Mode.IMG2IMG: StableDiffusionImg2ImgPipeline,
        Mode.INPAINT: StableDiffusionInpaintPipeline,
    }[mode]
    if isinstance(pipe, cls) and type(pipe) is cls:
        return pipe
    view = cls.from_pipe(pipe)
    view.set_progress_bar_config(disable=True)
    return view


def load_pipeline(path: str | Path, device: str, dtype: torch.dtype):
    """An SD 1.x pipeline on `device`: txt2img, or inpaint for a 9-channel inpainting model.
    Never fetches anything; never unpickles weights."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging

    folder = check_model_folder(path)
    diffusers_logging.disable_progress_bar()
    cls = StableDiffusionInpaintPipeline if _unet_in_channels(folder) == 9 else StableDiffusionPipeline
    try:
        pipe = cls.from_pretrained(
            str(folder),
            dtype=dtype,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
            use_safetensors=True,  # pickled .bin/.ckpt weights can run code: refuse them
            local_files_only=True,
        )
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        text = " ".join(str(exc).split())[:240]
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"Could not load the model in {folder.name}: {text}",
            "The folder may be incomplete or damaged, or hold only pickled (.bin/.ckpt) weights; "
            "the studio loads .safetensors weights only.",
        ) from exc
    pipe.set_progress_bar_config(disable=True)
    try:
        pipe.to(device)
    except RuntimeError as exc:
        if is_out_of_memory(exc):
            raise StudioError(
                ErrorKind.OUT_OF_MEMORY,
                f"{folder.name} does not fit in the {device.upper()} memory.",
                "Close other programs using the GPU, or choose the CPU device.",
            ) from exc
        raise StudioError(ErrorKind.DEVICE, f"Could not move the model to {device}: {exc}") from exc
    if device == "mps":
        pipe.enable_attention_slicing()  # MPS is memory-bound on large attention maps
    logging.getLogger(__name__).info("loaded %s on %s (%s)", folder, device, dtype)
    return pipe
