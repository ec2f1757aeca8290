"""Where the studio keeps its data: the platform's user-data folder, or $STUDIO_HOME."""

from __future__ import annotations

import importlib.util
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


def unsaved_dir() -> Path:
    """Where images the output folder refused are kept until the artist saves them elsewhere."""
    return data_home() / "unsaved"


def logs_dir() -> Path:
    return data_home() / "logs"


def inputs_dir() -> Path:
    """Input images and masks of img2img/inpaint jobs (content-addressed)."""
    return data_home() / "inputs"


def _shipped_folder(package: str, source_name: str) -> Path:
    """A data folder shipped with the studio: inside an installed wheel it is the package
    `package` (pyproject.toml maps the repository's top-level folder onto it); in the source
    tree and editable installs, the top-level folder `source_name` itself.

    The folders have no __init__.py (they hold only data), so they install as namespace
    packages; their spec's search location is the real folder, which diffusers needs as a path.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if Path(location).is_dir():
            return Path(location)
    return Path(__file__).resolve().parents[3] / source_name


def resources_dir() -> Path:
    """resources/ (icons, configs, tokenizers, the demo model), wherever the studio is installed."""
    return _shipped_folder("studio._resources", "resources")


def builtin_presets_dir() -> Path:
    """presets/ (the built-in presets), wherever the studio is installed."""
    return _shipped_folder("studio._presets", "presets")


def demo_model_dir() -> Path:
    return resources_dir() / "demo-model"


def startup_cleanup() -> int:
    """Remove temporary files that saves killed mid-write left in the studio's folders (the
    data folder: settings, session, history; presets; inputs; each day folder of outputs).
    Call once at start, before anything is saved. Returns how many were removed; never raises."""
    from studio.core.storage.atomic import clean_stale_temp_files

    home = data_home()
    folders = [home, home / "presets", inputs_dir()]
    try:
        folders += [entry for entry in outputs_dir().iterdir() if entry.is_dir() and not entry.is_symlink()]
    except OSError:
        pass
    return sum(clean_stale_temp_files(folder) for folder in folders)
