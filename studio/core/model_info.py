"""What a model folder says about itself beyond diffusers' files: studio.json (optional).

{"name": ..., "native_size": [w, h], "default_sampler": ..., "default_steps": n, "default_guidance": x}

The file comes with a downloaded model, so it is read tolerantly: each value is validated on
its own (numbers clamped into the field's range), and a bad value loses only itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.jsonfile import read_json_object
from studio.core.samplers import canonical_sampler

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
    """Defaults the model's author recommends; empty when absent or unreadable (never raises)."""
    data = read_json_object(Path(folder) / INFO_FILE, MAX_INFO_BYTES)
    return defaults_from_dict(data) if data is not None else ModelDefaults()


def defaults_from_dict(data: dict[str, Any]) -> ModelDefaults:
    """studio.json's values, each validated into its field's range or dropped (None)."""
    from studio.core.settings import clamp_number  # settings imports this module lazily too

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
