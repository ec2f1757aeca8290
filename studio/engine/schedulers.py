"""A1111 sampler names -> diffusers schedulers (diffusers docs, schedulers/overview.md)."""

from __future__ import annotations

from typing import Any

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSDEScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    KDPM2AncestralDiscreteScheduler,
    KDPM2DiscreteScheduler,
    LCMScheduler,
    LMSDiscreteScheduler,
    UniPCMultistepScheduler,
)

from studio.core.samplers import SAMPLER_NAMES, canonical_sampler

_KARRAS = {"use_karras_sigmas": True}
SCHEDULERS: dict[str, tuple[type, dict[str, Any]]] = {
    "Euler": (EulerDiscreteScheduler, {}),
    "Euler a": (EulerAncestralDiscreteScheduler, {}),
    "Heun": (HeunDiscreteScheduler, {}),
    "LMS": (LMSDiscreteScheduler, {}),
    "LMS Karras": (LMSDiscreteScheduler, _KARRAS),
    "DDIM": (DDIMScheduler, {}),
    "DPM++ 2M": (DPMSolverMultistepScheduler, {}),
    "DPM++ 2M Karras": (DPMSolverMultistepScheduler, _KARRAS),
    "DPM++ 2M SDE": (DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++"}),
    "DPM++ 2M SDE Karras": (DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++", **_KARRAS}),
    "DPM++ SDE Karras": (DPMSolverSDEScheduler, _KARRAS),
    "DPM2 Karras": (KDPM2DiscreteScheduler, _KARRAS),
    "DPM2 a Karras": (KDPM2AncestralDiscreteScheduler, _KARRAS),
    "UniPC": (UniPCMultistepScheduler, {}),
    "LCM": (LCMScheduler, {}),
}
assert set(SCHEDULERS) == set(SAMPLER_NAMES), "every sampler the UI offers needs a scheduler"

# Options a model's own scheduler config may carry that make no sense for another sampler.
_NOT_INHERITED = ("use_karras_sigmas", "algorithm_type", "solver_order")


def make_scheduler(name: str, base_config: dict[str, Any], seed: int | None = None):
    """A fresh scheduler of the named sampler, keeping the model's training noise schedule.

    DPM++ SDE draws its Brownian noise from its own seed, not the pipeline's generator: give
    it the request's seed, or the same request would not give the same pixels."""
    cls, options = SCHEDULERS[canonical_sampler(name)]
    config = {k: v for k, v in dict(base_config).items() if k not in _NOT_INHERITED}
    if cls is DDIMScheduler:
        # DDIM's own defaults clip x0 to [-1, 1] and treat the last step as noise-free: right
        # for pixel models, wrong for SD latents (they often exceed 1), and not what A1111's
        # DDIM does. A config that says otherwise (SD 1.5's does) still wins.
        config.setdefault("clip_sample", False)
        config.setdefault("set_alpha_to_one", False)
    if cls is DPMSolverSDEScheduler and seed is not None:
        options = {**options, "noise_sampler_seed": seed}
    return cls.from_config(config, **options)
