"""The model library: every checkpoint and VAE in the folders the artist keeps them in.

Folders are the studio's own (`models/checkpoints`, `models/vae`, `models/loras` under its data
folder) plus any the artist adds. An A1111 `models/Stable-diffusion` or a ComfyUI
`models/checkpoints` works as it is: their VAE and LoRA folders are found beside them
(`VAE`/`vae`, `Lora`/`loras`, and `embeddings`). Scanning reads only file headers; run it off the GUI thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from studio.core.errors import StudioError
from studio.core.models.model_detect import inspect_model
from studio.core.storage.paths import data_home

MAX_DEPTH = 3  # model sites' archives nest a folder or two; deeper is someone's whole disk
_VAE_DIRS = ("VAE", "vae")
_LORA_DIRS = ("Lora", "loras", "lora", "LoRA")
_EMBEDDING_DIRS = ("embeddings", "Embeddings")


@dataclass(frozen=True)
class LibraryModel:
    path: str
    name: str
    label: str  # family, e.g. "SDXL", "SD 1.x inpainting"
    size_bytes: int
    single_file: bool

    @property
    def display(self) -> str:
        """What the picker shows: name, family and size."""
        size = f"{self.size_bytes / 1024**3:.1f} GB" if self.size_bytes >= 1024**3 else f"{self.size_bytes / 1024**2:.0f} MB"
        return f"{self.name}  ·  {self.label}  ·  {size}"


def own_models_dir() -> Path:
    return data_home() / "models" / "checkpoints"


def own_vae_dir() -> Path:
    return data_home() / "models" / "vae"


def own_lora_dir() -> Path:
    return data_home() / "models" / "loras"


def model_folders(extra: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """The studio's own checkpoint folder first, then the artist's, without duplicates."""
    folders: list[Path] = []
    for folder in (own_models_dir(), *(Path(p).expanduser() for p in extra if p)):
        if folder not in folders:
            folders.append(folder)
    return folders


def _siblings(folders: list[Path], names: tuple[str, ...], own: Path) -> list[Path]:
    found = [own]
    for folder in folders:
        for name in names:
            candidate = folder.parent / name
            if candidate.is_dir() and candidate not in found:
                found.append(candidate)
    return found


def vae_folders(folders: list[Path]) -> list[Path]:
    return _siblings(folders, _VAE_DIRS, own_vae_dir())


def lora_folders(folders: list[Path]) -> list[Path]:
    return _siblings(folders, _LORA_DIRS, own_lora_dir())


def own_embedding_dir() -> Path:
    return data_home() / "models" / "embeddings"


def embedding_folders(folders: list[Path]) -> list[Path]:
    """Textual-inversion folders: the studio's own, an `embeddings` beside a model folder
    (ComfyUI's `models/embeddings`), and A1111's, which sits at the webui root, two levels
    above `models/Stable-diffusion`."""
    found = _siblings(folders, _EMBEDDING_DIRS, own_embedding_dir())
    for folder in folders:
        if folder.parent.name.lower() != "models":
            continue  # only an A1111-shaped tree says where its root is
        for name in _EMBEDDING_DIRS:
            candidate = folder.parent.parent / name
            if candidate.is_dir() and candidate not in found:
                found.append(candidate)
    return found


# A1111's other checkpoint format: never opened (a pickle can run code), but listed among the
# skipped files with that reason, so an artist whose .ckpt is missing from the list knows why.
PICKLED_CHECKPOINT = ".ckpt"


def _walk(folder: Path, depth: int = 0, models: bool = False, walked: list[Path] | None = None):
    """.safetensors files under `folder` (MAX_DEPTH levels, hidden entries skipped, sorted by
    name); with `models`, also diffusers model folders and .ckpt files, and the extra-network
    folders a model folder may hold are left out. Every folder listed is added to `walked`."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name.lower())
    except OSError:
        return
    if walked is not None:
        walked.append(folder)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir():
                if models and (path / "model_index.json").is_file():
                    yield path
                elif depth < MAX_DEPTH and not (models and entry.name in _VAE_DIRS + _LORA_DIRS + _EMBEDDING_DIRS):
                    yield from _walk(path, depth + 1, models, walked)
            elif entry.is_file() and (entry.name.lower().endswith(".safetensors")
                                      or (models and entry.name.lower().endswith(PICKLED_CHECKPOINT))):
                yield path  # a pickled checkpoint only to be named as skipped, with the reason
        except OSError:
            continue


def safetensors_files(folder: Path, walked: list[Path] | None = None):
    """The .safetensors files in a folder and its subfolders: LoRA, VAE and embedding folders
    are all read this way. Every folder listed is added to `walked`."""
    return _walk(Path(folder), walked=walked)


def folders_beside_model(model_path: str) -> list[Path]:
    """Model folders for a model file: its own folder and, for a model in a subfolder of A1111's
    models/Stable-diffusion or ComfyUI's models/checkpoints, that folder too (extra-network
    folders sit beside those). With the studio's own folder first (model_folders)."""
    if not model_path:
        return model_folders()
    start = Path(model_path).expanduser().parent
    folders = [start, *(p for p in list(start.parents)[:MAX_DEPTH] if p.name.lower() in ("stable-diffusion", "checkpoints"))]
    return model_folders([str(f) for f in folders])


def scan_models(folders: list[Path]) -> tuple[list[LibraryModel], list[str]]:
    """(models found, one line per file that was skipped and why). Never raises."""
    models: list[LibraryModel] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for folder in folders:
        for path in _walk(folder, models=True):
            key = str(path.resolve())
            if key in seen:
                continue
            seen.add(key)
            try:
                info = inspect_model(path)
            except StudioError as exc:
                skipped.append(exc.message)
                continue
            except (OSError, ValueError, RecursionError) as exc:
                skipped.append(f"{path.name}: {exc}")
                continue
            models.append(LibraryModel(str(path), info.name, info.label, info.size_bytes, info.single_file))
    return models, skipped


def scan_vaes(folders: list[Path]) -> list[Path]:
    """Single-file VAEs (.safetensors) in the VAE folders."""
    found: list[Path] = []
    for folder in folders:
        for path in safetensors_files(folder):
            if path not in found:
                found.append(path)
    return found


def find_by_hash_or_name(models: list[LibraryModel], short_hash: str, name: str) -> LibraryModel | None:
    """The library model a dropped image names: by A1111 short hash (cached hashes only), else by name."""
    from studio.core.models.model_hash import cached_sha256

    if short_hash:
        for model in models:
            full = cached_sha256(model.path) if model.single_file else None
            if full and full.startswith(short_hash.lower()):
                return model
    if name:
        for model in models:
            if model.name == name or Path(model.path).name == name:
                return model
    return None


def model_of_image(metadata, extra_dirs: list[str] | tuple[str, ...] = ()) -> tuple[LibraryModel | None, str]:
    """(the library model a dropped image was made with, its name as the image gives it).

    A studio image names its model's path and hash; an A1111/Forge image its `Model` stem and
    `Model hash`. The library is matched by hash first (cached hashes only: nothing is hashed
    here), then by name. Reads file headers: call it off the GUI thread."""
    request = getattr(metadata, "request", None)
    if request is not None:
        name, short = (Path(request.model).stem if request.model else ""), request.model_hash
    else:
        extras = getattr(metadata, "extras", {}) or {}
        name, short = str(extras.get("Model", "") or ""), str(extras.get("Model hash", "") or "")
    if not name and not short:
        return None, ""
    models, _ = scan_models(model_folders(extra_dirs))
    return find_by_hash_or_name(models, short, name), name or short
