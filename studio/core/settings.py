"""User settings, declared once with their defaults; saved atomically; loaded tolerantly."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from studio.core.atomic import write_text_atomic
from studio.core.request import GenerationRequest, InpaintArea, InvalidRequest, MaskedContent, Mode, random_seed
from studio.core.samplers import DEFAULT_SAMPLER

SETTINGS_FORMAT = 1


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


def load_settings(path: Path) -> tuple[Settings, str | None]:
    """(settings, warning). A damaged file is set aside, never fatal; defaults fill the gaps."""
    if not path.exists():
        return Settings(), None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        try:
            path.replace(aside)
        except OSError:
            aside = path
        return Settings(), f"Settings could not be read ({exc}); defaults are used. The old file is at {aside}."
    settings = Settings()
    for f in fields(Settings):
        if f.name in data and type(data[f.name]) is type(getattr(settings, f.name)):
            setattr(settings, f.name, data[f.name])
        elif f.name in data and f.type == "float" and type(data[f.name]) is int:
            setattr(settings, f.name, float(data[f.name]))
    return settings, None


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
    """Settings that reproduce `request` exactly (fixed seed, same mode and inpaint options)."""
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
    )
