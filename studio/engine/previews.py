"""Cheap step previews: the x0 estimate mapped to RGB by a linear per-channel transform.

rgb = x0(C) . M(C x 3) + bias, in [-1, 1], applied to *scaled* latents (what the UNet sees).
A model folder may ship its own factors in latent_preview.json; a VAE whose latents are a known
family's format gets that family's factors (studio.engine.families: LatentFormat); any other VAE
is calibrated once at load time.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from studio.core.storage.jsonfile import read_json_object
from studio.engine.families import latent_formats

PREVIEW_FILE = "latent_preview.json"


class LatentPreviewer:
    def __init__(self, factors, bias=(0.0, 0.0, 0.0)):
        self.factors = torch.tensor(factors, dtype=torch.float32)
        self.bias = torch.tensor(bias, dtype=torch.float32)
        self._on: tuple[torch.device, torch.dtype] | None = None

    def to_rgb(self, latents: torch.Tensor) -> np.ndarray:
        """First latent of the batch -> owned (h, w, 3) uint8 array at latent resolution."""
        if self._on != (latents.device, latents.dtype):
            self.factors = self.factors.to(latents.device, latents.dtype)
            self.bias = self.bias.to(latents.device, latents.dtype)
            self._on = (latents.device, latents.dtype)
        with torch.no_grad():
            rgb = torch.einsum("chw,cr->hwr", latents[0], self.factors) + self.bias
            rgb = ((rgb.float() + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)
        return rgb.cpu().numpy()  # .numpy() of a fresh CPU tensor: the caller owns it

    def to_json(self) -> dict:
        return {"factors": self.factors.cpu().tolist(), "bias": self.bias.cpu().tolist()}


def previewer_for(model_dir: Path, vae) -> LatentPreviewer:
    data = read_json_object(Path(model_dir) / PREVIEW_FILE)  # None for a missing or damaged file
    if data is not None:
        try:
            factors = data["factors"]
            if len(factors) == vae.config.latent_channels and all(len(row) == 3 for row in factors):
                return LatentPreviewer(factors, data.get("bias", (0.0, 0.0, 0.0)))
        except (ValueError, KeyError, TypeError):
            pass  # fall through: a bad preview file must never block generation
    for latent in latent_formats():  # by the VAE, not the model: a swapped-in VAE brings its own format
        if latent.fits(vae):
            return LatentPreviewer(latent.preview_factors, latent.preview_bias)
    return calibrate(vae)


def calibrate(vae, samples: int = 8, seed: int = 0) -> LatentPreviewer:
    """Fit factors by least squares: encode smooth random colour fields, pool the images to the
    latent grid, and solve latent -> rgb. One small VAE encode at load time."""
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    size = 16 * scale
    gen = torch.Generator("cpu").manual_seed(seed)
    coarse = torch.rand(samples, 3, 4, 4, generator=gen) * 2 - 1
    images = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    param = next(vae.parameters())
    with torch.no_grad():
        latents = vae.encode(images.to(param.device, param.dtype)).latent_dist.mean.float().cpu()
    latents = latents * float(vae.config.get("scaling_factor", 1.0) or 1.0)
    targets = torch.nn.functional.avg_pool2d(images, scale)
    x = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    x = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    y = targets.permute(0, 2, 3, 1).reshape(-1, 3)
    solution = torch.linalg.lstsq(x, y, driver="gelsd").solution  # SVD: robust when rank-deficient
    return LatentPreviewer(solution[:-1].tolist(), solution[-1].tolist())


class X0Tap:
    """Wraps a scheduler's step() to keep its newest x0 (predicted clean latents).

    Most schedulers return pred_original_sample (LCM: denoised); DPM-Solver++ and UniPC keep
    their x0 estimates in model_outputs instead. The pipeline's own call is otherwise unchanged.
    """

    def __init__(self, scheduler):
        self.x0: torch.Tensor | None = None
        original = scheduler.step

        # wraps() keeps step()'s signature visible: pipelines inspect it to decide whether to
        # pass `generator` (ancestral/SDE samplers) and `eta`; hiding it loses the seed.
        @functools.wraps(original)
        def step(*args, return_dict: bool = True, **kwargs):
            out = original(*args, return_dict=True, **kwargs)
            x0 = getattr(out, "pred_original_sample", None)
            if x0 is None:
                x0 = getattr(out, "denoised", None)
            if x0 is None:
                kept = getattr(scheduler, "model_outputs", None)
                x0 = kept[-1] if kept else None
            self.x0 = x0
            return out if return_dict else (out.prev_sample,)

        scheduler.step = step
