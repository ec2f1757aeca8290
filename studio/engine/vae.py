"""Decoding the final latents, with A1111's automatic fallback for half-precision VAEs.

The SDXL VAE (and some SD 1.x ones) overflows in fp16 and decodes to NaN: a black picture.
A1111 asks the user for --no-half-vae; we decode in the model's precision, and when the result
is not finite, decode again in fp32, say so, and remember it for that model (and VAE) so later
images go straight to fp32.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import torch

from studio.core.models.family import ModelInfo
from studio.core.storage.atomic import write_text_atomic
from studio.core.storage.paths import data_home
from studio.engine.nan_cause import InvalidImage

_LOCK = threading.Lock()
FP32_NOTE = "This model's VAE overflows in half precision: decoded in full precision (remembered for this model)."


def _memory_file():
    return data_home() / "cache" / "vae-fp32.json"


def _remembered() -> list[str]:
    try:
        data = json.loads(_memory_file().read_text(encoding="utf-8"))
        return [str(item) for item in data] if isinstance(data, list) else []
    except (OSError, ValueError, RecursionError):
        return []


def _remember(key: str) -> None:
    with _LOCK:
        keys = _remembered()
        if key not in keys:
            try:
                write_text_atomic(_memory_file(), json.dumps(keys + [key], indent=1))
            except OSError:
                pass  # a read-only data folder: remembered for this session only


def unscale_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Undo the pipeline's latent scaling (and SDXL-style per-channel statistics when configured)."""
    config = vae.config
    latents = latents.to(dtype=vae.dtype)
    mean, std = config.get("latents_mean"), config.get("latents_std")
    if mean is not None and std is not None:
        shape = (1, latents.shape[1], 1, 1)
        mean_t = torch.tensor(mean).view(shape).to(latents.device, latents.dtype)
        std_t = torch.tensor(std).view(shape).to(latents.device, latents.dtype)
        return latents * std_t / config.scaling_factor + mean_t
    shift = config.get("shift_factor")
    if shift is not None:  # Flux's VAE: the pipeline scales (latents - shift)
        return latents / config.scaling_factor + shift
    return latents / config.scaling_factor


class VaeDecoder:
    def __init__(self, info: ModelInfo):
        self.model_key = str(info.path)
        self.vae_key = ""
        self.fp32 = self.key in _remembered()

    @property
    def key(self) -> str:
        return f"{self.model_key}|{self.vae_key}"

    def reset(self, vae_path: str = "") -> None:
        """A different VAE was chosen: its own precision history applies."""
        self.vae_key = vae_path
        self.fp32 = self.key in _remembered()

    def _decode(self, vae, latents: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return vae.decode(unscale_latents(vae, latents), return_dict=False)[0]

    def decode(self, pipe, latents: torch.Tensor) -> tuple[np.ndarray, str]:
        """(H, W, 3) float image in [0, 1] of the first latent, and a note for the artist ("" if none).

        An fp32 decode casts the VAE back afterwards (as diffusers' SDXL pipeline does): the
        img2img and inpaint pipelines encode their input in the UNet's dtype."""
        vae = pipe.vae
        note = ""
        original = vae.dtype
        try:
            if self.fp32 and original != torch.float32:
                vae.to(torch.float32)
            image = self._decode(vae, latents)
            if not torch.isfinite(image).all() and vae.dtype != torch.float32:
                vae.to(torch.float32)
                image = self._decode(vae, latents)
                if not self.fp32:
                    self.fp32 = True
                    _remember(self.key)
                    note = FP32_NOTE
        finally:
            if vae.dtype != original:
                vae.to(original)
        if not torch.isfinite(image).all():  # the cause is named by studio.engine.nan_cause
            raise InvalidImage("decode" if torch.isfinite(latents).all() else "latents")
        return pipe.image_processor.postprocess(image.float(), output_type="np")[0], note
