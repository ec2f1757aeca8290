"""Preparing img2img/inpaint inputs and compositing results back (Pillow + numpy only).

The denoiser sees a binarised mask; the seam comes from compositing with the *blurred* mask
as alpha, so with a hard mask every pixel beyond the blur is exactly the input pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from studio.core.canvas.mask_ops import Rect, crop_for_mask
from studio.core.errors import ErrorKind, StudioError
from studio.core.generation.request import GenerationRequest, InpaintArea, MaskedContent


def load_rgb(path: str | Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise StudioError(ErrorKind.BAD_INPUT, f"Could not read the input image {Path(path).name}: {exc}") from exc


def load_mask(path: str | Path, size: tuple[int, int]) -> Image.Image:
    try:
        with Image.open(path) as image:
            mask = image.convert("L")
    except (OSError, ValueError) as exc:
        raise StudioError(ErrorKind.BAD_INPUT, f"Could not read the mask {Path(path).name}: {exc}") from exc
    return mask if mask.size == size else mask.resize(size, Image.Resampling.BILINEAR)


def feather(mask: Image.Image, blur: int) -> Image.Image:
    return mask.filter(ImageFilter.GaussianBlur(blur)) if blur > 0 else mask


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111's "fill": smear the surrounding colours into the hole, coarse to fine."""
    hard = mask.point(lambda v: 255 if v > 127 else 0)
    result = image.copy()
    for radius in (256, 64, 16, 4, 1):
        blurred = result.filter(ImageFilter.GaussianBlur(radius))
        result = Image.composite(blurred, image, hard)
    return result


def noise_masked(image: Image.Image, mask: Image.Image, seed: int) -> Image.Image:
    """"latent noise": uniform noise under the mask, so nothing of the input survives there."""
    rng = np.random.default_rng(seed)
    noise = Image.fromarray(rng.integers(0, 256, (image.height, image.width, 3), dtype=np.uint8))
    return Image.composite(noise, image, mask.point(lambda v: 255 if v > 127 else 0))


@dataclass
class InpaintJob:
    """What the pipeline gets (image, mask at the working size) and how to put it back."""

    source: Image.Image  # the full input image
    image: Image.Image  # working image for the pipeline, request size
    mask: Image.Image  # working mask (blurred; the pipeline binarises it)
    alpha: Image.Image  # full-size blurred mask used to composite
    box: Rect  # where the working area sits in the source

    def composite(self, result: np.ndarray) -> np.ndarray:
        generated = Image.fromarray(result)
        if generated.size != (self.box.w, self.box.h):
            generated = generated.resize((self.box.w, self.box.h), Image.Resampling.LANCZOS)
        canvas = self.source.copy()
        canvas.paste(generated, (self.box.x, self.box.y))
        return np.asarray(Image.composite(canvas, self.source, self.alpha)).copy()


def prepare_inpaint(request: GenerationRequest) -> InpaintJob:
    source = load_rgb(request.init_image)
    size = (request.width, request.height)
    if request.inpaint_area is InpaintArea.WHOLE and source.size != size:
        source = source.resize(size, Image.Resampling.LANCZOS)  # A1111 "just resize"
    mask = load_mask(request.mask, source.size)
    hard = np.asarray(mask)
    if not (hard > 127).any():
        raise StudioError(ErrorKind.BAD_INPUT, "The mask is empty.", "Paint over the part to change (B), then generate.")
    if request.inpaint_area is InpaintArea.ONLY_MASKED:
        box = crop_for_mask(hard, request.inpaint_padding, request.width / request.height)
    else:
        box = Rect(0, 0, source.width, source.height)
    start = source
    if request.masked_content is MaskedContent.FILL:
        start = fill_masked(source, mask)
    elif request.masked_content is MaskedContent.LATENT_NOISE:
        start = noise_masked(source, mask, request.seed)
    crop = (box.x, box.y, box.x + box.w, box.y + box.h)
    work_image = start.crop(crop).resize(size, Image.Resampling.LANCZOS)
    alpha = feather(mask, request.mask_blur)
    work_mask = alpha.crop(crop).resize(size, Image.Resampling.BILINEAR)
    return InpaintJob(source, work_image, work_mask, alpha, box)


def prepare_img2img(request: GenerationRequest) -> Image.Image:
    image = load_rgb(request.init_image)
    size = (request.width, request.height)
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)
