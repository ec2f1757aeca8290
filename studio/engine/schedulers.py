"""A1111 sampler names -> diffusers schedulers (diffusers docs, schedulers/overview.md)."""

from __future__ import annotations

import functools
import warnings
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

from studio.core.generation.samplers import SAMPLER_NAMES, canonical_sampler

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

# torchsde's Brownian tree (DPM++ SDE's noise) checks each query against its interval's ends;
# diffusers builds the interval from float32 sigmas and queries with float64 ones, so the first
# and last steps are off by ~1e-4 and it warns ("Should have tb<=t1 but got tb=25.1461 and
# t1=25.146"), then clamps to the end, which is exactly right. Silenced only around this
# scheduler's own steps, only these messages: a real problem of torchsde still shows.
_SDE_ROUNDING = r"Should have (ta|tb)(<=t1|>=t0) but got"


def _quiet_rounding(step):
    @functools.wraps(step)
    def quiet_step(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_SDE_ROUNDING, category=UserWarning, module=r"torchsde\.")
            return step(*args, **kwargs)

    return quiet_step


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
    scheduler = cls.from_config(config, **options)
    if cls is DPMSolverSDEScheduler:
        scheduler.step = _quiet_rounding(scheduler.step)
    return scheduler
