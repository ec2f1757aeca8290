"""Where the studio keeps its data: the platform's user-data folder, or $STUDIO_HOME."""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_DIR_NAME = "DiffusionStudio"


def data_home() -> Path:
    """Root of everything the studio writes. `STUDIO_HOME` wins (portable installs, tests)."""
    override = os.environ.get("STUDIO_HOME")
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / APP_DIR_NAME


def settings_file() -> Path:
    return data_home() / "settings.json"


def outputs_dir() -> Path:
    return data_home() / "outputs"


def inputs_dir() -> Path:
    """Input images and masks of img2img/inpaint jobs (content-addressed)."""
    return data_home() / "inputs"


def resources_dir() -> Path:
    """The repository's (or installed package's) resources/ folder."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "resources", here / "resources"):
        if candidate.is_dir():
            return candidate
    return here.parent / "resources"


def demo_model_dir() -> Path:
    return resources_dir() / "demo-model"
