"""Loading models of every family: diffusers folders and single-file checkpoints, each the way
its family's adapter says (studio.engine.families).

Offline always: single files get their component configs and CLIP tokenizers from resources/,
never from the Hub. Only .safetensors weights are read; pickles are refused (they can run code).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from studio.core.errors import ErrorKind, StudioError
from studio.core.generation.request import Mode
from studio.core.models.family import Family, ModelInfo
from studio.core.models.safetensors_header import read_header
from studio.engine.errors import is_out_of_memory
from studio.engine.families import adapter_for

_LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, IndexError)


def pipeline_for_mode(pipe, family: Family, mode: Mode):
    """A pipeline for txt2img / img2img / inpaint that shares `pipe`'s components (from_pipe)."""
    return adapter_for(family).mode_pipeline(pipe, mode)


def load_vae_file(path: str | Path, info: ModelInfo, dtype: torch.dtype):
    """A standalone VAE (.safetensors, original or diffusers layout) for this model's family."""
    from diffusers import AutoencoderKL

    path = Path(path).expanduser()
    own = adapter_for(info.family).load_vae(str(path), info, dtype)
    if own is not None:
        return own
    if path.suffix.lower() != ".safetensors":
        raise StudioError(ErrorKind.BAD_MODEL,
                          f"{path.name} is not a .safetensors VAE; the studio reads only .safetensors files.")
    header = read_header(path)
    names = header.tensors
    if any(k.startswith("model.diffusion_model.") for k in names):
        raise StudioError(ErrorKind.BAD_MODEL, f"{path.name} is a whole checkpoint, not a VAE.",
                          "Choose it as the model instead.")
    template = adapter_for(info.family).config_dir(info)
    try:
        from safetensors.torch import load_file

        config = AutoencoderKL.load_config(str(template), subfolder="vae")
        if "decoder.up_blocks.0.resnets.0.conv1.weight" in names:  # diffusers layout (e.g. sdxl-vae-fp16-fix)
            vae = AutoencoderKL.from_config(config)
            vae.load_state_dict(load_file(str(path)))
        elif any(k.startswith(("encoder.down.", "first_stage_model.encoder.down.")) for k in names):
            from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

            from studio.engine.checkpoint_config import vae_config

            prefix = "first_stage_model." if any(k.startswith("first_stage_model.") for k in names) else ""
            vae = AutoencoderKL.from_config(vae_config(header, config, prefix))  # its sizes, from its shapes
            vae.load_state_dict(convert_ldm_vae_checkpoint(load_file(str(path)), vae.config))
        else:
            raise StudioError(ErrorKind.BAD_MODEL, f"{path.name} is not a VAE (no encoder or decoder found).")
        vae = vae.to(dtype)
    except _LOAD_ERRORS as exc:
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"Could not load the VAE {path.name}: {' '.join(str(exc).split())[:200]}",
            f"Check that it is a VAE made for {info.family.label} models.",
        ) from exc
    return vae.eval()


def _from_single_file(info: ModelInfo, dtype: torch.dtype, vae_path: str | None):
    adapter = adapter_for(info.family)
    header = read_header(info.path)  # validated before diffusers reads a byte of tensor data
    extra = adapter.tokenizers()
    if not info.has_vae:
        if not vae_path:
            raise StudioError(
                ErrorKind.BAD_MODEL,
                f"{info.path.name} has no VAE inside it.",
                "Choose a VAE for it in the VAE picker (or pass --vae FILE).",
            )
        extra["vae"] = load_vae_file(vae_path, info, dtype)
    extra.update(adapter.load_arguments())
    config = adapter.single_file_config(info, header)
    return adapter.load_class(info).from_single_file(
        str(info.path), config=str(config), local_files_only=True, dtype=dtype, **extra
    )


def _from_folder(info: ModelInfo, dtype: torch.dtype):
    adapter = adapter_for(info.family)
    extra = adapter.load_arguments()
    return adapter.load_class(info).from_pretrained(
        str(info.path),
        dtype=dtype,
        use_safetensors=True,  # pickled .bin/.ckpt weights can run code: refuse them
        local_files_only=True,
        **extra,
    )


def load_pipeline(info: ModelInfo, device: str, dtype: torch.dtype, vae_path: str | None = None, parts=None):
    """The model's pipeline on `device` (txt2img, or inpaint for a 9-channel model). Raises StudioError.
    `parts`: the files of a family that finds its parts (studio.core.models.flux_parts.FluxParts)."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    adapter = adapter_for(info.family)
    try:
        if adapter.loads_itself:
            pipe = adapter.load(info, dtype, parts)
        else:
            pipe = _from_single_file(info, dtype, vae_path) if info.single_file else _from_folder(info, dtype)
    except StudioError:
        raise
    except _LOAD_ERRORS as exc:
        if is_out_of_memory(exc) or isinstance(exc, MemoryError):
            raise StudioError(
                ErrorKind.OUT_OF_MEMORY,
                f"{info.name} does not fit in memory.",
                "Close other programs, or turn on model CPU offload (sequential offload for the smallest cards)."
                if device != "cpu" else "Close other programs, or choose a smaller file of the model (fp8 or a GGUF).",
            ) from exc
        text = " ".join(str(exc).split())[:240]
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"Could not load {info.name} ({info.label}): {text}",
            "The file or folder may be incomplete or damaged (download it again), or hold only pickled "
            "(.bin/.ckpt) weights; the studio loads .safetensors weights only.",
        ) from exc
    pipe.set_progress_bar_config(disable=True)
    adapter_for(info.family).after_load(pipe, info)
    logging.getLogger(__name__).info("loaded %s (%s) as %s", info.path, info.label, dtype)
    return pipe


def move_to_device(pipe, info: ModelInfo, device: str, offload: bool = False, sequential: bool = False) -> None:
    """Put the pipeline on its device, or let accelerate stream it there: model CPU offload moves
    one part at a time, sequential offload one layer at a time (slowest, for the smallest cards)."""
    try:
        if sequential and device != "cpu":
            pipe.enable_sequential_cpu_offload(device=device)
        elif offload and device != "cpu":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
    except RuntimeError as exc:
        if is_out_of_memory(exc):
            raise StudioError(
                ErrorKind.OUT_OF_MEMORY,
                f"{info.name} does not fit in the {device.upper()} memory.",
                "Turn on model CPU offload (Memory options; sequential offload for the smallest cards), close other "
                "programs using the GPU, or choose the CPU device.",
            ) from exc
        raise StudioError(ErrorKind.DEVICE, f"Could not move the model to {device}: {exc}") from exc

