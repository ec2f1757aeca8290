"""DPM++ SDE's steps print no torchsde rounding warning, and nothing else is silenced."""

import warnings

import torch
from diffusers import DPMSolverSDEScheduler

from studio.engine.schedulers import make_scheduler


def _run(scheduler, steps=20):
    scheduler.set_timesteps(steps)
    latents = torch.zeros(1, 4, 8, 8)
    for t in scheduler.timesteps:
        latents = scheduler.step(torch.zeros_like(latents), t, latents).prev_sample


def test_dpm_sde_steps_print_no_torchsde_rounding_warning():
    scheduler = make_scheduler("DPM++ SDE Karras", dict(DPMSolverSDEScheduler().config), seed=3)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=UserWarning)  # torchsde's are UserWarnings
        _run(scheduler)


def test_the_bare_scheduler_does_warn_so_the_filter_is_needed():
    """The warning is real (torchsde 0.2.6, diffusers' float32 sigmas): without the studio's
    wrapper it appears; if a diffusers update fixes it, this test says the filter can go."""
    bare = DPMSolverSDEScheduler.from_config(DPMSolverSDEScheduler().config, use_karras_sigmas=True, noise_sampler_seed=3)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _run(bare)
    assert any("Should have tb<=t1" in str(w.message) for w in seen)


def test_other_warnings_inside_a_step_still_show(monkeypatch):
    scheduler = make_scheduler("DPM++ SDE Karras", dict(DPMSolverSDEScheduler().config), seed=3)
    inner = DPMSolverSDEScheduler.step

    def noisy(self, *args, **kwargs):
        warnings.warn("something else", UserWarning, stacklevel=1)
        return inner(self, *args, **kwargs)

    monkeypatch.setattr(DPMSolverSDEScheduler, "step", noisy)
    scheduler = make_scheduler("DPM++ SDE Karras", dict(DPMSolverSDEScheduler().config), seed=3)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _run(scheduler, steps=2)
    assert any(str(w.message) == "something else" for w in seen)
