"""The shipped Flux configs build the official architectures, and their schedulers shift as
[dev] (resolution-dependent) and [schnell] (fixed) do.

Every part is built on the meta device and must have exactly the official parameter count:
FLUX.1 [dev] 11,901,408,320; [schnell] lacks the guidance embedder (10,229,760 fewer); Fill's
image input reads 384 features instead of 64 (320 x 3072 more weights); T5-XXL's encoder
4,762,310,656; CLIP-L 123,060,480; the 16-channel Flux VAE 83,819,683.
"""

import json
import socket

import pytest
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from studio.engine.flux_loading import config_folder

DEV, GUIDANCE_EMBEDDER, FILL_EXTRA = 11_901_408_320, 10_229_760, 320 * 3072
EXPECTED = {"dev": DEV, "schnell": DEV - GUIDANCE_EMBEDDER, "fill": DEV + FILL_EXTRA}
T5_XXL, CLIP_L, FLUX_VAE = 4_762_310_656, 123_060_480, 83_819_683


def read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_parts_have_the_official_parameter_counts(variant):
    folder = config_folder(variant)
    with torch.device("meta"):
        transformer = FluxTransformer2DModel.from_config(FluxTransformer2DModel.load_config(folder / "transformer"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))
        t5 = T5EncoderModel(T5Config.from_pretrained(folder / "text_encoder_2", local_files_only=True))
        clip = CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder", local_files_only=True))
    assert n_params(transformer) == EXPECTED[variant]
    assert (n_params(t5), n_params(clip), n_params(vae)) == (T5_XXL, CLIP_L, FLUX_VAE)


@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_values_a_parameter_count_cannot_see(variant):
    folder = config_folder(variant)
    index, transformer, vae = (
        read(folder / "model_index.json"),
        read(folder / "transformer/config.json"),
        read(folder / "vae/config.json"),
    )
    assert index["_class_name"] == ("FluxFillPipeline" if variant == "fill" else "FluxPipeline")
    assert index["tokenizer_2"] == ["transformers", "T5TokenizerFast"]
    assert transformer["guidance_embeds"] is (variant != "schnell")
    assert transformer["axes_dims_rope"] == [16, 56, 56] and transformer["in_channels"] == (384 if variant == "fill" else 64)
    assert (vae["latent_channels"], vae["scaling_factor"], vae["shift_factor"]) == (16, 0.3611, 0.1159)
    assert not vae["use_quant_conv"] and not vae["use_post_quant_conv"]
    assert read(folder / "text_encoder/config.json")["hidden_act"] == "quick_gelu"
    assert read(folder / "tokenizer/special_tokens_map.json")["pad_token"] == "<|endoftext|>"
    t5 = read(folder / "text_encoder_2/config.json")
    assert (t5["feed_forward_proj"], t5["d_model"], t5["num_heads"], t5["vocab_size"]) == ("gated-gelu", 4096, 64, 32128)


def _sigmas(variant, height, width, steps):
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(read(config_folder(variant) / "scheduler/scheduler_config.json"))
    tokens = (height // 16) * (width // 16)
    # FluxPipeline's calculate_shift: mu linear in the token count between (256, 0.5) and (4096, 1.15)
    mu = 0.5 + (1.15 - 0.5) * (tokens - 256) / (4096 - 256)
    sigmas = torch.linspace(1.0, 1 / steps, steps).tolist()
    kwargs = {"mu": mu} if scheduler.config.use_dynamic_shifting else {}
    scheduler.set_timesteps(sigmas=sigmas, **kwargs)
    return scheduler.sigmas


def test_dev_shifts_with_the_resolution_and_schnell_does_not():
    small, large = _sigmas("dev", 512, 512, 4), _sigmas("dev", 1024, 1024, 4)
    assert large[1] > small[1]  # more tokens, more time at high noise
    # at 1024x1024 (4096 tokens) mu = 1.15: sigma' = e^mu / (e^mu + 1/sigma - 1)
    assert float(large[1]) == pytest.approx(3.1582 / (3.1582 + 1 / 0.75 - 1), abs=1e-3)
    assert torch.equal(_sigmas("schnell", 512, 512, 4), _sigmas("schnell", 1024, 1024, 4))
    assert torch.allclose(_sigmas("schnell", 1024, 1024, 4)[:4], torch.tensor([1.0, 0.75, 0.5, 0.25]))
