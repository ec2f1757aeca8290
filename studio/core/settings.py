"""User settings, declared once with their defaults; saved atomically; loaded tolerantly."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from studio.core.atomic import write_text_atomic
from studio.core.jsonfile import read_json_object, read_text_limited
from studio.core.request import (
    MAX_BATCH,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MIN_SIDE,
    GenerationRequest,
    InpaintArea,
    InvalidRequest,
    MaskedContent,
    Mode,
    random_seed,
)
from studio.core.samplers import DEFAULT_SAMPLER, canonical_sampler

SETTINGS_FORMAT = 1
MAX_SETTINGS_BYTES = 1_000_000  # settings are ~1 KB; prompts are capped at 20,000 characters each
DEVICE_NAMES = ("auto", "cuda", "mps", "cpu")  # the engine's choices (engine/devices.py)
VAE_TILING_CHOICES = ("auto", "on", "off")  # engine/memory.py: "auto" tiles above 2048x2048
THEMES = ("dark", "light")  # ui/theme.py
MAX_MODEL_DIRS = 100  # a hand-edited list longer than this is someone's whole disk, not a library
# Hires fix upscalers the engine runs (engine/hires.py): A1111's latent modes, then pixel resizes.
HIRES_UPSCALERS = (
    "Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)", "Latent (nearest)",
    "Latent (nearest-exact)", "Lanczos", "Nearest", "None",
)  # fmt: skip
MAX_HIRES_SCALE = 4.0

# Each number's valid range, as GenerationRequest.validated() checks it. Numbers read from any
# file (settings, session, history, a model's studio.json, an image's metadata) are clamped
# into it, so a widget never receives a value it cannot hold (Qt's int is 32 bits) and a
# restored setting is always one Generate accepts.
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "steps": (1, MAX_STEPS),
    "guidance": (0.0, 50.0),
    "seed": (0, MAX_SEED),
    "width": (MIN_SIDE, MAX_SIDE),
    "height": (MIN_SIDE, MAX_SIDE),
    "batch_count": (1, MAX_BATCH),
    "strength": (0.01, 1.0),  # above 0; the panel's smallest step
    "mask_blur": (0, 64),
    "inpaint_padding": (0, 256),
    "clip_skip": (1, 12),
    "hires_scale": (1.0, MAX_HIRES_SCALE),
    "hires_steps": (0, MAX_STEPS),
    "hires_denoise": (0.01, 1.0),  # above 0, as strength
    "variation_seed": (0, MAX_SEED),
    "variation_strength": (0.0, 1.0),
    "seed_resize_width": (0, MAX_SIDE),  # 0 = off; otherwise MIN_SIDE..MAX_SIDE
    "seed_resize_height": (0, MAX_SIDE),
}
_SIDES = ("width", "height")
_OPTIONAL_SIDES = ("seed_resize_width", "seed_resize_height")


@dataclass
class Settings:
    model: str = ""  # a diffusers model folder; "" means the bundled demo model
    device: str = "auto"  # auto, cuda, mps, cpu
    prompt: str = ""
    negative_prompt: str = ""
    steps: int = 20
    guidance: float = 7.0
    seed: int = 0
    random_seed: bool = True
    width: int = 512
    height: int = 512
    sampler: str = DEFAULT_SAMPLER
    batch_count: int = 1
    mode: str = "txt2img"
    strength: float = 0.75
    mask_blur: int = 4
    inpaint_area: str = "whole"
    inpaint_padding: int = 32
    masked_content: str = "original"
    model_dirs: list[str] = field(default_factory=list)  # model folders the artist added (A1111, ComfyUI...)
    vae: str = ""  # a single-file VAE to decode with; "" = the checkpoint's own ("Automatic")
    attention_slicing: bool = False
    vae_tiling: str = "auto"  # "auto", "on" or "off"
    cpu_offload: bool = False  # model CPU offload, for GPUs too small to hold the model
    # A1111's extras. Hires fix and variations have their own switch, so turning them off keeps
    # the numbers for next time (A1111's "Hires. fix" and "Extra" checkboxes).
    clip_skip: int = 1
    hires_fix: bool = False
    hires_scale: float = 2.0
    hires_steps: int = 0  # 0 = as many as the first pass
    hires_denoise: float = 0.7
    hires_upscaler: str = "Latent"
    variation: bool = False
    variation_seed: int = 0
    variation_strength: float = 0.0
    seed_resize_width: int = 0  # 0 = off
    seed_resize_height: int = 0
    mask_color: str = "#ff3060"  # the mask's stripes on the canvas (a colour that reads on this artist's images)
    outputs_dir: str = ""  # where finished images go; "" = outputs/ in the data folder (core/output_folder.py)
    theme: str = "dark"  # "dark" (the default, as in Krita, InvokeAI, ComfyUI) or "light"
    window_state: str = ""  # QMainWindow.saveState() as base64: toolbars and dock widths
    window_geometry: str = ""  # QMainWindow.saveGeometry() as base64


def clamp_number(name: str, value: Any) -> int | float | None:
    """`value` brought into field `name`'s range (sides also to a multiple of 8), as the
    field's type; None when it is not a finite number (then the caller keeps its default).
    Fields without a range are returned unchanged."""
    if name not in NUMBER_RANGES:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, high = NUMBER_RANGES[name]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    value = min(max(value, low), high)  # compares exactly, even for ints beyond float's range
    if isinstance(low, int):
        value = round(value)
        if name in _SIDES:
            value = min(max(round(value / 8) * 8, MIN_SIDE), MAX_SIDE)
        elif name in _OPTIONAL_SIDES and value:
            value = max(value, MIN_SIDE)
        return int(value)
    return float(value)


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
    for name, kind in (("mode", Mode), ("inpaint_area", InpaintArea), ("masked_content", MaskedContent)):
        if getattr(settings, name) not in {m.value for m in kind}:
            setattr(settings, name, getattr(Settings, name))
    try:
        settings.sampler = canonical_sampler(settings.sampler)
    except ValueError:
        settings.sampler = DEFAULT_SAMPLER
    if settings.vae_tiling not in VAE_TILING_CHOICES:
        settings.vae_tiling = Settings.vae_tiling
    if settings.hires_upscaler not in HIRES_UPSCALERS:
        settings.hires_upscaler = Settings.hires_upscaler
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
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        try:
            path.replace(aside)
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
    from studio.core.paths import demo_model_dir

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
    try:
        mode = Mode(settings.mode)
        area = InpaintArea(settings.inpaint_area)
        content = MaskedContent(settings.masked_content)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    return GenerationRequest(
        prompt=settings.prompt,
        negative_prompt=settings.negative_prompt,
        steps=settings.steps,
        guidance=settings.guidance,
        seed=random_seed() if settings.random_seed else settings.seed,
        width=settings.width,
        height=settings.height,
        sampler=settings.sampler,
        batch_count=settings.batch_count,
        model=model,
        mode=mode,
        strength=settings.strength,
        init_image=init_image if mode is not Mode.TXT2IMG else None,
        mask=mask if mode is Mode.INPAINT else None,
        mask_blur=settings.mask_blur,
        inpaint_area=area,
        inpaint_padding=settings.inpaint_padding,
        masked_content=content,
        vae=settings.vae,
        clip_skip=settings.clip_skip,
        # Turned off, the numbers stay in the settings but the request says "off".
        hires_scale=settings.hires_scale if settings.hires_fix else 1.0,
        hires_steps=settings.hires_steps,
        hires_denoise=settings.hires_denoise,
        hires_upscaler=settings.hires_upscaler,
        variation_seed=settings.variation_seed,
        variation_strength=settings.variation_strength if settings.variation else 0.0,
        seed_resize_width=settings.seed_resize_width if settings.variation else 0,
        seed_resize_height=settings.seed_resize_height if settings.variation else 0,
    )


def apply_model_defaults(settings: Settings, model: str) -> bool:
    """Adopt what a model's studio.json recommends (size, sampler, steps, guidance). Used on a
    fresh install and when the user picks a model that declares them. True if anything changed."""
    from studio.core.model_info import model_defaults

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
    hires fix and variations). What the request has switched off stays as it was, switched off."""
    from dataclasses import replace

    return replace(
        settings,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        steps=request.steps,
        guidance=request.guidance,
        seed=request.seed,
        random_seed=False,
        width=request.width,
        height=request.height,
        sampler=request.sampler,
        batch_count=1,
        mode=request.mode.value,
        strength=request.strength,
        mask_blur=request.mask_blur,
        inpaint_area=request.inpaint_area.value,
        inpaint_padding=request.inpaint_padding,
        masked_content=request.masked_content.value,
        **extra_settings_from_request(request),
    )


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
