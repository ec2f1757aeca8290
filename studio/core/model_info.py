"""What a model folder says about itself beyond diffusers' files: studio.json (optional).

{"name": ..., "native_size": [w, h], "default_sampler": ..., "default_steps": n, "default_guidance": x}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from studio.core.samplers import canonical_sampler

INFO_FILE = "studio.json"


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
    try:
        data = json.loads((Path(folder) / INFO_FILE).read_text(encoding="utf-8"))
        width, height = data.get("native_size") or (None, None)
        sampler = data.get("default_sampler")
        return ModelDefaults(
            name=str(data.get("name", "")),
            width=int(width) if width else None,
            height=int(height) if height else None,
            sampler=canonical_sampler(sampler) if sampler else None,
            steps=int(data["default_steps"]) if data.get("default_steps") else None,
            guidance=float(data["default_guidance"]) if data.get("default_guidance") is not None else None,
        )
    except (OSError, ValueError, TypeError, AttributeError):
        return ModelDefaults()
