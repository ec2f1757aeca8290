"""The other parts a Flux transformer file needs, found in the artist's folders by what their
headers say they are (never by file name): ComfyUI keeps the transformer in models/diffusion_models
(or models/unet), CLIP-L and T5-XXL in models/text_encoders (or models/clip), the VAE in models/vae.

Pure Python and header-only: a folder of text encoders is read in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from studio.core.errors import ErrorKind, StudioError
from studio.core.models import flux_detect as fd
from studio.core.models.flux_detect import FluxFile

# ComfyUI's folders under models/ where parts live (and where transformers and checkpoints sit).
COMFY_FOLDERS = ("text_encoders", "clip", "vae", "diffusion_models", "unet", "checkpoints")
PART_KINDS = (fd.CLIP_L, fd.T5, fd.VAE)
MAX_FILES = 400  # per search: a huge folder must not stall loading
_SUFFIXES = (".safetensors", ".sft")

# What a missing part is, as the artist downloads it, and where ComfyUI keeps it.
_NEEDED = {
    fd.CLIP_L: ("a CLIP-L text encoder (clip_l.safetensors)", "models/text_encoders"),
    fd.T5: ("a T5-XXL text encoder (t5xxl_fp16.safetensors, or t5xxl_fp8_e4m3fn.safetensors for less memory)",
            "models/text_encoders"),
    fd.VAE: ("the Flux VAE (ae.safetensors)", "models/vae"),
}
_OPTION = {fd.CLIP_L: "--text-encoder", fd.T5: "--text-encoder", fd.VAE: "--vae"}


@dataclass
class FluxParts:
    """The files a Flux model is loaded from: `found` says which parts were looked for (not
    inside the model file, not chosen)."""

    model: FluxFile
    files: dict[str, FluxFile] = field(default_factory=dict)  # kind -> the file it comes from (absent: inside the model)
    found: set[str] = field(default_factory=set)
    missing: list[str] = field(default_factory=list)

    def path(self, kind: str) -> Path | None:
        part = self.files.get(kind)
        return part.path if part is not None else None

    @property
    def note(self) -> str:
        """Which parts came from the library, for the loading message ("" when none did)."""
        used = [f"{self.files[kind].path.name} ({self.files[kind].label})" for kind in PART_KINDS if kind in self.found]
        return ("Using " + ", ".join(used) + " from your model folders.") if used else ""

    def size_bytes(self) -> int:
        return self.model.size_bytes + sum(part.size_bytes for part in self.files.values())

    def missing_error(self) -> StudioError:
        kind = self.missing[0]
        what, where = _NEEDED[kind]
        return StudioError(
            ErrorKind.BAD_MODEL,
            f"{self.model.path.name} holds only the Flux transformer, and no {_label(kind)} was found for it: "
            f"it needs {what}.",
            f"Put that file in ComfyUI's {where} folder beside your models (or in the model's own folder), "
            f"or choose it with {_OPTION[kind]} FILE.",
        )


def _label(kind: str) -> str:
    return {fd.CLIP_L: "CLIP-L text encoder", fd.T5: "T5-XXL text encoder", fd.VAE: "Flux VAE"}[kind]


def search_folders(model: Path, library_dirs: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """Where a model's parts may be: its own folder, ComfyUI's part folders beside it (models/*),
    and each library folder with its ComfyUI siblings. Existing folders, each once."""
    bases = [model.parent, model.parent.parent]
    for folder in library_dirs:
        folder = Path(folder).expanduser()
        bases += [folder, folder.parent]
    found: list[Path] = []
    for base in bases:
        for candidate in (base, *(base / name for name in COMFY_FOLDERS), base / "models",
                          *(base / "models" / name for name in COMFY_FOLDERS)):
            if candidate.is_dir() and candidate not in found:
                found.append(candidate)
    return found


def _candidates(folders: list[Path], skip: Path) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.suffix.lower() in _SUFFIXES and entry != skip and entry not in files and entry.is_file():
                files.append(entry)
                if len(files) >= MAX_FILES:
                    return files
    return files


def _inspect(path: Path) -> FluxFile | None:
    try:
        return fd.inspect_flux_path(path)
    except (StudioError, OSError, ValueError, RecursionError):
        return None  # a broken or foreign file is simply not a part


def _fits(model: FluxFile, part: FluxFile) -> bool:
    """The widths the transformer reads (its files say them; the real ones are 768 and 4096)."""
    if part.kind == fd.CLIP_L:
        return not model.pooled_width or part.width == model.pooled_width
    if part.kind == fd.T5:
        return not model.text_width or part.width == model.text_width
    return part.width == fd.LATENT_CHANNELS


def _preference(model: FluxFile, part: FluxFile) -> tuple:
    """Among fitting files: the precision class of the transformer (an fp8 or GGUF transformer
    suggests a small card: fp8 text encoders first), then the name, for a stable choice."""
    small = model.dtype.startswith("fp8") or model.dtype == "gguf"
    return (part.dtype.startswith("fp8") != small, part.scaled_fp8, part.path.name.lower())


def find_parts(model: FluxFile, chosen: list[str] | tuple[str, ...] = (), vae: str = "",
               library_dirs: list[str] | tuple[str, ...] = ()) -> FluxParts:
    """The parts for `model`: chosen files first (each told apart by its header), then what the
    model file holds, then the best fitting file in the search folders."""
    parts = FluxParts(model)
    for given in [*chosen, *([vae] if vae else [])]:
        part = _inspect(Path(given).expanduser())
        if part is None or part.kind not in PART_KINDS:
            raise StudioError(ErrorKind.BAD_MODEL, f"{Path(given).name} is not a CLIP-L or T5-XXL text encoder or a Flux VAE.",
                              "Choose the file by what it is; its name does not matter.")
        if not _fits(model, part):
            raise StudioError(ErrorKind.BAD_MODEL,
                              f"{part.path.name} is a {part.label} {part.width} wide; {model.path.name} reads another width.",
                              "Choose the part made for Flux.1 (ComfyUI's models/text_encoders).")
        parts.files[part.kind] = part
    inside = {fd.CLIP_L: model.has_clip, fd.T5: model.has_t5, fd.VAE: model.has_vae}
    wanted = [kind for kind in PART_KINDS if kind not in parts.files and not inside[kind]]
    if wanted:
        best: dict[str, FluxFile] = {}
        for path in _candidates(search_folders(model.path, library_dirs), model.path):
            part = _inspect(path)
            if part is None or part.kind not in wanted or not _fits(model, part):
                continue
            if part.kind not in best or _preference(model, part) < _preference(model, best[part.kind]):
                best[part.kind] = part
        for kind in wanted:
            if kind in best:
                parts.files[kind] = best[kind]
                parts.found.add(kind)
            else:
                parts.missing.append(kind)
    return parts
