"""Memory options (A1111's --medvram, Forge's and ComfyUI's low-VRAM modes, in plain words) and
the check that tells the artist, before loading, whether a model will fit."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from studio.core.models.family import ModelInfo

AUTO_TILE_PIXELS = 2048 * 2048  # above this a whole-image VAE decode needs many GB: tile it
_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}


@dataclass
class MemoryOptions:
    attention_slicing: bool = False  # compute attention in slices: less memory, a little slower
    vae_tiling: str = "auto"  # "auto" (above 2048x2048), "on" or "off"
    cpu_offload: bool = False  # accelerate's model CPU offload: each part moves to the GPU only while it runs
    sequential_offload: bool = False  # one layer at a time on the GPU: slowest, least memory (implies offload)

    def apply(self, pipe, device: str) -> None:
        if self.attention_slicing or device == "mps":  # MPS is memory-bound on large attention maps
            pipe.enable_attention_slicing()
        else:
            pipe.disable_attention_slicing()

    def apply_for_size(self, pipe, pixels: int) -> None:
        tile = self.vae_tiling == "on" or (self.vae_tiling == "auto" and pixels > AUTO_TILE_PIXELS)
        if tile:
            pipe.vae.enable_tiling()
        else:
            pipe.vae.disable_tiling()


def free_memory(device: str) -> int | None:
    """Free bytes on the device (system RAM for the CPU), None when unknown."""
    try:
        if device == "cuda":
            return torch.cuda.mem_get_info()[0]
        if device == "cpu" and hasattr(os, "sysconf"):
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (RuntimeError, ValueError, OSError):
        return None
    return None


def needed_bytes(info: ModelInfo, device: str, parts=None) -> int:
    """The weights' size once loaded: half precision on GPUs, full on the CPU. With `parts` (a
    model whose parts are separate files, studio.core.models.flux_parts.FluxParts) every file
    counts at its stored precision: fp8 and GGUF stay as they are, wider ones become the compute
    dtype (bf16 on GPUs, fp32 on the CPU)."""
    if parts is not None:
        return sum(_part_bytes(part, device) for part in (parts.model, *parts.files.values()))
    if info.family.value == "flux":
        return _flux_bytes(info.dtype, info.size_bytes, device)
    stored = _BYTES.get(info.dtype, 2 if info.single_file else 4)
    loaded = 4 if device == "cpu" else 2
    return int(info.size_bytes * loaded / stored)


def _flux_bytes(dtype: str, size: int, device: str) -> int:
    if dtype.startswith("fp8") or dtype == "gguf":
        return size  # kept in its storage format, computed layer by layer
    stored = {"fp32": 4, "fp16": 2, "bf16": 2}.get(dtype, 2)
    return int(size * (4 if device == "cpu" else 2) / stored)


def _part_bytes(part, device: str) -> int:
    return _flux_bytes(part.dtype, part.size_bytes, device)


def load_note(info: ModelInfo, device: str, options: MemoryOptions, parts=None) -> str:
    """One sentence about memory for the loading message; "" when the model clearly fits."""
    free = free_memory(device)
    need = needed_bytes(info, device, parts)
    if free is None or need == 0:
        return ""
    gb = 1024**3
    if need < free * 0.85:
        return ""
    if options.sequential_offload and device != "cpu":
        return (f"The model ({need / gb:.1f} GB) is larger than the free GPU memory ({free / gb:.1f} GB): "
                "sequential offload streams it in one layer at a time (slow, but it fits).")
    if options.cpu_offload and device != "cpu":
        return (f"The model ({need / gb:.1f} GB) is larger than the free GPU memory ({free / gb:.1f} GB): "
                "CPU offload streams it in.")
    hint = ("Turn on model CPU offload in the memory options if loading fails." if device != "cpu"
            else "Close other programs if loading fails.")
    return f"The model needs about {need / gb:.1f} GB; {device.upper()} has {free / gb:.1f} GB free. {hint}"
