"""The generation request: the engine's only input, and what metadata and tests replay."""

from __future__ import annotations

import enum
import math
import secrets
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from studio.core.samplers import DEFAULT_SAMPLER, canonical_sampler

MAX_SEED = 2**32 - 1
MIN_SIDE, MAX_SIDE = 64, 4096
MAX_STEPS = 150
MAX_BATCH = 100
MAX_PROMPT_CHARS = 20_000  # far beyond CLIP's 77 tokens x any chunking; a longer "prompt" is a paste accident
REQUEST_FORMAT = 1


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


class InvalidRequest(ValueError):
    """A request a person must fix; the message says what and how."""


def random_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str = ""
    steps: int = 20
    guidance: float = 7.0
    seed: int = 0
    width: int = 512
    height: int = 512
    sampler: str = DEFAULT_SAMPLER
    batch_count: int = 1
    model: str = ""
    mode: Mode = Mode.TXT2IMG
    strength: float = 0.75
    init_image: str | None = None  # PNG path; the result's metadata points at a copy beside it
    mask: str | None = None  # PNG path, white = repaint
    mask_blur: int = 4  # px of feathering where the result is composited back
    inpaint_area: InpaintArea = InpaintArea.WHOLE
    inpaint_padding: int = 32  # px of context around the mask for ONLY_MASKED
    masked_content: MaskedContent = MaskedContent.ORIGINAL
    vae: str = ""  # a single-file VAE to decode with; "" = the checkpoint's own
    model_hash: str = ""  # A1111's short hash of the model file, filled in by the engine when saving
    lora_hashes: str = ""  # A1111's `Lora hashes` / `TI hashes` values, filled in by the engine
    ti_hashes: str = ""  # from the files it used (saving never searches the disk again)
    # A1111's prompt extras (their infotext keys: Clip skip, Hires upscale/steps/upscaler,
    # Denoising strength, Variation seed, Variation seed strength, Seed resize from)
    clip_skip: int = 1  # 1 = the last text-encoder layer, 2 = the one before it ...
    hires_scale: float = 1.0  # 1 = no hires fix
    hires_steps: int = 0  # 0 = as many as the first pass
    hires_denoise: float = 0.7
    hires_upscaler: str = "Latent"
    variation_seed: int = 0
    variation_strength: float = 0.0  # 0 = no variation
    seed_resize_width: int = 0  # 0 = off: draw the noise as for this size, then crop/pad to the image
    seed_resize_height: int = 0

    def validated(self) -> GenerationRequest:
        """This request with canonical names, or InvalidRequest saying what is wrong.

        Types are checked too (the Python API and hand-written files can pass anything): a
        request that passes can always be written into an image and read back."""
        problems = []
        typed = _typed_fields(self, problems)
        if problems:
            raise InvalidRequest(" ".join(problems))
        if typed:
            return replace(self, **typed).validated()
        for label, text in (("prompt", self.prompt), ("negative prompt", self.negative_prompt)):
            if len(text) > MAX_PROMPT_CHARS:
                problems.append(f"The {label} has {len(text):,} characters; at most {MAX_PROMPT_CHARS:,} are allowed.")
            elif not _is_encodable(text):
                problems.append(f"The {label} contains characters that are not valid text (broken Unicode); retype or paste it again.")
        for side_name, side in (("Width", self.width), ("Height", self.height)):
            if not MIN_SIDE <= side <= MAX_SIDE:
                problems.append(f"{side_name} {side} is outside {MIN_SIDE}..{MAX_SIDE} pixels.")
            elif side % 8:
                problems.append(f"{side_name} {side} is not a multiple of 8 (try {round(side / 8) * 8}).")
        if not 1 <= self.steps <= MAX_STEPS:
            problems.append(f"Steps must be between 1 and {MAX_STEPS}, not {self.steps}.")
        if not 0.0 <= self.guidance <= 50.0:
            problems.append(f"Guidance must be between 0 and 50, not {self.guidance}.")
        if not 0 <= self.seed <= MAX_SEED:
            problems.append(f"Seed must be between 0 and {MAX_SEED}, not {self.seed}.")
        if not 1 <= self.batch_count <= MAX_BATCH:
            problems.append(f"Batch count must be between 1 and {MAX_BATCH}, not {self.batch_count}.")
        if not 0.0 < self.strength <= 1.0:
            problems.append(f"Strength must be above 0 and at most 1, not {self.strength}.")
        if not 0 <= self.mask_blur <= 64:
            problems.append(f"Mask blur must be between 0 and 64 pixels, not {self.mask_blur}.")
        if not 0 <= self.inpaint_padding <= 256:
            problems.append(f"Only-masked padding must be between 0 and 256 pixels, not {self.inpaint_padding}.")
        if not 1 <= self.clip_skip <= 12:
            problems.append(f"Clip skip must be between 1 and 12, not {self.clip_skip}.")
        if not 1.0 <= self.hires_scale <= 4.0:
            problems.append(f"Hires upscale must be between 1 and 4, not {self.hires_scale}.")
        if not 0 <= self.hires_steps <= MAX_STEPS:
            problems.append(f"Hires steps must be between 0 and {MAX_STEPS}, not {self.hires_steps}.")
        if not 0.0 < self.hires_denoise <= 1.0:
            problems.append(f"Hires denoising strength must be above 0 and at most 1, not {self.hires_denoise}.")
        if not 0 <= self.variation_seed <= MAX_SEED:
            problems.append(f"Variation seed must be between 0 and {MAX_SEED}, not {self.variation_seed}.")
        if not 0.0 <= self.variation_strength <= 1.0:
            problems.append(f"Variation strength must be between 0 and 1, not {self.variation_strength}.")
        for label, side in (("width", self.seed_resize_width), ("height", self.seed_resize_height)):
            if side and not MIN_SIDE <= side <= MAX_SIDE:
                problems.append(f"Resize seed from {label} must be 0 (off) or {MIN_SIDE}..{MAX_SIDE}, not {side}.")
        if self.mode is not Mode.TXT2IMG and not self.init_image:
            problems.append(f"{self.mode.value} needs an input image.")
        if self.mode is Mode.INPAINT and not self.mask:
            problems.append("Inpainting needs a mask: paint one on the canvas.")
        try:
            sampler = canonical_sampler(self.sampler)
        except ValueError as exc:
            problems.append(str(exc))
            sampler = self.sampler
        if problems:
            raise InvalidRequest(" ".join(problems))
        return replace(self, sampler=sampler)

    def for_image(self, index: int) -> GenerationRequest:
        """The single-image request that reproduces image `index` of a batch (seed + index)."""
        return replace(self, seed=(self.seed + index) % (MAX_SEED + 1), batch_count=1)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in _ENUMS:
            data[key] = getattr(self, key).value
        data["format"] = REQUEST_FORMAT
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationRequest:
        """Tolerant of unknown keys (newer files); wrong types raise InvalidRequest."""
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            try:
                kwargs[key] = _coerce(key, value)
            except (TypeError, ValueError) as exc:
                shown = repr(value) if len(repr(value)) <= 80 else f"{repr(value)[:77]}..."  # never a megabyte message
                raise InvalidRequest(f"Bad value for {key}: {shown}") from exc
        if "prompt" not in kwargs:
            raise InvalidRequest("The request has no prompt.")
        return cls(**kwargs)


_ENUMS = {"mode": Mode, "inpaint_area": InpaintArea, "masked_content": MaskedContent}


_INT_FIELDS = (
    "steps", "seed", "width", "height", "batch_count", "mask_blur", "inpaint_padding",
    "clip_skip", "hires_steps", "variation_seed", "seed_resize_width", "seed_resize_height",
)  # fmt: skip
_FLOAT_FIELDS = ("guidance", "strength", "hires_scale", "hires_denoise", "variation_strength")
_TEXT_FIELDS = (
    "prompt", "negative_prompt", "sampler", "model", "vae", "model_hash", "hires_upscaler", "lora_hashes", "ti_hashes",
)  # fmt: skip


def _is_encodable(text: str) -> bool:
    """False for lone surrogates ("\\udcff", from undecodable bytes): tokenizers reject them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _typed_fields(request: GenerationRequest, problems: list[str]) -> dict[str, Any]:
    """Fields converted to their declared types (20.0 -> 20, "txt2img" -> Mode.TXT2IMG);
    what cannot be converted is described in `problems`."""
    changes: dict[str, Any] = {}
    for name in _INT_FIELDS + _FLOAT_FIELDS + _TEXT_FIELDS + tuple(_ENUMS) + ("init_image", "mask"):
        value = getattr(request, name)
        try:
            converted = _coerce(name, value)
        except (TypeError, ValueError):
            kind = "a whole number" if name in _INT_FIELDS else "a number" if name in _FLOAT_FIELDS else "valid"
            shown = repr(value) if len(repr(value)) < 60 else f"a {type(value).__name__}"
            problems.append(f"{name.replace('_', ' ').capitalize()} must be {kind}, not {shown}.")
            continue
        if name not in _TEXT_FIELDS and converted is not value:
            changes[name] = converted
    return changes


def _coerce(key: str, value: Any) -> Any:
    """`value` as field `key`'s type; TypeError/ValueError (never OverflowError) otherwise.
    Numbers must be finite, whole numbers exactly whole: 2.5 steps, Infinity or 1e400 (JSON's
    way to write infinity) are refused rather than rounded."""
    if key in _ENUMS:
        return _ENUMS[key](value)
    if key in _INT_FIELDS:
        if isinstance(value, bool):
            raise TypeError(key)
        if isinstance(value, int):
            return value
        try:
            number = float(value)
            if not math.isfinite(number) or number != int(number):
                raise ValueError(key)
            return int(number)
        except OverflowError as exc:
            raise ValueError(key) from exc
    if key in _FLOAT_FIELDS:
        if isinstance(value, bool):
            raise TypeError(key)
        try:
            number = float(value)
        except OverflowError as exc:  # an int beyond float's range
            raise ValueError(key) from exc
        if not math.isfinite(number):
            raise ValueError(key)
        return number
    if key in ("init_image", "mask"):
        return None if value is None else str(value)
    if not isinstance(value, str):
        raise TypeError(key)
    return value
