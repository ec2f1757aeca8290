"""Flux previews: packed latents unpack exactly as diffusers packs them, and the RGB factors are
ComfyUI's Flux1 ones applied to the transformer's latent space."""

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline

from studio.engine.flux_latents import (
    FLUX_RGB_BIAS,
    FLUX_RGB_FACTORS,
    flow_x0,
    flux_previewer,
    latent_size,
    pack_latents,
    preview_rgb,
    unpack_latents,
)


@pytest.mark.parametrize("height, width", [(64, 64), (1024, 1024), (832, 1216), (80, 48)])
def test_unpack_is_diffusers_unpack_and_inverts_its_pack(height, width):
    h, w = latent_size(height, width)
    latents = torch.randn(2, 16, h, w, generator=torch.Generator().manual_seed(0))
    packed = FluxPipeline._pack_latents(latents, 2, 16, h, w)
    assert torch.equal(pack_latents(latents), packed)
    assert torch.equal(unpack_latents(packed, height, width), latents)
    assert torch.equal(unpack_latents(packed, height, width), FluxPipeline._unpack_latents(packed, height, width, 8))


def test_a_picture_size_that_does_not_fit_is_refused():
    packed = torch.zeros(1, 16, 64)  # a 4x4-token (64x64 px) sequence
    with pytest.raises(ValueError, match="do not fit"):
        unpack_latents(packed, 128, 128)


def test_factors_are_16_by_3_with_bias_and_map_channels_as_published():
    assert np.array(FLUX_RGB_FACTORS).shape == (16, 3) and len(FLUX_RGB_BIAS) == 3
    # Channel 13 alone at +1 gives factors[13] + bias: (-0.1264-0.0329, -0.0522-0.0718, -0.1103-0.0851).
    latents = torch.zeros(1, 16, 2, 2)
    latents[0, 13] = 1.0
    rgb = preview_rgb(flux_previewer(), pack_latents(latents), 16, 16)
    expected = np.round((np.array([-0.1593, -0.1240, -0.1954]) + 1) * 127.5 - 0.5)  # uint8 truncation
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb[0, 0].astype(int) - expected).max() <= 1
    assert (rgb == rgb[0, 0]).all()


def test_preview_shows_where_the_content_is():
    latents = torch.zeros(1, 16, 8, 8)
    latents[0, :, :, :4] = torch.tensor(FLUX_RGB_FACTORS)[:, 0, None, None] * 20  # red-ish on the left
    rgb = preview_rgb(flux_previewer(), pack_latents(latents), 64, 64)
    assert rgb.shape == (8, 8, 3)
    assert rgb[:, :4, 0].mean() > rgb[:, 4:, 0].mean() + 50


def test_flow_x0_recovers_the_clean_latents():
    x0, noise = torch.randn(1, 16, 4), torch.randn(1, 16, 4)
    sigma = 0.7
    x_t = (1 - sigma) * x0 + sigma * noise
    assert torch.allclose(flow_x0(x_t, noise - x0, sigma), x0, atol=1e-6)
