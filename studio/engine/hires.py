"""A1111's hires fix: a second, upscaled img2img pass after txt2img. (Being built.)"""

from __future__ import annotations


def hires_steps(request, model) -> int:
    """Denoising steps the hires pass will run (0: no hires pass for this request)."""
    return 0


def hires_pass(engine, model, request, latents, progress):
    """(pipeline that made the final latents, final latents, note for the artist)."""
    raise NotImplementedError("hires fix is not built yet")
