"""Every generation field round-trips through every place that holds it, as core/fields.py
declares it: panel widget -> settings -> request -> PNG (studio_request and A1111 infotext)
-> metadata reading -> settings -> panel, equal at each step."""

from __future__ import annotations

import dataclasses
import enum

import pytest
from PIL import Image

from studio.core.formats.metadata import apply_fields, parse_chunks, read_metadata
from studio.core.generation.fields import FIELD, PANEL_FIELDS, Field
from studio.core.generation.settings import Settings, request_from_settings, settings_from_request
from studio.core.storage.outputs import PARAMETERS_KEY, png_bytes
from studio.ui.generation_panel import GenerationPanel, set_widget_value, widget_value

# What a restore gives by design, whatever the request held: an image is one image of its batch.
RESTORED_AS = {"batch_count": 1}
# Variations show in the request (and infotext) only with a strength or both resize sides.
_VARIATION_ON = {"variation": True, "variation_strength": 0.25, "seed_resize_width": 256, "seed_resize_height": 256}


def other_value(f: Field, avoid):
    """A value of `f` in its range that is neither its default nor `avoid` (the base's)."""
    if f.widget == "text":
        return "a fox, 35mm"
    if f.widget == "check":
        return not f.default
    if f.widget == "combo":
        return next(stored for _, stored in f.choices if stored not in (f.settings_default, avoid))
    if f.name == "guidance":
        return 40.0  # beyond the panel's old 30: a recalled 40 used to come back as 30
    if f.off:
        return int(2 * f.minimum)
    step = f.multiple if f.multiple > 1 else (f.step if f.type is float and f.step else 1)
    value = f.default + step
    if value == avoid:
        value += step
    assert value <= f.maximum, f.name
    return f.type(round(value, 6))


def base_settings(f: Field) -> Settings:
    """Settings in which `f` is used and written out (inpaint fields in inpaint mode...)."""
    base = Settings(prompt="base prompt", random_seed=f.name == "random_seed", seed=7)
    context = dict(f.applies_when)
    if f.name == "variation" or context.get("variation"):
        context.update(_VARIATION_ON)
        if f.name == "variation":  # the switch itself starts off; the test turns it on
            context.pop("variation")
    return dataclasses.replace(base, **context)


def in_request(f: Field, value):
    return f.type(value) if isinstance(f.default, enum.Enum) else value


@pytest.mark.parametrize("f", PANEL_FIELDS, ids=lambda f: f.name)
def test_field_round_trips_through_panel_request_png_metadata_and_back(qtbot, tmp_path, f):
    base = base_settings(f)
    value = other_value(f, getattr(base, f.name))
    assert value != f.settings_default

    # table -> panel widget -> settings
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    panel.load(base)
    widget = panel.field_widgets[f.name]
    assert widget.objectName() == f.object_name
    set_widget_value(widget, value)
    stored = dataclasses.replace(base)
    panel.store(stored)
    assert getattr(stored, f.name) == value
    assert type(getattr(stored, f.name)) is type(value)

    # settings -> request (what Generate accepts)
    request = request_from_settings(stored, "/models/fake", init_image="in.png", mask="mask.png").validated()
    if f.in_request:
        assert getattr(request, f.name) == in_request(f, value)

    # request -> PNG -> metadata (our exact request) -> settings -> panel
    path = tmp_path / "image.png"
    path.write_bytes(png_bytes(Image.new("RGB", (8, 8)), request))
    meta = read_metadata(path)
    assert meta.source == "studio" and meta.request == request
    restored = settings_from_request(Settings(), meta.request)
    expected = RESTORED_AS.get(f.name, value)
    assert getattr(restored, f.name) == expected
    again = GenerationPanel()
    qtbot.addWidget(again)
    again.load(restored)
    assert widget_value(again.field_widgets[f.name], f) == expected

    # request -> A1111 infotext -> metadata (as from A1111) -> settings -> panel
    if f.infotext_key is None and f.name not in ("hires_fix", "variation"):  # those two: their keys' presence
        return
    with Image.open(path) as image:
        text = image.text[PARAMETERS_KEY]
    a1111 = parse_chunks({PARAMETERS_KEY: text})
    assert a1111.source == "a1111"
    recalled = apply_fields(Settings(), a1111.fields)
    assert getattr(recalled, f.name) == value, text
    again.load(recalled)
    assert widget_value(again.field_widgets[f.name], f) == value


@pytest.mark.parametrize("f", [f for f in PANEL_FIELDS if f.is_number], ids=lambda f: f.name)
def test_panel_widget_holds_exactly_the_fields_range(qtbot, f):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    widget = panel.field_widgets[f.name]
    assert (widget.minimum(), widget.maximum()) == (pytest.approx(f.lowest), f.maximum)
    assert widget.toolTip() == f.tooltip and widget.accessibleName() == f.tooltip


def test_guidance_40_survives_a_restore_into_the_panel(qtbot):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    meta = parse_chunks({PARAMETERS_KEY: "a fox\nSteps: 20, Sampler: Euler a, CFG scale: 40, Seed: 1, Size: 512x512"})
    panel.load(apply_fields(Settings(), meta.fields))
    assert panel.guidance.value() == 40.0 and FIELD["guidance"].maximum == 50.0
