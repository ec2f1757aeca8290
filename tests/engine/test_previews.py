import json

import numpy as np
import torch

from studio.engine.families.sd1 import SD_LATENT
from studio.engine.previews import LatentPreviewer, X0Tap, calibrate, previewer_for


def test_linear_map_gives_expected_colours():
    previewer = LatentPreviewer([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]])
    latents = torch.zeros(1, 4, 2, 2)
    latents[0, 0] = 1.0  # full red
    latents[0, 1] = -1.0  # no green
    rgb = previewer.to_rgb(latents)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (255, 0, 127)


def test_model_folder_factors_win(tmp_path, tiny_model_dir):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tiny_model_dir / "vae")
    factors = [[0.1, 0.2, 0.3]] * 4
    (tmp_path / "latent_preview.json").write_text(json.dumps({"factors": factors, "bias": [0, 0, 0.5]}))
    previewer = previewer_for(tmp_path, vae)
    assert torch.allclose(previewer.factors, torch.tensor(factors))
    (tmp_path / "latent_preview.json").write_text("{broken")
    assert previewer_for(tmp_path, vae).factors.shape == (4, 3)  # falls back, never raises


def test_sd15_vae_gets_community_factors(tmp_path, tiny_model_dir):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tiny_model_dir / "vae", scaling_factor=0.18215)
    assert torch.allclose(previewer_for(tmp_path, vae).factors, torch.tensor(SD_LATENT.preview_factors))


def test_calibration_fits_a_vae_that_is_linear():
    """A VAE whose encoder is a known linear map of pooled colours: calibration recovers it."""

    class LinearVae(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.tensor([[0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.2, 0.2, 0.2]]))
            self.config = type("C", (), {"block_out_channels": [8, 8], "scaling_factor": 1.0, "latent_channels": 4})()
            self.config.get = lambda key, default=None: getattr(self.config, key, default)

        def encode(self, images):
            pooled = torch.nn.functional.avg_pool2d(images, 2)
            latents = torch.einsum("bchw,lc->blhw", pooled, self.weight)
            return type("O", (), {"latent_dist": type("D", (), {"mean": latents})()})()

    previewer = calibrate(LinearVae())
    latents = torch.einsum("chw,lc->lhw", torch.tensor([0.8, -0.4, 0.1]).view(3, 1, 1), LinearVae().weight)
    rgb = previewer.to_rgb(latents[None])
    expected = ((np.array([0.8, -0.4, 0.1]) + 1) * 127.5).round()
    assert np.abs(rgb[0, 0].astype(float) - expected).max() <= 2


def test_x0_tap_reads_each_scheduler_family(tiny_model_dir):
    from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler, LCMScheduler, UniPCMultistepScheduler

    for cls in (EulerDiscreteScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler, LCMScheduler):
        scheduler = cls.from_pretrained(tiny_model_dir / "scheduler")
        tap = X0Tap(scheduler)
        scheduler.set_timesteps(4)
        sample = torch.randn(1, 4, 8, 8)
        eps = torch.randn(1, 4, 8, 8)
        out = scheduler.step(eps, scheduler.timesteps[0], sample, return_dict=False)
        assert isinstance(out, tuple) and out[0].shape == sample.shape
        assert tap.x0 is not None and tap.x0.shape == sample.shape, cls.__name__
        assert not torch.equal(tap.x0, out[0]), cls.__name__  # x0, not the next noisy sample


def test_a_deeply_nested_preview_file_never_blocks_the_model(tmp_path):
    """A latent_preview.json nested past the parser's recursion limit falls back like any bad file."""
    from studio.engine.tiny_model import build_tiny_pipeline

    vae = build_tiny_pipeline(0).vae
    (tmp_path / "latent_preview.json").write_text("[" * 100_000 + "]" * 100_000)
    assert previewer_for(tmp_path, vae).factors.shape == (4, 3)
