"""Flux's latents for step previews: unpacking the transformer's 2x2-patch sequence back into a
16-channel latent image, the x0 estimate of a flow-matching step, and Flux's latent-to-RGB factors.

FluxPipeline keeps latents packed: (batch, (h/2)*(w/2), 16*4), each token one 2x2 patch of the
16-channel latent (h, w = pixel size / 8), channels-major within the patch (diffusers'
FluxPipeline._pack_latents). The factors apply to latents as the transformer sees them (after the
VAE's shift and scale), like the SD factors in studio.engine.previews.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # previews reads the families, whose Flux adapter reads this module
    from studio.engine.previews import LatentPreviewer

LATENT_CHANNELS = 16
VAE_SCALE = 8  # pixels per latent cell
PATCH = 2  # latent cells per token side

# ComfyUI comfy/latent_formats.py, class Flux (latent_rgb_factors, latent_rgb_factors_bias),
# commit a125cd84b054a57729b5eecab930ca9408719832; applied as rgb = x0 . factors + bias, in [-1, 1].
FLUX_RGB_FACTORS = [
    [-0.0346, 0.0244, 0.0681],
    [0.0034, 0.0210, 0.0687],
    [0.0275, -0.0668, -0.0433],
    [-0.0174, 0.0160, 0.0617],
    [0.0859, 0.0721, 0.0329],
    [0.0004, 0.0383, 0.0115],
    [0.0405, 0.0861, 0.0915],
    [-0.0236, -0.0185, -0.0259],
    [-0.0245, 0.0250, 0.1180],
    [0.1008, 0.0755, -0.0421],
    [-0.0515, 0.0201, 0.0011],
    [0.0428, -0.0012, -0.0036],
    [0.0817, 0.0765, 0.0749],
    [-0.1264, -0.0522, -0.1103],
    [-0.0280, -0.0881, -0.0499],
    [-0.1262, -0.0982, -0.0778],
]
FLUX_RGB_BIAS = [-0.0329, -0.0718, -0.0851]


def latent_size(height: int, width: int) -> tuple[int, int]:
    """The latent image's (h, w) for a picture of height x width pixels, as FluxPipeline rounds it
    (down to whole 2x2 patches of 8-pixel cells)."""
    return PATCH * (height // (VAE_SCALE * PATCH)), PATCH * (width // (VAE_SCALE * PATCH))


def unpack_latents(packed: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(batch, tokens, 64) packed latents of a height x width picture -> (batch, 16, h, w)."""
    batch, tokens, features = packed.shape
    h, w = latent_size(height, width)
    if tokens != (h // PATCH) * (w // PATCH) or features % (PATCH * PATCH):
        raise ValueError(f"packed latents {tuple(packed.shape)} do not fit a {width}x{height} picture")
    channels = features // (PATCH * PATCH)
    grid = packed.view(batch, h // PATCH, w // PATCH, channels, PATCH, PATCH)
    return grid.permute(0, 3, 1, 4, 2, 5).reshape(batch, channels, h, w)


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """The inverse of unpack_latents: (batch, 16, h, w) -> (batch, (h/2)*(w/2), 64)."""
    batch, channels, h, w = latents.shape
    grid = latents.view(batch, channels, h // PATCH, PATCH, w // PATCH, PATCH)
    return grid.permute(0, 2, 4, 1, 3, 5).reshape(batch, (h // PATCH) * (w // PATCH), channels * PATCH * PATCH)


def flow_x0(latents: torch.Tensor, velocity: torch.Tensor, sigma: float) -> torch.Tensor:
    """The clean-image estimate of a flow-matching step: x_t = (1 - sigma) x0 + sigma noise and the
    model predicts v = noise - x0, so x0 = x_t - sigma v."""
    return latents - sigma * velocity


def flux_previewer() -> LatentPreviewer:
    from studio.engine.previews import LatentPreviewer

    return LatentPreviewer(FLUX_RGB_FACTORS, FLUX_RGB_BIAS)


def preview_rgb(previewer: LatentPreviewer, packed: torch.Tensor, height: int, width: int) -> np.ndarray:
    """(h/8, w/8, 3) uint8 preview of the first picture of packed x0 latents."""
    return previewer.to_rgb(unpack_latents(packed[:1], height, width))
