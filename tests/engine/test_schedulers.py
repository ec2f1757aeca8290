"""The A1111 sampler table: every sampler keeps the model's own training schedule."""

import pytest
from diffusers import DPMSolverMultistepScheduler

from studio.engine.schedulers import SCHEDULERS, make_scheduler

# What a diffusers-saved model often carries: a DPM-Solver config, with no DDIM-only keys.
BASE = DPMSolverMultistepScheduler(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
    timestep_spacing="leading", prediction_type="v_prediction",
).config


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_sampler_keeps_the_models_schedule_and_prediction_type(name):
    scheduler = make_scheduler(name, BASE, seed=1)
    assert type(scheduler) is SCHEDULERS[name][0]
    assert scheduler.config.prediction_type == "v_prediction"  # a v model must not be sampled as epsilon
    assert scheduler.config.beta_schedule == "scaled_linear"
    assert scheduler.config.beta_end == 0.012


def test_ddim_does_not_clip_latents_unless_the_model_asks():
    ddim = make_scheduler("DDIM", BASE)
    assert ddim.config.clip_sample is False and ddim.config.set_alpha_to_one is False
    asked = make_scheduler("DDIM", {**BASE, "clip_sample": True, "set_alpha_to_one": True})
    assert asked.config.clip_sample is True and asked.config.set_alpha_to_one is True
