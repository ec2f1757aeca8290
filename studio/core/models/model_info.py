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
    """Defaults the model's author recommends; without a recommended size, the size the model's
    family was trained at (1024 for SDXL, 768 for SD 2.x v, else 512), read from the file's
    tensor names and configs. Empty when nothing is known (never raises)."""
    data = read_json_object(Path(folder) / INFO_FILE, MAX_INFO_BYTES)
    defaults = defaults_from_dict(data) if data is not None else ModelDefaults()
    if defaults.width is None:
        side = _native_side(folder)
        if side is not None:
            defaults = replace(defaults, width=side, height=side)
    return defaults


def _native_side(path: str | Path) -> int | None:
    """The family's native size; None for anything that is not a model the studio opens."""
    from studio.core.errors import StudioError
    from studio.core.models.model_detect import inspect_model

    try:
        return inspect_model(Path(path)).native_size
    except (StudioError, OSError, ValueError, RecursionError):
        return None


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
