"""What a model folder says about itself beyond diffusers' files: studio.json (optional).

{"name": ..., "native_size": [w, h], "default_sampler": ..., "default_steps": n, "default_guidance": x}

The file comes with a downloaded model, so it is read tolerantly: each value is validated on
its own (numbers clamped into the field's range), and a bad value loses only itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from studio.core.generation.fields import clamp_number
from studio.core.generation.samplers import canonical_sampler
from studio.core.storage.jsonfile import read_json_object

INFO_FILE = "studio.json"
MAX_INFO_BYTES = 100_000
MAX_NAME_CHARS = 200


@dataclass(frozen=True)
class ModelDefaults:
    name: str = ""
    width: int | None = None
    height: int | None = None
    sampler: str | None = None
    steps: int | None = None
    guidance: float | None = None


def model_defaults(folder: str | Path) -> ModelDefaults:
    """Defaults the model's author recommends; what studio.json leaves out comes from the model's
    family (studio.core.models.detectors): the size it was trained at (1024 for SDXL, 768 for
    SD 2.x v, else 512) and any steps, guidance or sampler the family recommends, read from the
    file's tensor names and configs. Empty when nothing is known (never raises)."""
    data = read_json_object(Path(folder) / INFO_FILE, MAX_INFO_BYTES)
    defaults = defaults_from_dict(data) if data is not None else ModelDefaults()
    if None in (defaults.width, defaults.steps, defaults.guidance, defaults.sampler):
        defaults = _with_family_defaults(defaults, folder)
    return defaults


def _with_family_defaults(defaults: ModelDefaults, path: str | Path) -> ModelDefaults:
    """`defaults` with its gaps filled by the family's; unchanged for anything that is not a
    model the studio opens."""
    from studio.core.errors import StudioError
    from studio.core.models.detectors import detector_for
    from studio.core.models.model_detect import inspect_model

    try:
        info = inspect_model(Path(path))
    except (StudioError, OSError, ValueError, RecursionError):
        return defaults
    family = detector_for(info.family)
    if defaults.width is None:
        side = info.native_size
        defaults = replace(defaults, width=side, height=side)
    steps, guidance, sampler = family.recommended(info)
    return replace(
        defaults,
        steps=defaults.steps if defaults.steps is not None else steps,
        guidance=defaults.guidance if defaults.guidance is not None else guidance,
        sampler=defaults.sampler if defaults.sampler is not None else sampler,
    )


def defaults_from_dict(data: dict[str, Any]) -> ModelDefaults:
    """studio.json's values, each validated into its field's range or dropped (None)."""

    size = data.get("native_size")
    width = height = None
    if isinstance(size, (list, tuple)) and len(size) == 2:
        width, height = clamp_number("width", size[0]), clamp_number("height", size[1])
        if width is None or height is None:
            width = height = None
    sampler = data.get("default_sampler")
    try:
        sampler = canonical_sampler(sampler) if isinstance(sampler, str) and sampler else None
    except ValueError:
        sampler = None
    name = data.get("name")
    return ModelDefaults(
        name=name[:MAX_NAME_CHARS] if isinstance(name, str) else "",
        width=width,
        height=height,
        sampler=sampler,
        steps=clamp_number("steps", data.get("default_steps")),
        guidance=clamp_number("guidance", data.get("default_guidance")),
    )
