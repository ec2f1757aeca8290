"""The family adapters: one per family, each answering for its own pipelines (tiny models)."""

import pytest

from studio.core.generation.request import GenerationRequest, Mode
from studio.core.models.family import Family
from studio.engine.families import ADAPTERS, adapter_for, config_dir, denoiser_of, latent_formats
from studio.engine.tiny_model import build_tiny_family


def test_every_family_has_an_adapter():
    assert set(ADAPTERS) == set(Family)
    assert all(adapter_for(family).family is family for family in Family)


def test_shipped_configs_are_known_by_name():
    assert config_dir("sdxl").name == "sdxl" and (config_dir("sdxl") / "model_index.json").is_file()
    with pytest.raises(KeyError, match="sd3"):
        config_dir("sd3")


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_adapter_reads_its_tiny_pipeline(family):
    pipe = build_tiny_family(family)
    adapter = adapter_for(Family(family))
    assert denoiser_of(pipe) is adapter.denoiser_of(pipe) is pipe.unet
    assert isinstance(pipe, adapter.pipeline_classes()[Mode.TXT2IMG])
    encoders = adapter.text_encoders(pipe)
    assert [e.key for e in encoders] == (["clip_l", "clip_g"] if family == "sdxl" else ["emb_params"])
    assert [e.pooled for e in encoders] == ([False, True] if family == "sdxl" else [False])
    assert adapter.latent.channels == pipe.vae.config.latent_channels == 4
    assert any(latent.fits(pipe.vae) for latent in latent_formats())
    request = GenerationRequest("x", width=96, height=64)
    extra = adapter.call_arguments(request)
    assert extra == ({"original_size": (64, 96), "target_size": (64, 96), "crops_coords_top_left": (0, 0)}
                     if family == "sdxl" else {})
    assert adapter.clip_skip(2) == (2 if family == "sd1" else 1)  # A1111: clip skip is SD 1.x's
    assert adapter.zero_empty_negative(pipe) is (family == "sdxl")
