"""The starting noise of a txt2img pass. (Being extended with A1111's variation seeds and
"resize seed from"; until then the pipeline draws its own noise from the request's seed.)"""

from __future__ import annotations


def initial_noise(pipe, request):
    """Latents to start from, or None to let the pipeline draw them from the seed's generator."""
    return None
