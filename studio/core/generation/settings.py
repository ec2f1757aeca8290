"""User settings, declared once with their defaults; saved atomically; loaded tolerantly."""

from __future__ import annotations

import dataclasses
import enum
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from studio.core.canvas.mask_ops import Brush
from studio.core.generation.fields import (  # noqa: F401 - HIRES_UPSCALERS, MAX_HIRES_SCALE re-exported (cli, panel)
    FIELDS,
    HIRES_UPSCALERS,
    MAX_HIRES_SCALE,
    NUMBER_FIELDS,
    clamp_number,
    default,
)
from studio.core.generation.request import (
    MAX_PROMPT_CHARS,
    GenerationRequest,
    InvalidRequest,
    Mode,
    random_seed,
)
from studio.core.generation.samplers import canonical_sampler
from studio.core.storage.atomic import set_aside, write_text_atomic
from studio.core.storage.jsonfile import read_json_object, read_text_limited

SETTINGS_FORMAT = 1
MAX_SETTINGS_BYTES = 1_000_000  # settings are ~1 KB; prompts are capped at 20,000 characters each
DEVICE_NAMES = ("auto", "cuda", "mps", "cpu")  # the engine's choices (engine/devices.py)
VAE_TILING_CHOICES = ("auto", "on", "off")  # engine/memory.py: "auto" tiles above 2048x2048
THEMES = ("dark", "light")  # ui/theme.py
MAX_MODEL_DIRS = 100  # a hand-edited list longer than this is someone's whole disk, not a library
# Each number's valid range, as GenerationRequest.validated() checks it (both from fields.py).
# Numbers read from any file (settings, session, history, a model's studio.json, an image's
# metadata) are clamped into it, so a widget never receives a value it cannot hold (Qt's int is
# 32 bits) and a restored setting is always one Generate accepts. An exclusive minimum (strength
# above 0) is the panel's smallest step; a side that 0 switches off ranges from 0.
NUMBER_RANGES: dict[str, tuple[float, float]] = {f.name: (f.lowest, f.maximum) for f in NUMBER_FIELDS}  # type: ignore[misc]
# Fields the request holds as an enum and Settings as its value.
_ENUM_FIELDS = tuple(f for f in FIELDS if f.in_settings and isinstance(f.default, enum.Enum))
_SHARED_FIELDS = tuple(f for f in FIELDS if f.in_request and f.in_settings)
# Switched by hires_fix and variation: a request that has them off leaves the settings' numbers.
_SWITCHED_FIELDS = (
    "hires_scale", "hires_steps", "hires_denoise", "hires_upscaler",
    "variation_seed", "variation_strength", "seed_resize_width", "seed_resize_height",
)  # fmt: skip


@dataclass
class Settings:
    model: str = default("model")  # a diffusers model folder; "" means the bundled demo model
    device: str = "auto"  # auto, cuda, mps, cpu
    prompt: str = default("prompt")
    negative_prompt: str = default("negative_prompt")
    steps: int = default("steps")
    guidance: float = default("guidance")
    seed: int = default("seed")
    random_seed: bool = default("random_seed")
    width: int = default("width")
    height: int = default("height")
    sampler: str = default("sampler")
    batch_count: int = default("batch_count")
    mode: str = default("mode")
    strength: float = default("strength")
    mask_blur: int = default("mask_blur")
    inpaint_area: str = default("inpaint_area")
    inpaint_padding: int = default("inpaint_padding")
    masked_content: str = default("masked_content")
    model_dirs: list[str] = field(default_factory=list)  # model folders the artist added (A1111, ComfyUI...)
    vae: str = default("vae")  # a single-file VAE to decode with; "" = the checkpoint's own ("Automatic")
    attention_slicing: bool = False
    vae_tiling: str = "auto"  # "auto", "on" or "off"
    cpu_offload: bool = False  # model CPU offload, for GPUs too small to hold the model
    # A1111's extras. Hires fix and variations have their own switch, so turning them off keeps
    # the numbers for next time (A1111's "Hires. fix" and "Extra" checkboxes).
    clip_skip: int = default("clip_skip")
    hires_fix: bool = default("hires_fix")
    hires_scale: float = default("hires_scale")
    hires_steps: int = default("hires_steps")  # 0 = as many as the first pass
    hires_denoise: float = default("hires_denoise")
    hires_upscaler: str = default("hires_upscaler")
    variation: bool = default("variation")
    variation_seed: int = default("variation_seed")
    variation_strength: float = default("variation_strength")
    seed_resize_width: int = default("seed_resize_width")  # 0 = off
    seed_resize_height: int = default("seed_resize_height")
    # The preset style wrapping the prompt at Generate (a preset's prompt and negative templates);
    # "" = none. Kept with the prompt, so a restart never silently stops wrapping it.
    style_name: str = ""
    style_prompt: str = ""
    style_negative_prompt: str = ""
    mask_color: str = "#ff3060"  # the mask's stripes on the canvas (a colour that reads on this artist's images)
    # The mask brush's feel, as the artist left it (its size is per image: the session keeps it).
    brush_hardness: float = Brush.hardness
    brush_opacity: float = Brush.opacity
    outputs_dir: str = ""  # where finished images go; "" = outputs/ in the data folder (core/output_folder.py)
    theme: str = "dark"  # "dark" (the default, as in Krita, InvokeAI, ComfyUI) or "light"
    window_state: str = ""  # QMainWindow.saveState() as base64: toolbars and dock widths
    window_geometry: str = ""  # QMainWindow.saveGeometry() as base64


def request_in_range(request: GenerationRequest) -> GenerationRequest:
    """`request` with every number clamped into its field's range: a request read from a file
    (an image, the history) can then fill the panel without overflowing a widget. Numbers that
    are not finite keep the request's defaults."""
    changes: dict[str, Any] = {}
    for name in NUMBER_RANGES:
        value = getattr(request, name)
        clamped = clamp_number(name, value)
        if clamped is None:
            clamped = getattr(GenerationRequest, name)
        if clamped != value or type(clamped) is not type(value):
            changes[name] = clamped
    return dataclasses.replace(request, **changes) if changes else request


def settings_from_dict(data: Any) -> tuple[Settings, list[str]]:
    """Settings from a parsed file (settings.json, a session): known fields of the right type,
    numbers clamped into range, unknown names (a device, a sampler, a mode) replaced by their
    defaults; anything else keeps its default. Returns (settings, messages about what changed
    that a person should know about)."""
    settings = Settings()
    notes: list[str] = []
    if not isinstance(data, dict):
        return settings, notes
    for f in fields(Settings):
        if f.name not in data:
            continue
        value, default = data[f.name], getattr(settings, f.name)
        if f.name in NUMBER_RANGES:
            value = clamp_number(f.name, value)
        elif isinstance(default, float) and type(value) is int:
            value = float(value)
        if value is None or type(value) is not type(default):
            continue
        if isinstance(value, str) and len(value) > MAX_PROMPT_CHARS:
            value = value[:MAX_PROMPT_CHARS]
        setattr(settings, f.name, value)
    if settings.device not in DEVICE_NAMES:
        notes.append(f"The device {settings.device[:40]!r} in the settings is unknown; \"auto\" is used instead.")
        settings.device = "auto"
    for f in _ENUM_FIELDS:
        if getattr(settings, f.name) not in {m.value for m in f.type}:
            setattr(settings, f.name, f.settings_default)
    try:
        settings.sampler = canonical_sampler(settings.sampler)
    except ValueError:
        settings.sampler = Settings.sampler
    if settings.vae_tiling not in VAE_TILING_CHOICES:
        settings.vae_tiling = Settings.vae_tiling
    if settings.hires_upscaler not in HIRES_UPSCALERS:
        settings.hires_upscaler = Settings.hires_upscaler
    for name in ("brush_hardness", "brush_opacity"):  # fractions; NaN fails both comparisons
        value = getattr(settings, name)
        setattr(settings, name, min(1.0, max(0.0, value)) if value == value else getattr(Settings, name))
    if settings.theme not in THEMES:
        settings.theme = Settings.theme
    if "\0" in settings.outputs_dir:  # not a path any system opens
        settings.outputs_dir = ""
    if not all(isinstance(p, str) and 0 < len(p) <= MAX_PROMPT_CHARS for p in settings.model_dirs):
        settings.model_dirs = []
    settings.model_dirs = list(dict.fromkeys(settings.model_dirs))[:MAX_MODEL_DIRS]  # a fresh list, no repeats
    return settings, notes


def load_settings(path: Path) -> tuple[Settings, str | None]:
    """(settings, warning). A damaged file is set aside, never fatal; defaults fill the gaps."""
    if not path.exists():
        return Settings(), None
    data = read_json_object(path, MAX_SETTINGS_BYTES)
    if data is None:
        reason = _unreadable_reason(path)
        try:
            aside = set_aside(path, f"{path.name}.unreadable-{int(time.time())}")
        except OSError:
            aside = path
        return Settings(), f"Settings could not be read ({reason}); defaults are used. The old file is at {aside}."
    settings, notes = settings_from_dict(data)
    return settings, " ".join(notes) or None


def _unreadable_reason(path: Path) -> str:
    """A short reason for the message; the tolerant reader itself only says 'no'."""
    text = read_text_limited(path, MAX_SETTINGS_BYTES)
    if text is None:
        return "the file is unreadable, too large or not UTF-8 text"
    try:
        data = json.loads(text)
    except RecursionError:
        return "the file is nested too deeply"
    except ValueError as exc:
        return f"not valid JSON: {exc}"
    return "not a JSON object" if not isinstance(data, dict) else "it holds values that are not numbers, such as NaN"


def save_settings(settings: Settings, path: Path) -> None:
    data = {"format": SETTINGS_FORMAT, **asdict(settings)}
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def effective_model(settings: Settings) -> str:
    """The model to use: the user's choice, else the bundled demo model when it is installed."""
    from studio.core.storage.paths import demo_model_dir

    if settings.model:
        return settings.model
    demo = demo_model_dir()
    return str(demo) if (demo / "model_index.json").is_file() else ""


def request_from_settings(
    settings: Settings, model: str, init_image: str | None = None, mask: str | None = None
) -> GenerationRequest:
    """Freeze the panel state into a request; a random seed is drawn here, so the request
    (and the metadata written from it) always holds the seed actually used. Unknown enum
    values (a hand-edited file) raise InvalidRequest rather than crash."""
    values: dict[str, Any] = {f.name: getattr(settings, f.name) for f in _SHARED_FIELDS}
    try:
        for f in _ENUM_FIELDS:
            values[f.name] = f.type(values[f.name])
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    mode = values["mode"]
    values.update(
        model=model,
        seed=random_seed() if settings.random_seed else settings.seed,
        init_image=init_image if mode is not Mode.TXT2IMG else None,
        mask=mask if mode is Mode.INPAINT else None,
    )
    # Turned off, the numbers stay in the settings but the request says "off".
    if not settings.hires_fix:
        values["hires_scale"] = 1.0
    if not settings.variation:
        values.update(variation_strength=0.0, seed_resize_width=0, seed_resize_height=0)
    return GenerationRequest(**values)


def apply_model_defaults(settings: Settings, model: str) -> bool:
    """Adopt what a model's studio.json recommends (size, sampler, steps, guidance). Used on a
    fresh install and when the user picks a model that declares them. True if anything changed."""
    from studio.core.models.model_info import model_defaults

    defaults = model_defaults(model)
    changes = {
        "width": defaults.width,
        "height": defaults.height,
        "sampler": defaults.sampler,
        "steps": defaults.steps,
        "guidance": defaults.guidance,
    }
    changed = False
    for name, value in changes.items():
        if value is not None and getattr(settings, name) != value:
            setattr(settings, name, value)
            changed = True
    return changed


def settings_from_request(settings: Settings, request: GenerationRequest) -> Settings:
    """Settings that reproduce `request` exactly (fixed seed, same mode and inpaint options,
    hires fix and variations). What the request has switched off stays as it was, switched off.
    The model and VAE are left to the model picker."""
    values: dict[str, Any] = {}
    for f in _SHARED_FIELDS:
        if f.name in ("model", "vae") or f.name in _SWITCHED_FIELDS:
            continue
        value = getattr(request, f.name)
        values[f.name] = value.value if isinstance(value, enum.Enum) else value
    values.update(random_seed=False, batch_count=1, **extra_settings_from_request(request))
    return dataclasses.replace(settings, **values)


def extra_settings_from_request(request: GenerationRequest) -> dict[str, Any]:
    """The Settings values of a request's clip skip, hires fix and variations. What the request
    has switched off is only switched off: its numbers are the artist's for next time."""
    hires = request.hires_scale > 1.0
    variation = request.variation_strength > 0 or bool(request.seed_resize_width and request.seed_resize_height)
    extras: dict[str, Any] = {"clip_skip": request.clip_skip, "hires_fix": hires, "variation": variation}
    if hires:
        # An upscaler the studio lacks (a request written elsewhere) runs as Lanczos: say what runs.
        upscaler = request.hires_upscaler if request.hires_upscaler in HIRES_UPSCALERS else "Lanczos"
        extras.update(hires_scale=request.hires_scale, hires_steps=request.hires_steps,
                      hires_denoise=request.hires_denoise, hires_upscaler=upscaler)
    if variation:
        extras.update(variation_seed=request.variation_seed, variation_strength=request.variation_strength,
                      seed_resize_width=request.seed_resize_width, seed_resize_height=request.seed_resize_height)
    return extras
