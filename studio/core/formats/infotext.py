"""A1111's `parameters` text ("infotext"): the lingua franca of SD image metadata.

Layout (A1111 modules/processing.py create_infotext):
    <prompt, may span lines>
    Negative prompt: <negative, may span lines>      (omitted when empty)
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, ...
Values holding ',', ':' or a newline are JSON-quoted.

Flux images are written as Forge writes them (modules/processing.py create_infotext): the
sampler's schedule apart ("Sampler: Euler, Schedule type: Simple"), "CFG scale: 1" with the
guidance of a guidance-distilled model as "Distilled CFG Scale: 3.5" after it, and the VAE and
text encoder files loaded beside a transformer as "Module 1: ae, Module 2: clip_l, ..." at the
end. Which fields a model reads comes from its PanelFacts (read from its header, cached).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from studio import __version__
from studio.core.generation.prompt_syntax import extract_extra_networks
from studio.core.generation.request import GenerationRequest, InpaintArea, Mode
from studio.core.models.family import PanelFacts

# A1111's own pattern (modules/infotext_utils.py) is
#     \s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)
# but re.findall with it is quadratic: from every start position the key part runs to the end
# of a long word run before failing (1.85 s for a 16,000-character line, 80 s for 100 KB).
# `_scan_params` finds exactly the same matches in one pass, using only patterns that are linear.
_KEY_RUN = re.compile(r"[\w \-/]+")  # a maximal run of key characters
_WORD = re.compile(r"\w")
_SPACE = re.compile(r"\s*")
_QUOTED = re.compile(r'"(?:\\.|[^\\"])+"')  # deterministic: ends at the first unescaped quote
MAX_INFOTEXT_CHARS = 64 * 1024  # real parameters text is a few KB; the rest of a huge chunk is ignored
_NEGATIVE = "Negative prompt:"
DISTILLED_KEY = "Distilled CFG Scale"  # Forge's key for a guidance-distilled model's guidance
SCHEDULE_KEY = "Schedule type"
DEFAULT_SCHEDULE = "Simple"  # Forge's and ComfyUI's schedule for Flux: the model's own shifted sigmas
_SCHEDULES = ("Karras",)  # the schedules the studio's sampler names end with ("DPM++ 2M Karras")


def forge_sampler(sampler: str) -> tuple[str, str]:
    """A studio sampler name as Forge writes it for Flux: (Sampler, Schedule type)."""
    for schedule in _SCHEDULES:
        if sampler.endswith(" " + schedule):
            return sampler[: -len(schedule) - 1], schedule
    return sampler, DEFAULT_SCHEDULE


def module_keys(modules: str) -> dict[str, str]:
    """Forge's `Module N` keys for a request's ", "-joined part file stems."""
    names = [name.strip() for name in modules.split(",") if name.strip()]
    return {f"Module {i}": name for i, name in enumerate(names, 1)}


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ",\n:") else value


def format_infotext(
    request: GenerationRequest, lora_folders: list[Path] | None = None, embedding_folders: list[Path] | None = None,
    facts: PanelFacts | None = None,
) -> str:
    """A1111's text for `request`, with A1111's keys in A1111's order (create_infotext); Forge's
    for Flux. `Lora hashes` and `TI hashes` come from the request (the engine fills them in);
    given `lora_folders` / `embedding_folders`, a request without them is looked up there.
    `facts`: which fields the request's model reads (default: read from its file)."""
    if facts is None:
        from studio.core.generation.model_fields import model_panel_facts

        facts = model_panel_facts(request.model)
    distilled = facts.guidance and facts.guidance_label != PanelFacts.guidance_label
    forge = distilled or not facts.guidance  # a flow model without CFG: Forge's Flux keys
    hires = request.mode is Mode.TXT2IMG and request.hires_scale > 1.0
    params: dict[str, str] = {"Steps": str(request.steps)}
    if forge:
        params["Sampler"], params[SCHEDULE_KEY] = forge_sampler(request.sampler)
        params["CFG scale"] = "1"  # no classifier-free guidance: one pass per step
        if distilled:
            params[DISTILLED_KEY] = f"{request.guidance:g}"
    else:
        params["Sampler"] = request.sampler
        params["CFG scale"] = f"{request.guidance:g}"
    params["Seed"] = str(request.seed)
    params["Size"] = f"{request.width}x{request.height}"
    if request.model_hash:
        params["Model hash"] = request.model_hash
    if request.model:
        model = Path(request.model)
        # A1111 and Forge write a model file's stem ("sd_xl_base_1.0", "flux1-dev-Q8_0"); a folder
        # keeps its whole name.
        params["Model"] = (model.stem if model.suffix.lower() in (".safetensors", ".gguf", ".sft") else model.name
                           ) or request.model
    if request.vae and not (forge and request.modules):  # Forge names the VAE among the modules
        params["VAE"] = Path(request.vae).name
    if request.mode is Mode.TXT2IMG:  # the only mode whose noise they shape (engine/noise.py)
        if request.variation_strength > 0:
            params["Variation seed"] = str(request.variation_seed)
            params["Variation seed strength"] = f"{request.variation_strength:g}"
        if request.seed_resize_width > 0 and request.seed_resize_height > 0:
            params["Seed resize from"] = f"{request.seed_resize_width}x{request.seed_resize_height}"
    if request.mode is not Mode.TXT2IMG:
        params["Denoising strength"] = f"{request.strength:g}"
    elif hires:
        params["Denoising strength"] = f"{request.hires_denoise:g}"  # A1111: the hires pass's
    if request.clip_skip > 1:
        params["Clip skip"] = str(request.clip_skip)
    if request.mode is Mode.INPAINT:  # A1111's own keys and wording
        params["Mask blur"] = str(request.mask_blur)
        params["Masked content"] = request.masked_content.value.replace("_", " ")
        if request.inpaint_area is InpaintArea.ONLY_MASKED:
            params["Inpaint area"] = "Only masked"
            params["Masked area padding"] = str(request.inpaint_padding)
    if hires:
        params["Hires upscale"] = f"{request.hires_scale:g}"
        if request.hires_steps:
            params["Hires steps"] = str(request.hires_steps)
        params["Hires upscaler"] = request.hires_upscaler
    # The engine fills these in from the files it used; searching folders here is for callers
    # that name them (saving must not hash 800 MB of LoRAs again, nor guess other folders).
    hashes = request.lora_hashes or (lora_hashes(request, lora_folders) if lora_folders is not None else "")
    if hashes:
        params["Lora hashes"] = hashes
    hashes = request.ti_hashes or (ti_hashes(request, embedding_folders) if embedding_folders is not None else "")
    if hashes:
        params["TI hashes"] = hashes
    params["Version"] = f"DiffusionStudio {__version__}"
    params.update(module_keys(request.modules))  # after Version, as Forge writes them
    negative = f"\n{_NEGATIVE} {request.negative_prompt}" if request.negative_prompt else ""
    last = ", ".join(f"{key}: {_quote(value)}" for key, value in params.items())
    return f"{request.prompt}{negative}\n{last}".strip()


_LORA_NAME_SYMBOLS = str.maketrans("", "", ":,")  # A1111 drops them from names in `Lora hashes`
_HASH_CACHE: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> hash: LoRAs are large


def _short_hash(path: Path, full_hash) -> str | None:
    """The first 12 characters of `full_hash(path)`, remembered while the file is unchanged."""
    try:
        info = path.stat()
        key = (str(path), info.st_size, info.st_mtime_ns)
        if key not in _HASH_CACHE:
            _HASH_CACHE[key] = full_hash(path)[:12]
    except (OSError, ValueError):
        return None
    return _HASH_CACHE[key]


def ti_hashes(request: GenerationRequest, folders: list[Path] | None = None) -> str:
    """A1111's `TI hashes` value for the textual-inversion embeddings the prompt or negative
    prompt names (a `.safetensors` file's name written as a word, as A1111 matches it), each
    with the first 12 characters of the file's SHA-256; "" when none."""
    from studio.core.models.model_hash import file_sha256
    from studio.core.models.model_library import (
        embedding_folders,
        folders_beside_model,
        safetensors_files,
    )

    # Extra-network tags (<lora:name:1>) are not words of the prompt: A1111 takes them out first.
    text = "\n".join(extract_extra_networks(t)[0] for t in (request.prompt, request.negative_prompt))
    if folders is None:
        folders = embedding_folders(folders_beside_model(request.model))
    names: dict[str, Path] = {}
    for folder in folders:
        for path in safetensors_files(Path(folder)):
            names.setdefault(path.stem, path)
    found: list[tuple[int, str, str]] = []  # (where the name first appears, name, hash)
    for name, path in names.items():
        match = re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE)
        short = _short_hash(path, file_sha256) if match else None
        if short:
            found.append((match.start(), name, short))
    # A1111's order: the prompt's embeddings as they appear, then the negative prompt's.
    return ", ".join(f"{name}: {short}" for _, name, short in sorted(found))


def lora_hashes(request: GenerationRequest, folders: list[Path] | None = None) -> str:
    """A1111's `Lora hashes` value, "name: hash, name2: hash2", for the prompt's LoRAs found on
    disk (the 12-character "addnet" short hash, as A1111's Lora extension writes it); "" when
    the prompt names none, none is found, or the LoRA module is not there."""
    try:
        from studio.core.generation.lora_tags import find_lora, lora_hash, lora_tags
    except ImportError:  # pragma: no cover - the LoRA module ships separately
        return ""
    tags = [tag for tag in lora_tags(request.prompt) if not tag.is_off]
    if not tags:
        return ""
    if folders is None:
        from studio.core.models.model_library import folders_beside_model, lora_folders

        folders = lora_folders(folders_beside_model(request.model))
    found: dict[str, str] = {}
    for tag in tags:
        path = find_lora(tag.name, folders)
        short = _short_hash(path, lora_hash) if path is not None else None
        if short:
            found[tag.name.translate(_LORA_NAME_SYMBOLS)] = short
    return ", ".join(f"{name}: {short}" for name, short in found.items())


@dataclass
class Infotext:
    prompt: str = ""
    negative_prompt: str = ""
    params: dict[str, str] = field(default_factory=dict)


def _scan_params(line: str) -> list[tuple[str, str]]:
    """(key, raw value) pairs as `re.findall(A1111's pattern, line)` returns them, in linear time.

    findall tries every start position in turn. A match needs a key: a word character followed
    by at least one more key character, ending just before a ':' (':' is not a key character,
    so the key always ends where its run of key characters ends). So the next match's key starts
    at the first word character, at or after the search position, inside a run that is followed
    by ':' and at least two characters before that ':'.
    """
    pairs: list[tuple[str, str]] = []
    pos, end = 0, len(line)
    runs = _KEY_RUN.finditer(line)
    run = next(runs, None)
    while run is not None:
        if run.end() < end and line[run.end()] == ":" and run.end() - max(run.start(), pos) >= 2:
            word = _WORD.search(line, max(run.start(), pos), run.end() - 1)
            if word is not None:
                key, colon = line[word.start():run.end()], run.end()
                value_start = _SPACE.match(line, colon + 1).end()
                quoted = _QUOTED.match(line, value_start) if line.startswith('"', value_start) else None
                if quoted is not None and (quoted.end() == end or line[quoted.end()] == ","):
                    value_end = quoted.end()
                else:
                    comma = line.find(",", value_start)
                    value_end = end if comma < 0 else comma
                pairs.append((key, line[value_start:value_end]))
                pos = value_end + 1  # past the comma (or the end)
                if pos > end:
                    break
                run = next(runs, None)
                while run is not None and run.end() <= pos:
                    run = next(runs, None)
                continue
        run = next(runs, None)
    return pairs


def parse_infotext(text: str) -> Infotext:
    """Parse A1111 parameters text. Never raises on odd input; unknown keys stay in params.
    Only the first MAX_INFOTEXT_CHARS characters are read."""
    lines = text[:MAX_INFOTEXT_CHARS].strip().split("\n")
    params: dict[str, str] = {}
    pairs = _scan_params(lines[-1]) if lines else []
    if len(pairs) >= 3:
        lines.pop()
        for key, value in pairs:
            value = value.strip()
            if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                try:
                    value = str(json.loads(value))
                except json.JSONDecodeError:
                    pass
            params[key.strip()] = value
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in lines:
        line = line.strip()  # as A1111: each line, so Windows' "\r\n" leaves no "\r" behind
        if not in_negative and line.startswith(_NEGATIVE):
            in_negative = True
            line = line[len(_NEGATIVE):].lstrip()
        (negative_lines if in_negative else prompt_lines).append(line)
    return Infotext("\n".join(prompt_lines).strip(), "\n".join(negative_lines).strip(), params)
