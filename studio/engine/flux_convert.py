"""Flux transformer key layouts: BFL's original names <-> diffusers' FluxTransformer2DModel names.

diffusers has the forward conversion (single_file_utils.convert_flux_transformer_checkpoint_to_diffusers)
but it fixes the width at 3072, so it cannot open a narrower model (the studio's tiny test models)
and pops from the dict it is given. This is the same mapping, table-driven, for any width and any
number of blocks; tests/engine/test_flux_convert.py checks it gives exactly what diffusers' own
conversion gives at full width. Works on anything torch.split / torch.cat accept: plain tensors,
meta tensors, and diffusers' GGUFParameter (whose quantized rows split like plain ones).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

# (BFL name, diffusers name) for tensors that map one to one, per block and at the top.
DOUBLE_RENAMES = (
    ("img_mod.lin", "norm1.linear"),
    ("txt_mod.lin", "norm1_context.linear"),
    ("img_attn.norm.query_norm.scale", "attn.norm_q.weight"),
    ("img_attn.norm.key_norm.scale", "attn.norm_k.weight"),
    ("txt_attn.norm.query_norm.scale", "attn.norm_added_q.weight"),
    ("txt_attn.norm.key_norm.scale", "attn.norm_added_k.weight"),
    ("img_mlp.0", "ff.net.0.proj"),
    ("img_mlp.2", "ff.net.2"),
    ("txt_mlp.0", "ff_context.net.0.proj"),
    ("txt_mlp.2", "ff_context.net.2"),
    ("img_attn.proj", "attn.to_out.0"),
    ("txt_attn.proj", "attn.to_add_out"),
)
SINGLE_RENAMES = (
    ("modulation.lin", "norm.linear"),
    ("norm.query_norm.scale", "attn.norm_q.weight"),
    ("norm.key_norm.scale", "attn.norm_k.weight"),
    ("linear2", "proj_out"),
)
TOP_RENAMES = (
    ("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"),
    ("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"),
    ("vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
    ("vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
    ("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"),
    ("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"),
    ("txt_in", "context_embedder"),
    ("img_in", "x_embedder"),
    ("final_layer.linear", "proj_out"),
)
# Fused BFL matrices, split along their rows into the diffusers projections, in this order.
DOUBLE_FUSED = (
    ("img_attn.qkv", ("attn.to_q", "attn.to_k", "attn.to_v")),
    ("txt_attn.qkv", ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")),
)
SINGLE_FUSED = ("linear1", ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"))
# BFL's final AdaLayerNorm gives (shift, scale); diffusers' AdaLayerNormContinuous (scale, shift).
FINAL_NORM = ("final_layer.adaLN_modulation.1", "norm_out.linear")
_SUFFIXES = (".weight", ".bias")


def swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def _block_indices(names, prefix: str) -> list[int]:
    found = set()
    for name in names:
        if name.startswith(prefix):
            index = name[len(prefix) :].split(".", 1)[0]
            if index.isdigit():
                found.add(int(index))
    return sorted(found)


def bfl_to_diffusers(state: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """The diffusers-layout state dict of a BFL-layout Flux transformer (tensors under `prefix`).
    Tensors that are not the transformer's (a ComfyUI `scaled_fp8` marker, scale_weight keys) are left out.
    """
    source = {name[len(prefix) :]: value for name, value in state.items() if name.startswith(prefix)}
    out: dict[str, torch.Tensor] = {}

    def move(bfl: str, diffusers: str) -> None:
        for suffix in _SUFFIXES:
            if bfl + suffix in source:
                out[diffusers + suffix] = source[bfl + suffix]
        if bfl in source:  # the qk-norm scales carry no suffix of their own in BFL
            out[diffusers] = source[bfl]

    hidden = source["img_in.weight"].shape[0]
    for bfl, diffusers in TOP_RENAMES:
        move(bfl, diffusers)
    for suffix in _SUFFIXES:
        if FINAL_NORM[0] + suffix in source:
            out[FINAL_NORM[1] + suffix] = swap_halves(source[FINAL_NORM[0] + suffix])
    for i in _block_indices(source, "double_blocks."):
        b, d = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        for bfl, diffusers in DOUBLE_RENAMES:
            move(b + bfl, d + diffusers)
        for fused, parts in DOUBLE_FUSED:
            for suffix in _SUFFIXES:
                for part, piece in zip(parts, source[b + fused + suffix].chunk(3, dim=0), strict=True):
                    out[d + part + suffix] = piece
    for i in _block_indices(source, "single_blocks."):
        b, d = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        for bfl, diffusers in SINGLE_RENAMES:
            move(b + bfl, d + diffusers)
        fused, parts = SINGLE_FUSED
        for suffix in _SUFFIXES:
            tensor = source[b + fused + suffix]
            sizes = (hidden, hidden, hidden, tensor.shape[0] - 3 * hidden)
            for part, piece in zip(parts, torch.split(tensor, sizes, dim=0), strict=True):
                out[d + part + suffix] = piece
    return out


def diffusers_to_bfl(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of bfl_to_diffusers: how BFL's own files and ComfyUI name the same tensors."""
    out: dict[str, torch.Tensor] = {}

    def move(diffusers: str, bfl: str) -> None:
        for suffix in _SUFFIXES:
            if diffusers + suffix in state:
                out[bfl + suffix] = state[diffusers + suffix]
        if diffusers in state:
            out[bfl] = state[diffusers]

    for bfl, diffusers in TOP_RENAMES:
        move(diffusers, bfl)
    for suffix in _SUFFIXES:
        out[FINAL_NORM[0] + suffix] = swap_halves(state[FINAL_NORM[1] + suffix])
    for i in _block_indices(state, "transformer_blocks."):
        d, b = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        for bfl, diffusers in DOUBLE_RENAMES:
            move(d + diffusers, b + bfl)
        for fused, parts in DOUBLE_FUSED:
            for suffix in _SUFFIXES:
                out[b + fused + suffix] = torch.cat([state[d + part + suffix] for part in parts], dim=0)
    for i in _block_indices(state, "single_transformer_blocks."):
        d, b = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        for bfl, diffusers in SINGLE_RENAMES:
            move(d + diffusers, b + bfl)
        fused, parts = SINGLE_FUSED
        for suffix in _SUFFIXES:
            out[b + fused + suffix] = torch.cat([state[d + part + suffix] for part in parts], dim=0)
    return out
