"""LoRAs as the prompt names them (`<lora:NAME:WEIGHT>`), and the LoRA files those names mean.

Tags follow A1111's built-in Lora extension (extensions-builtin/Lora/extra_networks_lora.py):
`<lora:name>` is weight 1; `<lora:name:0.8>` sets the text-encoder and UNet weight together;
`<lora:name:0.8:0.5>` or `<lora:name:te=0.8:unet=0.5>` set them apart; `<lyco:...>` is the same
(A1111 keeps it as an alias for old LyCORIS prompts). A name is the file's stem, found in any
LoRA folder or one of its subfolders, as A1111 finds it.

The family a LoRA was made for comes from its tensor names and shapes, then from the trainer's
metadata, each family's marks as its detector gives them (studio.core.models.detectors:
cross-attention width 768 SD 1.x, 1024 SD 2.x, 2048 SDXL; SDXL files have `lora_te1_`/`lora_te2_`
text encoders). Pure Python: the picker scans folders before torch loads.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

from studio.core.generation.prompt_syntax import extract_extra_networks
from studio.core.models.detectors import DETECTORS
from studio.core.models.family import Family
from studio.core.models.model_library import safetensors_files
from studio.core.models.safetensors_header import SafetensorsHeader, read_header

LORA_KINDS = ("lora", "lyco")
MAX_WEIGHT = 2.0  # A1111's slider range; far beyond it a LoRA only burns the image
# Distinct LoRAs one job applies. Each is an adapter in memory (an SDXL LoRA: up to a few hundred
# MB), and a prompt naming a hundred loaded a hundred; artists stack a handful.
MAX_LORAS_PER_JOB = 10
SUFFIX = ".safetensors"  # pickled .pt/.ckpt LoRAs can run code when loaded: never read


@dataclass(frozen=True)
class LoraTag:
    name: str
    weight: float = 1.0  # text encoders, and the UNet unless unet_weight says otherwise
    unet_weight: float | None = None
    note: str = ""  # what was changed or ignored while reading the tag, for the artist

    @property
    def unet(self) -> float:
        return self.weight if self.unet_weight is None else self.unet_weight

    @property
    def is_off(self) -> bool:
        """Weight 0 everywhere: the job runs exactly as without the tag."""
        return self.weight == 0 and self.unet == 0


def _weight(name: str, label: str, text: str, notes: list[str]) -> float:
    try:
        value = float(text)
    except ValueError:
        notes.append(f"LoRA {name}: {label} {text.strip()[:20]!r} is not a number; used 1.")
        return 1.0
    if math.isnan(value):
        notes.append(f"LoRA {name}: {label} is not a number; used 1.")
        return 1.0
    if abs(value) > MAX_WEIGHT:
        clamped = math.copysign(MAX_WEIGHT, value)
        notes.append(f"LoRA {name}: {label} {text.strip()[:20]} is outside -2..2; used {clamped:g}.")
        return clamped
    return value


def parse_lora_args(args: tuple[str, ...]) -> LoraTag | None:
    """One tag's arguments as A1111 reads them: `key=value` items are named, the rest positional
    (name, te weight, unet weight, dyn). None for a tag without a name."""
    positional = [a for a in args if "=" not in a]
    named = dict(a.split("=", 1) for a in args if "=" in a)
    name = positional[0].strip() if positional else ""
    if not name:
        return None
    notes: list[str] = []
    te_text = named.get("te", positional[1] if len(positional) > 1 else None)
    unet_text = named.get("unet", positional[2] if len(positional) > 2 else None)
    weight = _weight(name, "weight", te_text, notes) if te_text is not None else 1.0
    unet = _weight(name, "UNet weight", unet_text, notes) if unet_text is not None else None
    if len(positional) > 3 or "dyn" in named:
        notes.append(f"LoRA {name}: the dyn setting (dynamic rank) is not supported and was ignored.")
    return LoraTag(name, weight, unet, " ".join(notes))


def lora_tags(prompt: str) -> list[LoraTag]:
    """The LoRA tags of a prompt, in order of appearance."""
    _, networks = extract_extra_networks(prompt)
    # The kind is matched as typed: A1111 looks it up in a dict, so `<LORA:x>` names no network it
    # has and is skipped (taken out of the text like every tag, never applied).
    tags = (parse_lora_args(n.args) for n in networks if n.kind in LORA_KINDS)
    return [tag for tag in tags if tag is not None]


def merge_repeats(tags: list[LoraTag]) -> list[LoraTag]:
    """One tag per LoRA name, in order of first mention, as A1111 applies repeats: its
    load_networks (extensions-builtin/Lora/networks.py) reuses the one in-memory network for
    every mention and overwrites its multipliers with each, so a name mentioned n times is
    applied n times at its last mention's weights: n x last weight. That sum is held to
    -MAX_WEIGHT..MAX_WEIGHT like one tag's weight (1,000 mentions at 2 are 2, not 2,000)."""
    by_name: dict[str, list[LoraTag]] = {}
    for tag in tags:
        by_name.setdefault(tag.name, []).append(tag)
    merged = []
    for name, mentions in by_name.items():
        last, count = mentions[-1], len(mentions)
        notes = list(dict.fromkeys(tag.note for tag in mentions if tag.note))
        if count == 1:
            merged.append(last)
            continue
        weight = _held(name, count, "weight", last.weight, notes)
        unet = None if last.unet_weight is None else _held(name, count, "UNet weight", last.unet_weight, notes)
        merged.append(LoraTag(name, weight, unet, " ".join(notes)))
    return merged


def _held(name: str, count: int, label: str, last: float, notes: list[str]) -> float:
    total = count * last
    if abs(total) <= MAX_WEIGHT:
        return total
    held = math.copysign(MAX_WEIGHT, total)
    notes.append(f"LoRA {name} is named {count:,} times at {label} {last:g}, which adds up to {total:g}; "
                 f"used {held:g}, the most one LoRA takes.")
    return held


def job_loras(prompt: str) -> tuple[list[LoraTag], str]:
    """The LoRAs one job applies: repeats merged, at most MAX_LORAS_PER_JOB (the first named),
    and a note when some were left out."""
    tags = merge_repeats(lora_tags(prompt))
    wanted = [tag for tag in tags if not tag.is_off]
    if len(wanted) <= MAX_LORAS_PER_JOB:
        return tags, ""
    dropped = wanted[MAX_LORAS_PER_JOB:]
    kept = [tag for tag in tags if tag not in dropped]
    note = (f"The prompt names {len(wanted):,} LoRAs; an image takes at most {MAX_LORAS_PER_JOB}, so the first "
            f"{MAX_LORAS_PER_JOB} were used and {len(dropped):,} left out ({', '.join(t.name for t in dropped[:3])}"
            f"{', …' if len(dropped) > 3 else ''}).")
    return kept, note


# -- the files ------------------------------------------------------------------------------------
def _is_file(path: Path) -> bool:
    """Path.is_file, False for a name no file can have (over 255 bytes, a NUL in it)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def find_lora(name: str, folders: list[Path] | tuple[Path, ...]) -> Path | None:
    """The file a tag's name means: the first `<name>.safetensors` in the folders (in order) or
    their subfolders; an exact stem match wins over one that differs only in case."""
    name = name.strip()
    if not name:
        return None
    folders = [Path(f) for f in folders]
    if "/" not in name and "\\" not in name:
        for folder in folders:
            direct = folder / f"{name}{SUFFIX}"
            if _is_file(direct):
                return direct
    folded = None
    for folder in folders:
        for path in safetensors_files(folder):
            stem = path.name[: -len(SUFFIX)]
            if stem == name:
                return path
            if folded is None and stem.lower() == name.lower():
                folded = path
    return folded


def missing_loras(prompt: str, folders: list[Path] | tuple[Path, ...]) -> list[str]:
    """Names in the prompt's LoRA tags that no LoRA folder holds (each once, in order)."""
    missing: list[str] = []
    for tag in lora_tags(prompt):
        if tag.name not in missing and find_lora(tag.name, folders) is None:
            missing.append(tag.name)
    return missing


# -- what a file is made for ------------------------------------------------------------------------
_OTHER_MODELS = (  # (key prefix or part, label) of LoRAs for models the studio does not run;
    # asked after the families' own prefixes (Flux's LoRAs have single_transformer_blocks, SD3's not)
    ("lora_transformer_", "SD3"), ("transformer.transformer_blocks", "SD3"),
)


@dataclass(frozen=True)
class LoraFile:
    path: Path
    family: Family | None  # None: it can't be told (a tiny test LoRA), or see `other`
    other: str = ""  # a model family the studio does not run (Flux, SD3): never applied

    @property
    def name(self) -> str:
        return self.path.name[: -len(SUFFIX)] if self.path.name.lower().endswith(SUFFIX) else self.path.stem

    @property
    def label(self) -> str:
        return self.other or (self.family.label if self.family else "unknown family")


def _down_width(header: SafetensorsHeader, name: str) -> int | None:
    """The input width of a LoRA's down (A) matrix: the width of what the layer reads."""
    shape = header.shape(name)
    return shape[1] if shape and len(shape) >= 2 else None


def lora_family(header: SafetensorsHeader) -> tuple[Family | None, str]:
    """(the family a LoRA was made for or None, the name of an unsupported family or "")."""
    names = header.tensors
    for detector in DETECTORS:
        if detector.lora_prefixes and any(n.startswith(detector.lora_prefixes) for n in names):
            return detector.family, ""
    for part, label in _OTHER_MODELS:
        if any(part in n for n in names):
            return None, label
    by_cross_attention = {d.lora_cross_attention_width: d.family for d in DETECTORS if d.lora_cross_attention_width}
    for name in names:
        down = name.endswith((".lora_down.weight", ".lora_A.weight"))
        if down and re.search(r"attn2[._]to_[kv]", name):
            family = by_cross_attention.get(_down_width(header, name) or 0)
            if family:
                return family, ""
    by_text_width = {d.lora_text_width: d.family for d in DETECTORS if d.lora_text_width}
    for name in names:
        if name.startswith(("lora_te_", "text_encoder.", "te.")) and name.endswith(
                ("q_proj.lora_down.weight", "q_proj.lora_A.weight")):
            family = by_text_width.get(_down_width(header, name) or 0)
            if family:
                return family, ""
    meta = " ".join(header.metadata.get(k, "") for k in ("ss_base_model_version", "modelspec.architecture")).lower()
    for detector in DETECTORS:
        if detector.lora_metadata_matches(meta, header.metadata):
            return detector.family, ""
    return None, ""


def inspect_lora(path: str | Path) -> LoraFile:
    """What a LoRA file is made for, from its header alone. Raises StudioError for a bad file."""
    header = read_header(path)
    family, other = lora_family(header)
    return LoraFile(Path(path), family, other)


def scan_loras(folders: list[Path] | tuple[Path, ...]) -> tuple[list[LoraFile], list[str]]:
    """(LoRA files in the folders, one line per file skipped and why). Never raises; reads only
    headers (run it off the GUI thread). The first file of a name wins, as in find_lora."""
    from studio.core.errors import StudioError

    found: list[LoraFile] = []
    skipped: list[str] = []
    names: set[str] = set()
    for folder in folders:
        for path in safetensors_files(Path(folder)):
            if path.name[: -len(SUFFIX)] in names:
                continue
            try:
                lora = inspect_lora(path)
            except StudioError as exc:
                skipped.append(exc.message)
                continue
            names.add(lora.name)
            found.append(lora)
    return found, skipped


def lora_hash(path: str | Path) -> str:
    """A1111's LoRA hash (kohya's "addnet" hash): SHA-256 of the file after its header. Its first
    12 characters go into an image's `Lora hashes` metadata."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        handle.seek(8 + length)
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()
