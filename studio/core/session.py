"""The working session (prompt, settings, canvas and mask paths) for crash recovery.

The window saves it as things change (debouncing is the UI's job); after a crash or a restart
`load_session` brings it back. Saves are atomic; a damaged file is set aside and never fatal.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.atomic import write_text_atomic
from studio.core.jsonfile import read_json_object
from studio.core.paths import data_home
from studio.core.settings import MAX_SETTINGS_BYTES, Settings, settings_from_dict

SESSION_FORMAT = 1


def session_file() -> Path:
    return data_home() / "session.json"


@dataclass
class Session:
    settings: Settings = field(default_factory=Settings)
    canvas_image: str | None = None  # path of the image on the canvas (img2img / inpaint source)
    mask: str | None = None  # path of the painted mask
    saved_at: float = 0.0


def save_session(session: Session, path: Path | None = None) -> None:
    data = {
        "format": SESSION_FORMAT,
        "saved_at": time.time(),
        "settings": dataclasses.asdict(session.settings),
        "canvas_image": session.canvas_image,
        "mask": session.mask,
    }
    write_text_atomic(path or session_file(), json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _settings_from(data: Any) -> Settings:
    """Validated as load_settings does: known fields of the right type, numbers clamped into
    range, unknown names replaced by defaults. (The device comes from the settings file, so
    its message is not repeated here.)"""
    return settings_from_dict(data)[0]


def load_session(path: Path | None = None) -> tuple[Session | None, str | None]:
    """(session, warning). None when there is no saved session or it could not be read."""
    path = path or session_file()
    if not path.exists():
        return None, None
    try:
        data = read_json_object(path, MAX_SETTINGS_BYTES + 10_000)
        if data is None:
            raise ValueError("the file is damaged, too large or not a JSON object")
        version = data.get("format", SESSION_FORMAT)
        if not isinstance(version, int) or isinstance(version, bool) or version > SESSION_FORMAT:
            raise ValueError(f"unsupported format {version!r}")
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        try:
            path.replace(aside)
        except OSError:
            aside = path
        return None, f"The last session could not be restored ({exc}). The old file is at {aside}."
    paths = {k: data.get(k) if isinstance(data.get(k), str) else None for k in ("canvas_image", "mask")}
    saved_at = data.get("saved_at")
    saved_at = float(saved_at) if type(saved_at) is float or (type(saved_at) is int and abs(saved_at) < 2**53) else 0.0
    return Session(_settings_from(data.get("settings")), paths["canvas_image"], paths["mask"], saved_at), None


def clear_session(path: Path | None = None) -> None:
    """Forget the session (e.g. after the user chose not to restore it)."""
    (path or session_file()).unlink(missing_ok=True)
