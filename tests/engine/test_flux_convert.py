"""The BFL <-> diffusers Flux key mapping, checked against diffusers' own forward conversion
(convert_flux_transformer_checkpoint_to_diffusers) at the real width, and as a round trip on a
tiny model's real weights."""

import torch
from diffusers import FluxTransformer2DModel
from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

from studio.engine.flux_convert import bfl_to_diffusers, diffusers_to_bfl
from studio.engine.flux_loading import config_folder
from tests.flux_files import build_tiny_flux


def _full_width_state(variant: str, layers: int = 2, single_layers: int = 2) -> dict[str, torch.Tensor]:
    """diffusers-layout tensors of the real-width Flux.1 at reduced depth, each collapsed to one
    column of distinct values (rows are all the conversion moves): exact, and a few MB."""
    config = dict(FluxTransformer2DModel.load_config(config_folder(variant) / "transformer"))
    config.update(num_layers=layers, num_single_layers=single_layers)
    with torch.device("meta"):
        shapes = {name: p.shape for name, p in FluxTransformer2DModel.from_config(config).state_dict().items()}
    out, start = {}, 0
    for name, shape in shapes.items():
        out[name] = torch.arange(start, start + shape[0], dtype=torch.float64)[:, None]
        start += shape[0]
    return out


def test_inverse_round_trips_through_diffusers_own_conversion_at_full_width():
    for variant in ("dev", "schnell", "fill"):
        state = _full_width_state(variant)
        bfl = diffusers_to_bfl(state)
        assert "double_blocks.1.img_attn.qkv.weight" in bfl and "single_blocks.1.linear1.bias" in bfl
        assert ("guidance_in.in_layer.weight" in bfl) is (variant != "schnell")
        back = convert_flux_transformer_checkpoint_to_diffusers(dict(bfl))
        assert back.keys() == state.keys()
        for name, value in state.items():
            assert torch.equal(back[name], value), name


def test_forward_conversion_equals_diffusers_on_a_comfyui_prefixed_file():
    bfl = diffusers_to_bfl(_full_width_state("dev"))
    prefixed = {"model.diffusion_model." + k: v for k, v in bfl.items()}
    prefixed["model.diffusion_model.scaled_fp8"] = torch.empty(0)  # a marker the conversion must leave out
    ours = bfl_to_diffusers(prefixed, prefix="model.diffusion_model.")
    theirs = convert_flux_transformer_checkpoint_to_diffusers(dict(bfl))
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_tiny_model_weights_round_trip_exactly():
    for variant in ("dev", "schnell", "fill"):
        state = build_tiny_flux(variant).transformer.state_dict()
        back = bfl_to_diffusers(diffusers_to_bfl(state))
        assert back.keys() == state.keys()
        assert all(torch.equal(back[k], state[k]) for k in state)
