"""Every generation field, declared once: its type, range, default, label, tooltip, widget,
whether presets store it and which A1111 infotext key carries it.

The request's validation and type coercion, the settings' defaults and clamping, the preset
field list and labels, the generation panel's widgets and the metadata readers' clamping all
read this table, so a range or a label cannot disagree between them again (guidance was 0-30
in the panel but 0-50 in requests, so a recalled 40 was silently clamped).

What stays outside: A1111's infotext *format* (key order, "Size: WxH", "Denoising strength"
meaning the hires pass's strength when hires fix is on...) is irregular and lives in
infotext.py; `infotext_key` only says which key carries which field, and the reader uses it.

Guidance is 0..50 everywhere. A1111's slider stops at 30 but its API and infotext paste take
more, and requests have always accepted 50: the wider range lets an image made at CFG 40 be
restored and re-rendered exactly, and costs nothing in the panel.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from studio.core.generation.samplers import DEFAULT_SAMPLER, SAMPLER_NAMES

MAX_SEED = 2**32 - 1
MIN_SIDE, MAX_SIDE = 64, 4096
MAX_STEPS = 150
MAX_BATCH = 100
MAX_HIRES_SCALE = 4.0
MAX_GUIDANCE = 50.0


class Mode(str, enum.Enum):
    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    INPAINT = "inpaint"


class InpaintArea(str, enum.Enum):
    WHOLE = "whole"  # denoise the whole picture at the requested size
    ONLY_MASKED = "only_masked"  # crop around the mask (+padding), work at full size, paste back


class MaskedContent(str, enum.Enum):
    ORIGINAL = "original"  # start from the input pixels under the mask
    FILL = "fill"  # start from the surrounding colours, smeared into the hole
    LATENT_NOISE = "latent_noise"  # start from noise: ignore what was under the mask


# Hires fix upscalers the engine runs (engine/hires.py): A1111's latent modes, then pixel resizes.
HIRES_UPSCALERS = (
    "Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)", "Latent (nearest)",
    "Latent (nearest-exact)", "Lanczos", "Nearest", "None",
)  # fmt: skip

_SAME = object()


@dataclass(frozen=True)
class Field:
    """One generation field. `type` is int, float, str, bool or an Enum (Settings holds an
    enum's value, the request the member). A number is valid in minimum..maximum; `above`
    makes the minimum exclusive (strength 0 would change nothing), `off` lets 0 stand for "off"
    below a minimum (seed resize), `multiple` asks for a multiple of it (sides)."""

    name: str
    type: type
    default: Any
    label: str  # what a person calls it: messages, the preset dialog
    tooltip: str = ""  # the widget's tooltip and accessible name
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False
    off: bool = False
    multiple: int = 1
    stored_in_presets: bool = False
    preset_label: str = ""  # the save-preset dialog's label, when it says more than `label`
    infotext_key: str | None = None  # the A1111 key carrying it (format and special cases: infotext.py)
    # Widget hints for the generation panel; widget None = not a panel field.
    widget: str | None = None  # "spin", "double", "combo", "check", "text"
    object_name: str = ""
    form_label: str = ""  # the panel row's label, when shorter than `label`
    step: float | None = None
    decimals: int | None = None
    suffix: str = ""
    special_text: str = ""  # what the widget shows at its minimum ("Off", "Same as Steps")
    choices: tuple[tuple[str, str], ...] = ()  # (shown, stored) for combos
    request_default: Any = _SAME  # the request's default when it differs (hires scale 1 = off)
    nullable: bool = False  # None is a value (init image, mask)
    in_request: bool = True
    in_settings: bool = True
    # The other fields' values under which this one is used (and written into the infotext).
    applies_when: Mapping[str, Any] = field(default_factory=dict)

    @property
    def default_in_request(self) -> Any:
        return self.default if self.request_default is _SAME else self.request_default

    @property
    def settings_default(self) -> Any:
        return self.default.value if isinstance(self.default, enum.Enum) else self.default

    @property
    def is_number(self) -> bool:
        return self.type in (int, float)

    @property
    def lowest(self) -> float | None:
        """The smallest value a widget or a clamp may hold: above an exclusive minimum by the
        widget's smallest step (strength 0.01), 0 for a field that 0 switches off."""
        if self.minimum is None:
            return None
        if self.off:
            return 0
        if self.above:
            return self.minimum + 10 ** -(self.decimals if self.decimals is not None else 2)
        return self.minimum

    def problem(self, value: Any) -> str | None:
        """A sentence saying why `value` (already of this field's type) is out of range, or None."""
        if not self.is_number or self.minimum is None or self.maximum is None:
            return None
        unit = " pixels" if self.suffix.strip() == "px" else ""
        low, high = _show(self.minimum), _show(self.maximum)
        if self.off:
            if value and not self.minimum <= value <= self.maximum:
                return f"{self.label} must be 0 (off) or {low}..{high}{unit}, not {value}."
            return None
        if self.above:
            if not self.minimum < value <= self.maximum:
                return f"{self.label} must be above {low} and at most {high}, not {value}."
            return None
        if not self.minimum <= value <= self.maximum and self.multiple > 1:  # a size: say it as sizes are said
            return f"{self.label} {value} is outside {low}..{high}{unit}."
        if not self.minimum <= value <= self.maximum:
            return f"{self.label} must be between {low} and {high}{unit}, not {value}."
        if self.multiple > 1 and value % self.multiple:
            nearest = round(value / self.multiple) * self.multiple
            return f"{self.label} {value} is not a multiple of {self.multiple} (try {nearest})."
        return None

    def clamp(self, value: Any) -> int | float | None:
        """`value` brought into range (to the nearest multiple), as this field's type; None when
        it is not a finite number. Only for number fields."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        low, high = self.lowest, self.maximum
        assert low is not None and high is not None, self.name
        value = min(max(value, low), high)  # compares exactly, even for ints beyond float's range
        if self.type is float:
            return float(value)
        value = round(value)
        if self.multiple > 1:
            value = min(max(round(value / self.multiple) * self.multiple, int(low)), int(high))
        elif self.off and value:
            value = max(value, int(self.minimum or 0))
        return int(value)


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


_MODES = (("Text to image", "txt2img"), ("Image to image", "img2img"), ("Inpaint", "inpaint"))
_SAMPLERS = tuple((name, name) for name in SAMPLER_NAMES)
_TXT2IMG = {"mode": "txt2img"}
_HIRES = {"mode": "txt2img", "hires_fix": True}
_VARIATION = {"mode": "txt2img", "variation": True}
_INPAINT = {"mode": "inpaint"}

# In the order the save-preset dialog lists the fields presets store.
FIELDS: tuple[Field, ...] = (
    Field("prompt", str, "", "Prompt", "Prompt", stored_in_presets=True,
          preset_label="Prompt ({prompt} = the prompt typed when applying)", widget="text", object_name="promptEdit"),
    Field("negative_prompt", str, "", "Negative prompt", "Negative prompt", stored_in_presets=True,
          widget="text", object_name="negativePromptEdit"),
    Field("guidance", float, 7.0, "Guidance", "Guidance (CFG scale)", 0.0, MAX_GUIDANCE, stored_in_presets=True,
          infotext_key="CFG scale", widget="double", object_name="guidanceSpin", step=0.5, decimals=1),
    Field("steps", int, 20, "Steps", "Steps", 1, MAX_STEPS, stored_in_presets=True, infotext_key="Steps",
          widget="spin", object_name="stepsSpin"),
    Field("sampler", str, DEFAULT_SAMPLER, "Sampler", "Sampler", stored_in_presets=True, infotext_key="Sampler",
          widget="combo", object_name="samplerCombo", choices=_SAMPLERS),
    Field("width", int, 512, "Width", "Width", MIN_SIDE, MAX_SIDE, multiple=8, stored_in_presets=True,
          infotext_key="Size", widget="spin", object_name="widthSpin", step=64, suffix=" px"),
    Field("height", int, 512, "Height", "Height", MIN_SIDE, MAX_SIDE, multiple=8, stored_in_presets=True,
          infotext_key="Size", widget="spin", object_name="heightSpin", step=64, suffix=" px"),
    # Presets store it as "seed_mode": "random" or "fixed".
    Field("random_seed", bool, True, "Random seed", "Random seed each run", stored_in_presets=True,
          preset_label="Seed mode (random/fixed)", widget="check", form_label="Random",
          object_name="randomSeedCheck", in_request=False),
    # Seeds go to 2^32-1, beyond QSpinBox's 2^31-1: a double spin box with no decimals.
    Field("seed", int, 0, "Seed", "Seed", 0, MAX_SEED, stored_in_presets=True, infotext_key="Seed",
          widget="double", object_name="seedSpin", decimals=0),
    Field("batch_count", int, 1, "Batch count", "Batch count", 1, MAX_BATCH, widget="spin",
          object_name="batchSpin", form_label="Batch"),
    Field("mode", Mode, Mode.TXT2IMG, "Mode", "Mode", widget="combo", object_name="modeCombo", choices=_MODES),
    Field("strength", float, 0.75, "Strength", "Strength (denoising)", 0.0, 1.0, above=True, stored_in_presets=True,
          infotext_key="Denoising strength", widget="double", object_name="strengthSpin", step=0.05, decimals=2,
          applies_when={"mode": "img2img"}),
    Field("model", str, "", "Model", stored_in_presets=True, infotext_key="Model"),
    Field("init_image", str, None, "Input image", nullable=True, in_settings=False),  # a PNG path
    Field("mask", str, None, "Mask", nullable=True, in_settings=False),  # a PNG path, white = repaint
    Field("mask_blur", int, 4, "Mask blur", "Mask blur", 0, 64, infotext_key="Mask blur", widget="spin",
          object_name="maskBlurSpin", suffix=" px", applies_when=_INPAINT),
    Field("inpaint_area", InpaintArea, InpaintArea.WHOLE, "Inpaint area", "Inpaint area", infotext_key="Inpaint area",
          widget="combo", object_name="inpaintAreaCombo",
          choices=(("Whole picture", "whole"), ("Only masked", "only_masked")), applies_when=_INPAINT),
    Field("inpaint_padding", int, 32, "Only masked padding", "Only masked padding", 0, 256,
          infotext_key="Masked area padding", widget="spin", object_name="inpaintPaddingSpin", form_label="Padding",
          suffix=" px", applies_when={"mode": "inpaint", "inpaint_area": "only_masked"}),
    Field("masked_content", MaskedContent, MaskedContent.ORIGINAL, "Masked content", "Masked content",
          infotext_key="Masked content", widget="combo", object_name="maskedContentCombo",
          choices=(("Original", "original"), ("Fill", "fill"), ("Latent noise", "latent_noise")),
          applies_when=_INPAINT),
    Field("vae", str, "", "VAE", infotext_key="VAE"),  # a single-file VAE; "" = the checkpoint's own
    # Text encoder files chosen for a model that needs them (Flux's CLIP-L and T5-XXL), one path a
    # line; "" = the model's own, or those found in the model folders.
    Field("text_encoders", str, "", "Text encoders", in_settings=False),
    # Filled in by the engine from the files it used, when saving; never set by a person.
    Field("model_hash", str, "", "Model hash", infotext_key="Model hash", in_settings=False),
    Field("lora_hashes", str, "", "Lora hashes", infotext_key="Lora hashes", in_settings=False),
    Field("ti_hashes", str, "", "TI hashes", infotext_key="TI hashes", in_settings=False),
    # The part files loaded beside a model file that lacks them (Flux's VAE and text encoders),
    # by file stem, ", "-joined in the order loaded: Forge's `Module 1`, `Module 2`, ...
    Field("modules", str, "", "Modules", in_settings=False),
    # A1111's extras. Hires fix and variations have their own switch in the settings, so turning
    # them off keeps the numbers for next time (A1111's "Hires. fix" and "Extra" checkboxes).
    Field("clip_skip", int, 1, "Clip skip", "Clip skip (text encoder layers to skip)", 1, 12,
          infotext_key="Clip skip", widget="spin", object_name="clipSkipSpin"),
    Field("hires_fix", bool, False, "Hires fix", "Hires fix: upscale, then denoise again", widget="check",
          object_name="hiresGroup", in_request=False, applies_when=_TXT2IMG),
    Field("hires_scale", float, 2.0, "Hires upscale", "Hires fix: upscale by", 1.0, MAX_HIRES_SCALE,
          infotext_key="Hires upscale", widget="double", object_name="hiresScaleSpin", form_label="Upscale by",
          step=0.05, decimals=2, suffix=" ×", request_default=1.0, applies_when=_HIRES),
    Field("hires_steps", int, 0, "Hires steps", "Hires fix: steps (0 = as many as Steps)", 0, MAX_STEPS,
          infotext_key="Hires steps", widget="spin", object_name="hiresStepsSpin", form_label="Steps",
          special_text="Same as Steps", applies_when=_HIRES),
    Field("hires_denoise", float, 0.7, "Hires denoising strength", "Hires fix: denoising strength", 0.0, 1.0,
          above=True, infotext_key="Denoising strength", widget="double", object_name="hiresDenoiseSpin",
          form_label="Denoising", step=0.05, decimals=2, applies_when=_HIRES),
    Field("hires_upscaler", str, "Latent", "Hires upscaler", "Hires fix: upscaler", infotext_key="Hires upscaler",
          widget="combo", object_name="hiresUpscalerCombo", form_label="Upscaler",
          choices=tuple((name, name) for name in HIRES_UPSCALERS), applies_when=_HIRES),
    Field("variation", bool, False, "Variation", "Variation seed and resize seed", widget="check",
          object_name="variationGroup", in_request=False, applies_when=_TXT2IMG),
    Field("variation_seed", int, 0, "Variation seed", "Variation seed", 0, MAX_SEED, infotext_key="Variation seed",
          widget="double", object_name="variationSeedSpin", decimals=0, applies_when=_VARIATION),
    Field("variation_strength", float, 0.0, "Variation strength", "Variation strength", 0.0, 1.0,
          infotext_key="Variation seed strength", widget="double", object_name="variationStrengthSpin",
          form_label="Strength", step=0.05, decimals=2, applies_when=_VARIATION),
    Field("seed_resize_width", int, 0, "Resize seed from width", "Resize seed from width", MIN_SIDE, MAX_SIDE,
          off=True, infotext_key="Seed resize from", widget="spin", object_name="seedResizeWidthSpin", step=64,
          special_text="Off", applies_when=_VARIATION),
    Field("seed_resize_height", int, 0, "Resize seed from height", "Resize seed from height", MIN_SIDE, MAX_SIDE,
          off=True, infotext_key="Seed resize from", widget="spin", object_name="seedResizeHeightSpin", step=64,
          special_text="Off", applies_when=_VARIATION),
)  # fmt: skip

FIELD: dict[str, Field] = {f.name: f for f in FIELDS}
REQUEST_FIELDS = tuple(f for f in FIELDS if f.in_request)
SETTINGS_FIELDS = tuple(f for f in FIELDS if f.in_settings)
NUMBER_FIELDS = tuple(f for f in FIELDS if f.is_number)
PANEL_FIELDS = tuple(f for f in FIELDS if f.widget is not None)
# Settings that are not generation fields: where the app runs, how it looks, what it remembers.
# Every other Settings field must be in the table (tests/core/test_fields.py checks it).
NON_GENERATION_SETTINGS = (
    "device", "model_dirs", "attention_slicing", "vae_tiling", "cpu_offload", "mask_color", "brush_hardness",
    "brush_opacity", "outputs_dir",
    "theme", "window_state", "window_geometry", "style_name", "style_prompt", "style_negative_prompt",
)  # fmt: skip
# The active style is not a request field (the request holds the wrapped prompt) but belongs to
# the prompt it wraps: a restored session brings it back with the prompt.
STYLE_SETTINGS = ("style_name", "style_prompt", "style_negative_prompt")


def default(name: str) -> Any:
    """Field `name`'s default as Settings holds it (an enum as its value)."""
    return FIELD[name].settings_default


def request_default(name: str) -> Any:
    """Field `name`'s default as GenerationRequest holds it."""
    return FIELD[name].default_in_request


def clamp_number(name: str, value: Any) -> int | float | None:
    """`value` brought into field `name`'s range (sides also to a multiple of 8), as the
    field's type; None when it is not a finite number (then the caller keeps its default).
    Fields without a range are returned unchanged."""
    spec = FIELD.get(name)
    if spec is None or not spec.is_number:
        return value
    return spec.clamp(value)
