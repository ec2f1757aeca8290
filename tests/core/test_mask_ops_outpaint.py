"""Pure helpers behind outpainting, inpaint previews, the default brush and the mask outline."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from studio.core.canvas.mask_ops import (
    Extension,
    PreviewCompositor,
    default_brush_size,
    extend_image,
    feathered_alpha,
    mask_edges,
    snap_extension,
)


def test_snap_keeps_sizes_multiples_of_8_and_leaves_unextended_axes():
    assert snap_extension(64, 64, Extension(right=30)) == Extension(right=32)
    assert snap_extension(100, 64, Extension(left=10)) == Extension(left=12)  # 100 + 12 = 112
    assert snap_extension(100, 60, Extension(top=8)) == Extension(top=12)  # 60+12 = 72
    assert snap_extension(100, 60, Extension()) == Extension()  # nothing asked, nothing changed
    both = snap_extension(64, 64, Extension(left=3, right=3))
    assert (64 + both.left + both.right) % 8 == 0 and both.left == 3


def test_extend_stretch_fills_with_edges_and_masks_new_area_with_a_feathered_seam():
    pixels = np.zeros((16, 16, 3), np.uint8)
    pixels[:, -1] = (10, 200, 30)  # the right edge column
    old_mask = np.zeros((16, 16), np.uint8)
    old_mask[2:4, 2:4] = 255
    grown, mask = extend_image(pixels, old_mask, Extension(right=8), "stretch", overlap=4)
    assert grown.shape == (16, 24, 3)
    assert (grown[:, 16:] == (10, 200, 30)).all()  # edge stretched
    assert np.array_equal(grown[:, :16], pixels)  # the old image untouched
    assert mask[:, 16:].min() == 255  # the new area is repainted
    assert mask[0, 15] == 255 and 0 < mask[0, 13] < 255 and mask[0, 11] == 0  # a ramp into the old image
    assert mask[2:4, 2:4].min() == 255  # the artist's mask is kept


def test_extend_noise_varies_the_new_area_and_is_repeatable():
    pixels = np.full((8, 8, 3), 128, np.uint8)
    grown, _ = extend_image(pixels, None, Extension(top=8, left=8), "noise", seed=3)
    assert grown.shape == (16, 16, 3)
    assert grown[:8].std() > 20 and (grown[8:, 8:] == 128).all()
    again, _ = extend_image(pixels, None, Extension(top=8, left=8), "noise", seed=3)
    assert np.array_equal(grown, again)
    with pytest.raises(ValueError):
        extend_image(pixels, None, Extension(top=8), "mirror")


def test_preview_compositor_matches_the_engine_blend():
    source = np.full((32, 32, 3), 40, np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    compositor = PreviewCompositor(source, mask, blur=3, size=(32, 32))
    preview = np.full((4, 4, 3), 240, np.uint8)  # latent resolution
    out = compositor(preview)
    alpha = np.asarray(Image.fromarray(mask).filter(ImageFilter.GaussianBlur(3)), np.float32) / 255
    expected = np.clip(40 + (240 - 40) * alpha[..., None] + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert (out[0, 0] == 40).all() and (out[16, 16] > 230).all()
    assert np.allclose(feathered_alpha(mask, 0), mask / 255)


def test_preview_compositor_only_masked_pastes_into_the_crop_box():
    source = np.full((64, 64, 3), 40, np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[40:50, 40:50] = 255
    compositor = PreviewCompositor(source, mask, blur=0, size=(32, 32), only_masked=True, padding=4)
    out = compositor(np.full((4, 4, 3), 240, np.uint8))
    assert out.shape == (64, 64, 3)
    assert (out[45, 45] == 240).all() and (out[10, 10] == 40).all()


def test_default_brush_is_a_tenth_of_the_shorter_side_within_limits():
    assert default_brush_size(64, 64) == 6
    assert default_brush_size(768, 512) == 51
    assert default_brush_size(8, 8) == 1
    assert default_brush_size(8192, 8192, high=256) == 256


def test_mask_edges_mark_both_sides_of_the_boundary():
    mask = np.zeros((6, 6), np.uint8)
    mask[2:4, 2:4] = 255
    edges = mask_edges(mask)
    assert edges[2, 2] and edges[2, 1] and edges[1, 2]
    assert not edges[0, 0] and not edges[5, 5]
