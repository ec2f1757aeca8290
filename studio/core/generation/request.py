"""The generation request: the engine's only input, and what metadata and tests replay."""

from __future__ import annotations

import enum
import math
import secrets
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from studio.core.generation.fields import (  # noqa: F401 - re-exported: the request's names for its enums and limits
    MAX_BATCH,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MIN_SIDE,
    REQUEST_FIELDS,
    InpaintArea,
    MaskedContent,
    Mode,
    request_default,
)
from studio.core.generation.samplers import canonical_sampler

MAX_PROMPT_CHARS = 20_000  # far beyond CLIP's 77 tokens x any chunking; a longer "prompt" is a paste accident
REQUEST_FORMAT = 1


class InvalidRequest(ValueError):
    """A request a person must fix; the message says what and how."""


def random_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str = request_default("negative_prompt")
    steps: int = request_default("steps")
    guidance: float = request_default("guidance")
    seed: int = request_default("seed")
    width: int = request_default("width")
    height: int = request_default("height")
    sampler: str = request_default("sampler")
    batch_count: int = request_default("batch_count")
    model: str = request_default("model")
    mode: Mode = request_default("mode")
    strength: float = request_default("strength")
    init_image: str | None = request_default("init_image")  # PNG path; the result's metadata points at a copy beside it
    mask: str | None = request_default("mask")  # PNG path, white = repaint
    mask_blur: int = request_default("mask_blur")  # px of feathering where the result is composited back
    inpaint_area: InpaintArea = request_default("inpaint_area")
    inpaint_padding: int = request_default("inpaint_padding")  # px of context around the mask for ONLY_MASKED
    masked_content: MaskedContent = request_default("masked_content")
    vae: str = request_default("vae")  # a single-file VAE to decode with; "" = the checkpoint's own
    text_encoders: str = request_default("text_encoders")  # chosen text encoder files, one a line; "" = found
    model_hash: str = request_default("model_hash")  # A1111's short hash of the model file, filled in by the engine when saving
    lora_hashes: str = request_default("lora_hashes")  # A1111's `Lora hashes` / `TI hashes` values, filled in by the engine
    ti_hashes: str = request_default("ti_hashes")  # from the files it used (saving never searches the disk again)
    modules: str = request_default("modules")  # Forge's Module 1, 2...: part files' stems, filled in by the engine
    # A1111's prompt extras (their infotext keys: Clip skip, Hires upscale/steps/upscaler,
    # Denoising strength, Variation seed, Variation seed strength, Seed resize from)
    clip_skip: int = request_default("clip_skip")  # 1 = the last text-encoder layer, 2 = the one before it ...
    hires_scale: float = request_default("hires_scale")  # 1 = no hires fix
    hires_steps: int = request_default("hires_steps")  # 0 = as many as the first pass
    hires_denoise: float = request_default("hires_denoise")
    hires_upscaler: str = request_default("hires_upscaler")
    variation_seed: int = request_default("variation_seed")
    variation_strength: float = request_default("variation_strength")  # 0 = no variation
    # 0 = off; else draw the noise as for this size, then crop/pad it to the image
    seed_resize_width: int = request_default("seed_resize_width")
    seed_resize_height: int = request_default("seed_resize_height")

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
                problems.append(
                    f"The {label} contains characters that are not valid text (broken Unicode); retype or paste it again."
                )
        for f in REQUEST_FIELDS:  # ranges, multiples and "0 = off", as fields.py declares them
            problem = f.problem(getattr(self, f.name))
            if problem:
                problems.append(problem)
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

    @property
    def text_encoder_paths(self) -> tuple[str, ...]:
        return tuple(line for line in self.text_encoders.splitlines() if line.strip())

    def for_image(self, index: int) -> GenerationRequest:
        """The single-image request that reproduces image `index` of a batch (seed + index)."""
        return replace(self, seed=(self.seed + index) % (MAX_SEED + 1), batch_count=1)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in _ENUMS:
            data[key] = getattr(self, key).value
        for key in ("text_encoders", "modules"):
            if not data[key]:
                del data[key]  # only models with separate parts (Flux) write them: the rest stay as they were
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


# Types as fields.py declares them: what _coerce converts and validated() checks.
_ENUMS = {f.name: f.type for f in REQUEST_FIELDS if issubclass(f.type, enum.Enum)}
_INT_FIELDS = tuple(f.name for f in REQUEST_FIELDS if f.type is int)
_FLOAT_FIELDS = tuple(f.name for f in REQUEST_FIELDS if f.type is float)
_TEXT_FIELDS = tuple(f.name for f in REQUEST_FIELDS if f.type is str and not f.nullable)
_PATH_FIELDS = tuple(f.name for f in REQUEST_FIELDS if f.nullable)  # None or a path


def output_size(request: GenerationRequest) -> tuple[int, int]:
    """(width, height) of the image a request makes: its size, or the hires pass's (txt2img with
    an upscale over 1: A1111 runs hires fix for txt2img only) to the nearest multiple of 8."""
    if request.mode is Mode.TXT2IMG and request.hires_scale > 1.0:
        return max(8, _nearest_8(request.width * request.hires_scale)), max(8, _nearest_8(request.height * request.hires_scale))
    return request.width, request.height


def _nearest_8(size: float) -> int:
    """Half-way rounds up (676 -> 680), with room for float error (520 * 1.3 = 675.999...)."""
    return math.floor(size / 8 + 0.5 + 1e-9) * 8


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
    for name in _INT_FIELDS + _FLOAT_FIELDS + _TEXT_FIELDS + tuple(_ENUMS) + _PATH_FIELDS:
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
    if key in _PATH_FIELDS:
        return None if value is None else str(value)
    if not isinstance(value, str):
        raise TypeError(key)
    return value
