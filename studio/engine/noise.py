"""The starting noise of a txt2img pass: A1111's variation seeds and "resize seed from".

A1111 (modules/rng.py, ImageRNG.first) draws the noise of the seed and of the variation seed
("subseed"), mixes them by spherical interpolation at the variation strength, and, for "resize
seed from WxH", draws both at that other size and pastes the mix centred into the seed's noise
at the real size. Here every draw is the CPU generator's `torch.randn` of the latent shape, in
the pipeline's dtype, exactly as diffusers draws its own starting latents for the same seed:
the seed's part of the noise is bit-for-bit the noise of an image made without variations.

When no variation or resize is asked, `initial_noise` returns None and the pipeline draws the
noise itself, so every image made before this existed stays reproducible.

The hires fix's second pass gets the same treatment (A1111's sample_hr_pass builds a new ImageRNG
of the upscaled latent shape with the same seeds, variation seeds, strength and "resize seed
from"): `vary_added_noise` mixes the noise the img2img pipeline adds to the upscaled picture.
There "resize seed from" is measured against the upscaled size, as in A1111, so a resize from the
first pass's size, which changes nothing in the first pass, pastes that size's noise into the
middle of the second pass's noise.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from studio.core.generation.request import MAX_SEED, GenerationRequest
from studio.engine.families import denoiser_of


def image_request(request: GenerationRequest, index: int) -> GenerationRequest:
    """The single-image request of image `index` of a batch, numbered as A1111 numbers it
    (processing.py, process_images_inner): without variations each image takes the next seed;
    with a variation strength the seed stays and each image takes the next variation seed,
    so a batch is a set of variations of one picture."""
    if request.variation_strength > 0:
        return replace(request, variation_seed=(request.variation_seed + index) % (MAX_SEED + 1), batch_count=1)
    return request.for_image(index)


def uses_noise_extras(request: GenerationRequest) -> bool:
    """True when the request's starting noise is not simply its seed's noise."""
    return (request.variation_strength > 0 and request.variation_seed != request.seed) or _resize_size(request) is not None


def _resize_size(request: GenerationRequest) -> tuple[int, int] | None:
    """(width, height) to draw the noise at, or None. Both sides must be set (A1111: either
    side <= 0 turns it off); the request's own size is the same as no resize."""
    width, height = request.seed_resize_width, request.seed_resize_height
    if width <= 0 or height <= 0 or (width, height) == (request.width, request.height):
        return None
    return width, height


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's spherical interpolation (modules/rng.py `slerp`), on one image's (C, H, W) noise.

    Its norms and dot products run along dim 1 (the rows), so each (channel, column) line of
    the noise is interpolated on its own: that is what A1111 computes, so it is kept. A1111's
    fallback for nearly parallel inputs (`low * val + high * (1 - val)`) has the weights the
    wrong way round; here it is the plain linear interpolation `low * (1 - val) + high * val`
    (the two inputs are then almost equal, so the difference is tiny, but 0 must mean `low`)."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * (1.0 - val) + high * val
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


def paste_centred(noise: torch.Tensor, into: torch.Tensor) -> torch.Tensor:
    """`noise` (C, h, w) pasted centred into a copy of `into` (C, H, W), cropped where larger:
    A1111's exact offsets (ImageRNG.first), so a picture keeps its composition when its size
    changes."""
    x = into.clone()
    dx = (x.shape[2] - noise.shape[2]) // 2
    dy = (x.shape[1] - noise.shape[1]) // 2
    w = noise.shape[2] if dx >= 0 else noise.shape[2] + 2 * dx
    h = noise.shape[1] if dy >= 0 else noise.shape[1] + 2 * dy
    tx, ty = max(dx, 0), max(dy, 0)
    dx = max(-dx, 0)
    dy = max(-dy, 0)
    x[:, ty:ty + h, tx:tx + w] = noise[:, dy:dy + h, dx:dx + w]
    return x


def latent_shape(pipe, width: int, height: int) -> tuple[int, int, int, int]:
    """(1, C, h, w) as the txt2img pipeline's prepare_latents makes it."""
    scale = pipe.vae_scale_factor
    return (1, denoiser_of(pipe).config.in_channels, int(height) // scale, int(width) // scale)


def draw(shape: tuple[int, ...], seed: int | None, dtype: torch.dtype, generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise drawn on the CPU exactly as diffusers' randn_tensor draws it (from `generator`,
    advancing it, or from a fresh generator seeded with `seed`)."""
    from diffusers.utils.torch_utils import randn_tensor

    if generator is None:
        generator = torch.Generator("cpu").manual_seed(int(seed))
    return randn_tensor(shape, generator=generator, device=torch.device("cpu"), dtype=dtype)


def with_variations(pipe, request: GenerationRequest, seed_noise: torch.Tensor) -> torch.Tensor:
    """The request's noise, made from `seed_noise`: the seed's own noise of the pass, (B, C, h, w)
    at the request's size, as the pipeline draws it from its generator.

    With a variation strength it is slerped with the variation seed's noise; with "resize seed
    from" the seed's and the variation seed's noise are drawn afresh at that size, mixed, and
    pasted centred into `seed_noise` (A1111's ImageRNG.first). The mix is computed on the CPU,
    so it is the same on every device, and handed back on `seed_noise`'s device and dtype."""
    if not uses_noise_extras(request):
        return seed_noise
    dtype, device = seed_noise.dtype, seed_noise.device
    resize = _resize_size(request)
    scale = pipe.vae_scale_factor
    noise_shape = (1, seed_noise.shape[1], resize[1] // scale, resize[0] // scale) if resize else (1, *seed_noise.shape[1:])
    vary = request.variation_strength > 0 and request.variation_seed != request.seed
    rows = []
    for row in seed_noise.cpu():  # one image per pass in this engine; a batch gets the same mix per image
        # A1111 draws the seed's noise afresh at the resize size, from the pipeline's generator otherwise.
        noise = draw(noise_shape, request.seed, dtype)[0] if resize else row
        if vary:
            subnoise = draw(noise_shape, request.variation_seed, dtype)[0]
            noise = slerp(request.variation_strength, noise.float(), subnoise.float()).to(dtype)
        rows.append(paste_centred(noise, row) if resize else noise)
    return torch.stack(rows).to(device)


def initial_noise(pipe, request: GenerationRequest, generator: torch.Generator | None = None,
                  shape: tuple[int, int, int, int] | None = None) -> torch.Tensor | None:
    """Latents to start from, or None to let the pipeline draw them from the seed's generator.

    `generator` is the pipeline's own generator for this pass: the seed's noise is drawn from
    it, so it advances exactly as when the pipeline draws the noise itself and the noise of
    ancestral and SDE samplers' later steps is unchanged."""
    if not uses_noise_extras(request):
        return None
    if generator is None:
        generator = torch.Generator("cpu").manual_seed(request.seed)
    shape = shape or latent_shape(pipe, request.width, request.height)
    seed_noise = draw(shape, request.seed, denoiser_of(pipe).dtype, generator)
    return with_variations(pipe, request, seed_noise)


def vary_added_noise(pipe, request: GenerationRequest) -> None:
    """Make the img2img pass of `pipe` (the hires fix's second pass) start from the request's
    varied noise, as A1111's sample_hr_pass does. Call it after the pass's scheduler is set.

    diffusers' img2img pipelines draw their noise inside prepare_latents and hand it to the
    scheduler's add_noise once; the scheduler (a fresh one per pass) gets a one-shot wrapper
    that mixes that noise. The pipeline still draws the seed's noise itself, so its generator
    advances exactly as without variations (the VAE's sampling before it, ancestral samplers'
    noise after it), and without variations nothing is wrapped: today's images stay as they are."""
    if not uses_noise_extras(request):
        return
    scheduler = pipe.scheduler
    add_noise = scheduler.add_noise

    def add_varied_noise(original_samples, noise, timesteps):
        del scheduler.add_noise  # once: only the starting noise is varied
        return add_noise(original_samples, with_variations(pipe, request, noise), timesteps)

    scheduler.add_noise = add_varied_noise
