"""The generation field table (core/fields.py) is the one declaration the others derive from."""

from __future__ import annotations

import dataclasses
import enum

import pytest

from studio.core.generation import fields as table
from studio.core.generation.fields import FIELD, FIELDS, NON_GENERATION_SETTINGS, NUMBER_FIELDS
from studio.core.generation.request import _FLOAT_FIELDS, _INT_FIELDS, _TEXT_FIELDS, GenerationRequest, InvalidRequest
from studio.core.generation.settings import NUMBER_RANGES, Settings, clamp_number


def test_every_request_field_is_in_the_table_and_nothing_else_claims_to_be():
    request_names = {f.name for f in dataclasses.fields(GenerationRequest)}
    assert request_names == {f.name for f in FIELDS if f.in_request}


def test_every_settings_field_is_a_table_field_or_declared_not_generation():
    settings_names = {f.name for f in dataclasses.fields(Settings)}
    generation = settings_names - set(NON_GENERATION_SETTINGS)
    assert generation == {f.name for f in FIELDS if f.in_settings}
    assert set(NON_GENERATION_SETTINGS) <= settings_names  # no stale names in the exclusion list


def test_defaults_come_from_the_table():
    request, settings = GenerationRequest("x"), Settings()
    for f in FIELDS:
        if f.in_request and f.name != "prompt":
            assert getattr(request, f.name) == f.default_in_request, f.name
        if f.in_settings:
            value = getattr(settings, f.name)
            assert value == f.settings_default and not isinstance(value, enum.Enum), f.name


def test_request_type_lists_are_derived():
    assert set(_INT_FIELDS) == {f.name for f in FIELDS if f.in_request and f.type is int}
    assert set(_FLOAT_FIELDS) == {f.name for f in FIELDS if f.in_request and f.type is float}
    assert "prompt" in _TEXT_FIELDS and "init_image" not in _TEXT_FIELDS


def test_guidance_has_one_range_everywhere():
    assert (FIELD["guidance"].minimum, FIELD["guidance"].maximum) == (0.0, 50.0)
    assert NUMBER_RANGES["guidance"] == (0.0, 50.0)
    assert GenerationRequest("x", guidance=40.0).validated().guidance == 40.0
    assert clamp_number("guidance", 40.0) == 40.0  # a recalled 40 stays 40
    with pytest.raises(InvalidRequest, match="Guidance must be between 0 and 50"):
        GenerationRequest("x", guidance=50.5).validated()


@pytest.mark.parametrize("f", NUMBER_FIELDS, ids=lambda f: f.name)
def test_request_validation_follows_each_fields_range(f):
    """The highest value passes and one beyond it fails, for every number field."""
    assert f.maximum is not None
    GenerationRequest("x", **{f.name: f.type(f.maximum)}).validated()
    beyond = f.maximum + 1 if f.type is int else f.maximum + 0.5
    with pytest.raises(InvalidRequest, match=f.label):
        GenerationRequest("x", **{f.name: f.type(beyond)}).validated()
    assert clamp_number(f.name, beyond) == f.type(f.maximum)
    assert f.problem(f.lowest) is None  # what clamping gives is always accepted


def test_exclusive_minimum_and_off_and_multiples():
    assert FIELD["strength"].lowest == 0.01 and clamp_number("strength", 0) == 0.01
    assert FIELD["strength"].problem(0.0) and not FIELD["strength"].problem(0.001)
    assert clamp_number("seed_resize_width", 0) == 0 and clamp_number("seed_resize_width", 10) == 64
    assert clamp_number("width", 517) == 520
    assert FIELD["width"].problem(500) == "Width 500 is not a multiple of 8 (try 496)."


def test_panel_fields_carry_their_widget_hints():
    for f in table.PANEL_FIELDS:
        assert f.object_name and f.tooltip, f.name
        if f.widget == "combo":
            assert f.choices and f.settings_default in [stored for _, stored in f.choices], f.name
        if f.widget in ("spin", "double"):
            assert f.is_number, f.name


def test_infotext_keys_are_unique_but_for_the_pairs_a1111_writes_as_one():
    keys: dict[str, list[str]] = {}
    for f in FIELDS:
        if f.infotext_key:
            keys.setdefault(f.infotext_key, []).append(f.name)
    shared = {key: names for key, names in keys.items() if len(names) > 1}
    assert shared == {
        "Size": ["width", "height"],
        "Seed resize from": ["seed_resize_width", "seed_resize_height"],
        "Denoising strength": ["strength", "hires_denoise"],  # the hires pass's when hires fix is on
    }


def test_presets_store_the_fields_the_table_marks_with_its_labels_and_ranges():
    from studio.core.storage.presets import PRESET_FIELD_LABELS, PRESET_FIELDS, preset_from_dict

    stored = [f.name for f in FIELDS if f.stored_in_presets]
    assert list(PRESET_FIELDS) == ["seed_mode" if name == "random_seed" else name for name in stored]
    assert PRESET_FIELD_LABELS["guidance"] == "Guidance" and PRESET_FIELD_LABELS["seed_mode"].startswith("Seed mode")
    preset, warnings = preset_from_dict({"name": "p", "guidance": 40, "steps": 151, "strength": 0})
    assert preset.values == {"guidance": 40.0} and len(warnings) == 2  # the request's ranges, not a copy


def test_a1111_inpaint_keys_are_read_by_their_table_keys_and_clamped():
    from studio.core.formats.metadata import apply_fields, from_a1111, parse_chunks

    text = ("a fox\nSteps: 20, Sampler: Euler a, CFG scale: 40, Seed: 5, Size: 512x512, Denoising strength: 0.5, "
            "Mask blur: 99, Masked content: latent noise, Inpaint area: Only masked, Masked area padding: 48")
    meta = parse_chunks({"parameters": text})
    assert meta.fields["guidance"] == 40.0  # not clamped to a narrower panel range
    assert meta.fields["mask_blur"] == 64  # clamped into the table's 0..64
    assert (meta.fields["masked_content"], meta.fields["inpaint_area"], meta.fields["inpaint_padding"]) == (
        "latent_noise", "only_masked", 48)
    restored = apply_fields(Settings(), meta.fields)
    assert (restored.masked_content, restored.inpaint_area, restored.inpaint_padding) == ("latent_noise", "only_masked", 48)
    odd = from_a1111(text.replace("latent noise", "latent nothing"))
    assert odd.extras["Masked content"] == "latent nothing" and "masked_content" not in odd.fields
