"""A1111's hires fix: a second, upscaled img2img pass after txt2img.

A1111 (modules/processing.py, StableDiffusionProcessingTxt2Img.sample_hr_pass): the first pass
runs at the requested size; its latents are upscaled (interpolated as latents for the "Latent"
upscalers; decoded, resized as pixels and encoded again for the others) and denoised again by
img2img at the hires denoising strength, with the same prompt, seed, variation seed and sampler.

Steps: A1111 runs exactly `Hires steps` (or `Steps` when 0) denoising steps in the second pass,
stretching the schedule to `steps / denoise` (sd_samplers_common.setup_img2img_steps). diffusers'
img2img runs `int(num_inference_steps * strength)`, so the pass asks for the smallest schedule
that runs at least that many; `hires_steps()` says exactly how many steps it will report.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from studio.core.generation.request import MAX_SIDE, GenerationRequest, InvalidRequest, Mode, output_size

# A1111's latent upscale modes (shared.latent_upscale_modes): torch interpolate mode, antialias.
LATENT_UPSCALERS = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
# Pixel upscalers that need no model. A1111's "None" resizes with Lanczos (images.resize_image).
PIXEL_UPSCALERS = {
    "Lanczos": Image.Resampling.LANCZOS,
    "Nearest": Image.Resampling.NEAREST,
    "None": Image.Resampling.LANCZOS,
}
INPAINT_MODEL_NOTE = "Hires fix was skipped: inpainting models (9-channel) cannot run it."


def wants_hires(request: GenerationRequest) -> bool:
    """A1111 runs the hires fix for txt2img only; img2img and inpaint ignore its settings."""
    return request.mode is Mode.TXT2IMG and request.hires_scale > 1.0


def hires_size(request: GenerationRequest) -> tuple[int, int]:
    """(width, height) of the second pass: the first pass's size times the hires upscale, to the
    nearest multiple of 8. InvalidRequest when a side would exceed MAX_SIDE."""
    width, height = output_size(replace(request, mode=Mode.TXT2IMG))
    if max(width, height) > MAX_SIDE:
        raise InvalidRequest(
            f"Hires fix would make a {width}x{height} picture; each side can be at most {MAX_SIDE} pixels. "
            "Lower “Upscale by”, or the width and height."
        )
    return width, height


def _schedule(request: GenerationRequest, model) -> tuple[int, int]:
    """(num_inference_steps to ask the img2img pipeline for, steps it will report).

    The steps asked for are the fewest for which diffusers runs at least the hires steps, as
    A1111 does; the count is taken from a scheduler set up the way the pipeline sets up its own
    (second-order samplers report two timesteps per step)."""
    wanted = request.hires_steps or request.steps
    strength = request.hires_denoise
    limit = int(model.base_scheduler_config.get("num_train_timesteps", 1000) or 1000)
    total = max(wanted, math.floor(wanted / strength))
    while int(total * strength) < wanted and total < limit:
        total += 1
    total = min(total, limit)
    scheduler, _ = model.adapter.make_scheduler(request.sampler, model.base_scheduler_config, request.seed)
    try:
        _set_timesteps(scheduler, total)
    except ValueError:  # a scheduler with its own cap (LCM): diffusers' plain meaning of steps
        total = wanted
        _set_timesteps(scheduler, total)
    start = max(total - min(int(total * strength), total), 0)
    return total, len(scheduler.timesteps[start * scheduler.order:])


def _set_timesteps(scheduler, steps: int) -> None:
    """Timesteps for counting them; a flow-matching scheduler that shifts with the image size
    (Flux [dev]) needs a shift, which changes their values, never their count."""
    if getattr(scheduler.config, "use_dynamic_shifting", False):
        scheduler.set_timesteps(steps, mu=0.0)
    else:
        scheduler.set_timesteps(steps)


def hires_steps(request: GenerationRequest, model) -> int:
    """Denoising steps the hires pass will report (0: no hires pass for this request)."""
    if not wants_hires(request) or model.inpaint_only:
        return 0
    hires_size(request)  # a size that cannot be made fails before the first pass, not after it
    return _schedule(request, model)[1]


def upscale_latents(latents: torch.Tensor, size: tuple[int, int], scale: int, upscaler: str) -> torch.Tensor:
    """Latents interpolated to `size` (width, height in pixels) with an A1111 latent mode."""
    mode, antialias = LATENT_UPSCALERS[upscaler]
    width, height = size
    upscaled = torch.nn.functional.interpolate(
        latents.float(), size=(height // scale, width // scale), mode=mode, antialias=antialias
    )
    return upscaled.to(latents.dtype)


def upscale_pixels(image: np.ndarray, size: tuple[int, int], upscaler: str) -> Image.Image:
    """A decoded (H, W, 3) float picture in [0, 1] resized to `size` with Pillow."""
    pixels = (image * 255).round().clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels).resize(size, PIXEL_UPSCALERS[upscaler])


def hires_pass(engine, model, request: GenerationRequest, latents: torch.Tensor, progress):
    """(pipeline that made the final latents, final latents, note for the artist)."""
    if model.inpaint_only:
        return model.pipe, latents, INPAINT_MODEL_NOTE
    size = hires_size(request)
    upscaler, notes = request.hires_upscaler, []
    if upscaler not in LATENT_UPSCALERS and upscaler not in PIXEL_UPSCALERS:
        notes.append(f"The upscaler “{upscaler[:60]}” is not available here; Lanczos was used.")
        upscaler = "Lanczos"
    first = model.pipeline(Mode.TXT2IMG)
    if upscaler in LATENT_UPSCALERS:
        image = upscale_latents(latents, size, first.vae_scale_factor, upscaler)
    else:
        decoded, note = model.decoder.decode(first, latents)
        notes.append(note)
        image = upscale_pixels(decoded, size, upscaler)  # the img2img pipeline encodes it again
    total, _ = _schedule(request, model)
    second = replace(request, width=size[0], height=size[1], steps=total)  # SDXL conditions on this size
    pipe = model.pipeline(Mode.IMG2IMG)
    progress.extra_steps = 0  # this pass's own steps are counted by the pipeline from now on
    # A1111 gives this pass's noise the same variation seed and "resize seed from" (measured
    # against the upscaled size) as the first pass's: studio.engine.noise.vary_added_noise.
    inputs = {"image": image, "strength": request.hires_denoise}
    # Its prompt edits follow A1111's hires schedule: steps counted on from the first pass's.
    latents = engine.denoise(model, pipe, second, inputs, progress, vary_img2img_noise=True,
                             hires_of=(request.steps, request.hires_steps or request.steps))
    return pipe, latents, " ".join(n for n in notes if n)
