"""Generation metadata in image files: read it from any popular tool, and export keeping it.

Read (PNG text chunks; JPEG/WebP EXIF), best match first:
  studio_request      our own exact GenerationRequest (JSON)
  invokeai_metadata   InvokeAI (JSON)
  parameters          Fooocus (JSON, with fooocus_scheme) or A1111 infotext (also Krita, Fooocus "a1111")
  prompt              ComfyUI API graph: KSampler -> CLIPTextEncode, EmptyLatentImage
  EXIF UserComment    same text as `parameters` (A1111, Fooocus) or Draw Things JSON {c, uc, ...}
The result is one `ImageMetadata`; no exception escapes `read_metadata` for any input.

Export (`export_image`): PNG keeps every text chunk. JPEG and WebP carry the A1111 text in
EXIF UserComment (0x9286, b"UNICODE\\0" + UTF-16BE, the piexif convention A1111 reads) and
our full request in EXIF ImageDescription (0x010E) as the ASCII JSON {"studio_request": {...}}:
ImageDescription is a plain ASCII tag every EXIF reader keeps, and the wrapper key says whose
JSON it is, so a camera's description is never mistaken for a request.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import json
import math
import os
import re
import stat
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from studio.core.formats.infotext import DEFAULT_SCHEDULE, DISTILLED_KEY, SCHEDULE_KEY, parse_infotext
from studio.core.generation.fields import FIELD, FIELDS, Field
from studio.core.generation.request import MAX_SEED, GenerationRequest, InvalidRequest, Mode
from studio.core.generation.samplers import SAMPLER_NAMES
from studio.core.generation.settings import (
    HIRES_UPSCALERS,
    Settings,
    clamp_number,
    extra_settings_from_request,
    request_in_range,
)
from studio.core.storage.atomic import write_bytes_atomic
from studio.core.storage.outputs import PARAMETERS_KEY, REQUEST_KEY

EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
IMAGE_DESCRIPTION = 0x010E
MAX_TEXT = 4_000_000  # longer "metadata" is not metadata; refuse before parsing
MAX_PNG_CHUNKS = 200_000  # chunks walked per file; real PNGs have a few dozen (IDATs included)
MAX_GRAPH_HOPS = 32

# Fields `fields` may hold: Settings' names, plus strength (img2img) which Settings may lack.
FIELD_NAMES = ("prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height", "sampler", "strength")
# Inpainting's options, read from A1111's inpaint keys (Mask blur, Masked content, ...).
INPAINT_FIELD_NAMES = tuple(f.name for f in FIELDS if f.applies_when.get("mode") == "inpaint")
# A1111's extras (their Settings names): hires fix, variations, clip skip.
EXTRA_FIELD_NAMES = (
    "clip_skip", "hires_fix", "hires_scale", "hires_steps", "hires_denoise", "hires_upscaler",
    "variation", "variation_seed", "variation_strength", "seed_resize_width", "seed_resize_height",
)  # fmt: skip


@dataclass(frozen=True)
class ImageMetadata:
    fields: dict[str, Any] = field(default_factory=dict)  # ready for apply_fields(Settings)
    source: str = ""  # "studio", "a1111", "comfyui", "invokeai", "fooocus", "drawthings", ""
    extras: dict[str, Any] = field(default_factory=dict)  # found but not mapped (Hires, Lora, Model...)
    error: str | None = None  # a sentence for a person when nothing could be read
    request: GenerationRequest | None = None  # exact request, for studio images
    modules: tuple[str, ...] = ()  # Forge's Module 1, 2, ...: the VAE and text encoder files (stems)

    @property
    def ok(self) -> bool:
        return self.error is None


def _failed(message: str) -> ImageMetadata:
    return ImageMetadata(error=message)


# -- small converters: they return None instead of raising -----------------------------------
def _int(value: Any) -> int | None:
    try:
        if isinstance(value, bool):
            return None
        number = float(str(value).strip()) if not isinstance(value, (int, float)) else value
        if not math.isfinite(number) or number != int(number):
            return None
        return int(number)
    except (TypeError, ValueError, OverflowError):
        return None


def _float(value: Any) -> float | None:
    try:
        if isinstance(value, bool):
            return None
        number = float(value)
        return number if math.isfinite(number) else None
    except (TypeError, ValueError, OverflowError):
        return None


def _sampler(name: str, schedule: str = "") -> str | None:
    """An A1111 sampler name that exists in samplers.py, or None."""
    known = {n.casefold(): n for n in SAMPLER_NAMES}
    name = " ".join(str(name).split())
    if schedule and schedule.casefold() not in ("automatic", "normal", "default", ""):
        with_schedule = f"{name} {schedule}".casefold()
        if with_schedule in known:
            return known[with_schedule]
    return known.get(name.casefold())


def _put(fields: dict, extras: dict, key: str, value: Any, raw: Any, extra_key: str) -> None:
    """Store a mapped field, or keep the raw value as an extra when it did not convert."""
    if value is None:
        if raw not in (None, ""):
            extras[extra_key] = raw
    else:
        fields[key] = value


def _seed(value: Any) -> int | None:
    seed = _int(value)
    return seed if seed is not None and 0 <= seed <= MAX_SEED else None


def _size(fields: dict, extras: dict, width: Any, height: Any, label: str) -> None:
    w, h = _int(width), _int(height)
    if w and h and w > 0 and h > 0:
        fields["width"], fields["height"] = w, h
    elif width is not None or height is not None:
        extras[label] = f"{width}x{height}"


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


# -- A1111 -------------------------------------------------------------------------------------
# The keys the reader maps onto fields (fields.py's infotext_key), and those whose content is
# elsewhere: the model and VAE are chosen from "Model"/"Model hash"/"VAE" by the caller, and what
# `Lora hashes` and `TI hashes` name is in the prompt text (the hashes only identify files).
_A1111_MAPPED = {f.infotext_key for f in FIELDS if f.infotext_key and f.in_settings and f.name not in ("model", "vae")} | {
    "Schedule type", "Lora hashes", "TI hashes",
}
_HIRES_KEYS = ("Hires upscale", "Hires upscaler", "Hires resize")  # A1111's test that hires fix was on
_MODULE_KEY = re.compile(r"Module (\d+)")  # Forge's part files: Module 1: ae, Module 2: clip_l, ...


def _choice(f: Field, raw: str) -> str | None:
    """The stored value of an enum field named as A1111 writes it ("latent noise", "Only masked")."""
    text = " ".join(str(raw).split()).casefold()
    for shown, stored in f.choices:
        if text in (shown.casefold(), stored.casefold(), stored.replace("_", " ").casefold()):
            return stored
    return None


def _from_key(p: Mapping[str, str], name: str, fields: dict, extras: dict) -> None:
    """Field `name` from the A1111 key fields.py gives it, as the field's type; a value that
    does not convert stays an extra under its key. Ranges are applied later (_in_range)."""
    f = FIELD[name]
    key = f.infotext_key
    if key is None or key not in p:
        return
    raw = p[key]
    if isinstance(f.default, enum.Enum):
        value: Any = _choice(f, raw)
    elif f.type is int:
        value = _seed(raw) if f.maximum == MAX_SEED else _int(raw)  # a seed beyond 2^32 is another seed
    elif f.type is float:
        value = _float(raw)
    else:
        value = raw
    _put(fields, extras, name, value, raw, key)


def _resize_scale(text: str, fields: dict) -> float | None:
    """A1111's "Hires resize: WxH" as an upscale factor, when it keeps the picture's proportions."""
    width, _, height = text.partition("x")
    w, h = _int(width), _int(height)
    if not (w and h and fields.get("width") and fields.get("height")):
        return None
    scale = w / fields["width"]
    return scale if abs(h / fields["height"] - scale) < 0.01 else None


def _a1111_extras(p: Mapping[str, str], fields: dict, extras: dict) -> None:
    """Clip skip, hires fix and variations, as A1111 pastes them (infotext_utils): a key that is
    absent means off (clip skip 1, no hires fix, no variation), so the picture comes out the same."""
    fields["clip_skip"] = 1
    if "Clip skip" in p:
        skip = _int(p["Clip skip"])
        _put(fields, extras, "clip_skip", skip if skip is not None and skip >= 1 else None, p["Clip skip"], "Clip skip")
        _keep_if_damaged(fields, extras, "Clip skip", "clip_skip")
    hires = any(key in p for key in _HIRES_KEYS)
    fields["hires_fix"] = hires
    if hires:
        scale = _float(p["Hires upscale"]) if "Hires upscale" in p else _resize_scale(p.get("Hires resize", ""), fields)
        if scale is not None and scale > 1:
            fields["hires_scale"] = scale
            extras.pop("Hires resize", None)
        else:
            fields["hires_fix"] = False
            extras.update({k: p[k] for k in ("Hires upscale", "Hires resize") if k in p})
        fields["hires_steps"] = 0
        _from_key(p, "hires_steps", fields, extras)
        _keep_if_damaged(fields, extras, "Hires steps", "hires_steps")
        upscaler = " ".join(p.get("Hires upscaler", "Latent").split())
        known = {name.casefold(): name for name in HIRES_UPSCALERS}
        if upscaler.casefold() in known:
            fields["hires_upscaler"] = known[upscaler.casefold()]
        else:  # an ESRGAN-style model upscaler: the nearest the studio has, and say so
            fields["hires_upscaler"] = "Lanczos"
            extras["Hires upscaler"] = upscaler
        if "Denoising strength" in p:
            denoise = _float(p["Denoising strength"])
            _put(fields, extras, "hires_denoise", denoise if denoise and 0 < denoise <= 1 else None,
                 p["Denoising strength"], "Denoising strength")
    fields["variation"] = "Variation seed" in p or "Seed resize from" in p
    fields["variation_strength"] = 0.0
    _from_key(p, "variation_seed", fields, extras)
    _from_key(p, "variation_strength", fields, extras)
    _keep_if_damaged(fields, extras, "Variation seed strength", "variation_strength")
    fields["seed_resize_width"] = fields["seed_resize_height"] = 0
    if "Seed resize from" in p:
        width, _, height = p["Seed resize from"].partition("x")
        w, h = _int(width), _int(height)
        if w and h and w > 0 and h > 0:
            fields["seed_resize_width"], fields["seed_resize_height"] = w, h
        else:  # A1111 writes it only when both sides are set; anything else is not understood
            extras["Seed resize from"] = p["Seed resize from"]
            _keep_if_damaged(fields, extras, "Seed resize from", "seed_resize_width", "seed_resize_height")


def _keep_if_damaged(fields: dict, extras: dict, key: str, *names: str) -> None:
    """A value that did not convert (kept as an extra) leaves its fields as they were, as A1111's
    paste does (`Clip skip: 3\tVersion: ...`), rather than setting the default an absent key means."""
    if key in extras:
        for name in names:
            fields.pop(name, None)


def from_a1111(text: str, source: str = "a1111") -> ImageMetadata:
    info = parse_infotext(text)
    if not info.params and not info.prompt:
        return _failed("The image's parameters text is empty.")
    fields: dict[str, Any] = {"prompt": info.prompt, "negative_prompt": info.negative_prompt}
    modules = _modules(info.params)
    extras = {k: v for k, v in info.params.items()
              if k not in _A1111_MAPPED and k != DISTILLED_KEY and not _MODULE_KEY.fullmatch(k)}
    p = info.params
    for name in ("steps", "guidance", "seed"):
        _from_key(p, name, fields, extras)
    distilled = _forge_distilled_guidance(p, fields, extras)
    if "Sampler" in p:
        schedule = p.get(SCHEDULE_KEY, "")
        _put(fields, extras, "sampler", _sampler(p["Sampler"], schedule), p["Sampler"], "Sampler")
        # Simple is the schedule the studio samples a Flux model with (its own shifted sigmas).
        flux_default = distilled and schedule.casefold() == DEFAULT_SCHEDULE.casefold()
        if schedule and "sampler" in fields and not fields["sampler"].endswith(schedule) and not flux_default:
            extras[SCHEDULE_KEY] = schedule
    if "Size" in p:
        width, _, height = p["Size"].partition("x")
        _size(fields, extras, width, height, "Size")
    _a1111_extras(p, fields, extras)
    if "Mask blur" in p:  # an inpainting: A1111 names the area only when it is "Only masked"
        fields["inpaint_area"] = FIELD["inpaint_area"].settings_default
    for name in INPAINT_FIELD_NAMES:
        _from_key(p, name, fields, extras)
    if "Denoising strength" in p and not fields["hires_fix"]:  # with hires fix it is the hires pass's
        strength = _float(p["Denoising strength"])
        _put(fields, extras, "strength", strength if strength and 0 < strength <= 1 else None,
             p["Denoising strength"], "Denoising strength")
    return ImageMetadata(fields, source, extras, modules=modules)


def _forge_distilled_guidance(p: Mapping[str, str], fields: dict, extras: dict) -> bool:
    """Forge's Flux keys: `Distilled CFG Scale` is the guidance the studio's one guidance field
    holds for a guidance-distilled model, and `CFG scale: 1` says there was no CFG pass. A CFG
    scale above 1 beside it (Forge's slow two-pass CFG on Flux) is not something the studio
    does: it is named among the values not used. True for a Flux image."""
    if DISTILLED_KEY not in p:
        return False
    fields.pop("guidance", None)
    extras.pop("CFG scale", None)
    guidance = _float(p[DISTILLED_KEY])
    _put(fields, extras, "guidance", guidance if guidance is not None and guidance >= 0 else None,
         p[DISTILLED_KEY], DISTILLED_KEY)
    cfg = _float(p.get("CFG scale", "1"))
    if cfg is None or cfg != 1:
        extras["CFG scale"] = p["CFG scale"]
    return True


def _modules(p: Mapping[str, str]) -> tuple[str, ...]:
    """Forge's `Module N` values in N's order (Forge writes them in order; others may not)."""
    numbered = []
    for key, value in p.items():
        match = _MODULE_KEY.fullmatch(key)
        if match and value.strip():
            numbered.append((int(match.group(1)), value.strip()))
    return tuple(value for _, value in sorted(numbered))


# -- ComfyUI -----------------------------------------------------------------------------------
_COMFY_SAMPLERS = {
    "euler": "Euler", "euler_ancestral": "Euler a", "heun": "Heun", "lms": "LMS", "ddim": "DDIM",
    "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_sde": "DPM++ 2M SDE", "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
    "dpmpp_sde": "DPM++ SDE", "dpmpp_sde_gpu": "DPM++ SDE", "dpm_2": "DPM2", "dpm_2_ancestral": "DPM2 a",
    "uni_pc": "UniPC", "uni_pc_bh2": "UniPC", "lcm": "LCM",
}


def _comfy_sampler(sampler: Any, scheduler: Any) -> str | None:
    a1111 = _COMFY_SAMPLERS.get(str(sampler))
    if a1111 is None:
        return None
    return _sampler(a1111, "Karras" if scheduler == "karras" else "")


def _comfy_text(graph: dict, link: Any) -> str | None:
    """Follow a conditioning or text link back to the first node holding literal text."""
    for _ in range(MAX_GRAPH_HOPS):
        if not (isinstance(link, list) and link and str(link[0]) in graph):
            return None
        node = graph[str(link[0])]
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            return None
        for key in ("text", "text_g", "string", "value", "prompt"):
            if isinstance(inputs.get(key), str):
                return inputs[key]
        # Not text yet: a text link (primitive node) or a conditioning pass-through node.
        nxt = next((inputs[k] for k in ("text", "conditioning", "conditioning_1", "positive", "conditioning_to")
                    if isinstance(inputs.get(k), list)), None)
        link = nxt
    return None


def from_comfyui(text: str) -> ImageMetadata:
    graph = _json(text)
    if not isinstance(graph, dict) or not graph:
        return _failed("The ComfyUI prompt is not a JSON graph.")
    graph = {str(k): v for k, v in graph.items()}
    samplers = sorted((k for k, v in graph.items() if isinstance(v, dict)
                       and str(v.get("class_type", "")).startswith("KSampler")), key=lambda k: (len(k), k))
    if not samplers:
        return _failed("The ComfyUI graph has no KSampler node, so its settings cannot be found.")
    inputs = graph[samplers[0]].get("inputs")
    if not isinstance(inputs, dict):
        return _failed("The ComfyUI KSampler node has no inputs.")
    fields: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for key, link in (("prompt", inputs.get("positive")), ("negative_prompt", inputs.get("negative"))):
        found = _comfy_text(graph, link)
        if found is not None:
            fields[key] = found
    seed = inputs.get("seed", inputs.get("noise_seed"))
    _put(fields, extras, "seed", _seed(seed), seed if not isinstance(seed, list) else None, "seed")
    _put(fields, extras, "steps", _int(inputs.get("steps")), inputs.get("steps"), "steps")
    _put(fields, extras, "guidance", _float(inputs.get("cfg")), inputs.get("cfg"), "cfg")
    sampler = _comfy_sampler(inputs.get("sampler_name"), inputs.get("scheduler"))
    if sampler:
        fields["sampler"] = sampler
    else:
        extras["sampler"] = f"{inputs.get('sampler_name')} / {inputs.get('scheduler')}"
    denoise = _float(inputs.get("denoise"))
    if denoise is not None and 0 < denoise < 1:
        fields["strength"] = denoise
    latent = inputs.get("latent_image")
    if isinstance(latent, list) and latent and isinstance(graph.get(str(latent[0])), dict):
        node = graph[str(latent[0])]
        latent_inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        if "width" in latent_inputs:
            _size(fields, extras, latent_inputs.get("width"), latent_inputs.get("height"), "size")
    for node in graph.values():
        if isinstance(node, dict) and isinstance(node.get("inputs"), dict) and "ckpt_name" in node["inputs"]:
            extras["Model"] = node["inputs"]["ckpt_name"]
            break
    return ImageMetadata(fields, "comfyui", extras)


# -- InvokeAI ----------------------------------------------------------------------------------
_INVOKE_SCHEDULERS = {
    "ddim": "DDIM", "euler": "Euler", "euler_a": "Euler a", "heun": "Heun", "lms": "LMS",
    "lms_k": "LMS Karras", "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_k": "DPM++ 2M Karras",
    "dpmpp_2m_sde": "DPM++ 2M SDE", "dpmpp_2m_sde_k": "DPM++ 2M SDE Karras", "dpmpp_sde_k": "DPM++ SDE Karras",
    "kdpm_2_k": "DPM2 Karras", "kdpm_2_a_k": "DPM2 a Karras", "unipc": "UniPC", "lcm": "LCM",
}
_INVOKE_MAPPED = {"positive_prompt", "negative_prompt", "seed", "steps", "cfg_scale", "scheduler", "width", "height", "strength"}


def from_invokeai(text: str) -> ImageMetadata:
    data = _json(text)
    if not isinstance(data, dict):
        return _failed("The InvokeAI metadata is not a JSON object.")
    fields: dict[str, Any] = {}
    extras = {k: v for k, v in data.items() if k not in _INVOKE_MAPPED}
    for ours, theirs in (("prompt", "positive_prompt"), ("negative_prompt", "negative_prompt")):
        if isinstance(data.get(theirs), str):
            fields[ours] = data[theirs]
    _put(fields, extras, "seed", _seed(data.get("seed")), data.get("seed"), "seed")
    _put(fields, extras, "steps", _int(data.get("steps")), data.get("steps"), "steps")
    _put(fields, extras, "guidance", _float(data.get("cfg_scale")), data.get("cfg_scale"), "cfg_scale")
    if "scheduler" in data:
        _put(fields, extras, "sampler", _INVOKE_SCHEDULERS.get(str(data["scheduler"])), data["scheduler"], "scheduler")
    if "width" in data or "height" in data:
        _size(fields, extras, data.get("width"), data.get("height"), "size")
    strength = _float(data.get("strength"))
    if strength is not None and 0 < strength < 1:
        fields["strength"] = strength
    if not fields:
        return _failed("The InvokeAI metadata holds no generation settings.")
    return ImageMetadata(fields, "invokeai", extras)


# -- Fooocus -----------------------------------------------------------------------------------
_FOOOCUS_MAPPED = {"prompt", "negative_prompt", "steps", "guidance_scale", "seed", "sampler", "scheduler", "resolution"}


def from_fooocus(text: str) -> ImageMetadata:
    data = _json(text)
    if not isinstance(data, dict):
        return _failed("The Fooocus parameters are not a JSON object.")
    fields: dict[str, Any] = {}
    extras = {k: v for k, v in data.items() if k not in _FOOOCUS_MAPPED}
    for key in ("prompt", "negative_prompt"):
        if isinstance(data.get(key), str):
            fields[key] = data[key]
    _put(fields, extras, "steps", _int(data.get("steps")), data.get("steps"), "steps")
    _put(fields, extras, "guidance", _float(data.get("guidance_scale")), data.get("guidance_scale"), "guidance_scale")
    _put(fields, extras, "seed", _seed(data.get("seed")), data.get("seed"), "seed")  # Fooocus writes it as text
    if "sampler" in data:
        sampler = _comfy_sampler(data["sampler"], data.get("scheduler"))
        _put(fields, extras, "sampler", sampler, f"{data['sampler']} / {data.get('scheduler')}", "sampler")
    resolution = data.get("resolution")  # "(896, 1152)": width, height
    if isinstance(resolution, str):
        numbers = re.findall(r"\d+", resolution)
        if len(numbers) == 2:
            _size(fields, extras, numbers[0], numbers[1], "resolution")
        else:
            extras["resolution"] = resolution
    if not fields:
        return _failed("The Fooocus parameters hold no generation settings.")
    return ImageMetadata(fields, "fooocus", extras)


# -- Draw Things (EXIF UserComment JSON) -------------------------------------------------------
def from_drawthings(data: dict) -> ImageMetadata:
    fields: dict[str, Any] = {}
    extras = {k: v for k, v in data.items() if k not in ("c", "uc", "steps", "scale", "seed", "size", "sampler")}
    for ours, theirs in (("prompt", "c"), ("negative_prompt", "uc")):
        if isinstance(data.get(theirs), str):
            fields[ours] = data[theirs]
    _put(fields, extras, "steps", _int(data.get("steps")), data.get("steps"), "steps")
    _put(fields, extras, "guidance", _float(data.get("scale")), data.get("scale"), "scale")
    _put(fields, extras, "seed", _seed(data.get("seed")), data.get("seed"), "seed")
    if isinstance(data.get("sampler"), str):
        _put(fields, extras, "sampler", _sampler(data["sampler"]), data["sampler"], "sampler")
    if isinstance(data.get("size"), str):
        width, _, height = data["size"].partition("x")
        _size(fields, extras, width, height, "size")
    return ImageMetadata(fields, "drawthings", extras)


# -- ours ----------------------------------------------------------------------------------------
def from_studio(text: str) -> ImageMetadata:
    data = _json(text)
    if isinstance(data, dict) and isinstance(data.get(REQUEST_KEY), dict):
        data = data[REQUEST_KEY]  # the EXIF ImageDescription wrapper
    if not isinstance(data, dict):
        return _failed("The studio request in this image is not a JSON object.")
    try:
        request = GenerationRequest.from_dict(data)
    except (InvalidRequest, TypeError, ValueError) as exc:
        return _failed(f"The studio request in this image is damaged: {exc}")
    request = request_in_range(request)
    fields = {
        "prompt": request.prompt, "negative_prompt": request.negative_prompt, "steps": request.steps,
        "guidance": request.guidance, "seed": request.seed, "width": request.width, "height": request.height,
        "sampler": request.sampler,
    }
    if request.mode is not Mode.TXT2IMG:
        fields["strength"] = request.strength
    fields.update(extra_settings_from_request(request))
    extras = {"model": request.model, "mode": request.mode.value}
    modules = tuple(name.strip() for name in request.modules.split(",") if name.strip())
    return ImageMetadata(fields, "studio", extras, request=request, modules=modules)


# -- dispatch ------------------------------------------------------------------------------------
def parse_chunks(chunks: Mapping[str, Any]) -> ImageMetadata:
    """Metadata from an image's text chunks (keyword -> text). Never raises."""
    try:
        return _parse_chunks(chunks)
    except Exception as exc:  # noqa: BLE001 - the contract is "no exception escapes"
        return _failed(f"The image's metadata could not be read ({type(exc).__name__}).")


def _parse_chunks(chunks: Mapping[str, Any]) -> ImageMetadata:
    texts = {str(k): v for k, v in chunks.items() if isinstance(v, str) and len(v) <= MAX_TEXT}
    parsers = (
        (REQUEST_KEY, from_studio),
        ("invokeai_metadata", from_invokeai),
        (PARAMETERS_KEY, lambda text: _from_parameters(text, texts.get("fooocus_scheme", ""))),
        ("prompt", from_comfyui),
    )
    errors = []
    for key, parse in parsers:
        if key not in texts:
            continue
        try:
            result = parse(texts[key])
        except Exception as exc:  # noqa: BLE001 - one damaged chunk must not hide the next one
            result = _failed(f"The image's {key} metadata could not be read ({type(exc).__name__}).")
        if result.ok:
            return _in_range(result)
        errors.append(result.error)
    if errors:
        return _failed(errors[0])
    return _failed("This image carries no generation settings that the studio can read.")


def _in_range(result: ImageMetadata) -> ImageMetadata:
    """Numbers clamped into each field's range (a foreign tool may write Steps: 10000 or a seed
    beyond 2^32): restoring them must give settings Generate accepts and widgets can hold."""
    fields: dict[str, Any] = {}
    for key, value in result.fields.items():
        clamped = clamp_number(key, value)
        if clamped is not None:
            fields[key] = clamped
    return dataclasses.replace(result, fields=fields)


def _from_parameters(text: str, scheme: str) -> ImageMetadata:
    """`parameters` is Fooocus JSON or A1111 text; Fooocus' A1111 scheme is A1111 text."""
    if text.lstrip().startswith("{"):
        data = _json(text)
        if isinstance(data, dict):
            if REQUEST_KEY in data:
                return from_studio(text)
            if {"c", "steps"} <= data.keys() or {"c", "seed"} <= data.keys():
                return from_drawthings(data)
            return from_fooocus(text)
    return from_a1111(text, "fooocus" if scheme == "a1111" else "a1111")


def decode_user_comment(raw: Any) -> str | None:
    """EXIF UserComment: an 8-byte charset id, then the text (UTF-16 for "UNICODE")."""
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, (bytes, bytearray)) or len(raw) < 8:
        return None
    head, body = bytes(raw[:8]), bytes(raw[8:])
    if head == b"UNICODE\0":
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return body.decode("utf-16", errors="replace")
        # piexif/A1111 write big-endian; some writers use little-endian. ASCII text tells which.
        be_zeros = sum(1 for b in body[0::2] if b == 0)
        le_zeros = sum(1 for b in body[1::2] if b == 0)
        return body.decode("utf-16-le" if le_zeros > be_zeros else "utf-16-be", errors="replace")
    return body.decode("utf-8", errors="replace").rstrip("\0")


def encode_user_comment(text: str) -> bytes:
    return b"UNICODE\0" + text.encode("utf-16-be")


def image_chunks(image: Image.Image) -> dict[str, str]:
    """All metadata text of an opened image, keyed as in PNG (EXIF mapped to our keys).
    Texts over MAX_TEXT characters are left out: they are not metadata."""
    chunks: dict[str, str] = {}
    text = getattr(image, "text", None)  # PNG tEXt/iTXt/zTXt
    if isinstance(text, dict):
        chunks.update({str(k): v for k, v in text.items() if isinstance(v, str) and len(v) <= MAX_TEXT})
    for key, value in image.info.items():
        if isinstance(key, str) and isinstance(value, str) and len(value) <= MAX_TEXT:
            chunks.setdefault(key, value)
    try:
        exif = image.getexif()
    except Exception:  # noqa: BLE001 - a broken EXIF block must not hide the PNG chunks
        return chunks
    _add_exif_chunks(chunks, exif)
    return chunks


def _add_exif_chunks(chunks: dict[str, str], exif: Image.Exif) -> None:
    """Our request (ImageDescription) and the A1111 text (UserComment) from EXIF, unless the
    image's own text chunks already hold them."""
    try:
        description = exif.get(IMAGE_DESCRIPTION)
        if isinstance(description, str) and REQUEST_KEY in description and len(description) <= MAX_TEXT:
            data = _json(description)
            if isinstance(data, dict) and isinstance(data.get(REQUEST_KEY), dict):
                chunks.setdefault(REQUEST_KEY, json.dumps(data[REQUEST_KEY]))
        comment = decode_user_comment(exif.get_ifd(EXIF_IFD).get(USER_COMMENT))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not hide the rest
        comment = None
    if comment and len(comment) <= MAX_TEXT:
        chunks.setdefault(PARAMETERS_KEY, comment)


_KNOWN_KEYS = {REQUEST_KEY, PARAMETERS_KEY, "prompt", "invokeai_metadata"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_text_chunks(path: Path, max_chunk: int = MAX_TEXT) -> dict[str, str]:
    """A PNG's text chunks (tEXt, zTXt, iTXt, and EXIF from eXIf), found by walking the chunk
    headers: pixel data is skipped, never decoded, wherever the text sits (some writers put it
    after IDAT), and a chunk larger than `max_chunk` bytes, or decompressing beyond it, is
    skipped without being read. Decoded as Pillow does (a later chunk with the same keyword
    wins). Raises OSError, or ValueError when the file is not a PNG."""
    chunks: dict[str, str] = {}
    exif_data: bytes | None = None
    with open(path, "rb") as handle:
        if handle.read(8) != _PNG_SIGNATURE:
            raise ValueError("not a PNG file")
        for number in range(MAX_PNG_CHUNKS):
            head = handle.read(8)
            if len(head) < 8:
                break  # truncated: keep what was found
            length, kind = struct.unpack(">I4s", head)
            if number == 0 and kind != b"IHDR":
                raise ValueError("not a PNG image: it has no header chunk")
            if kind == b"IEND":
                break
            if kind in (b"tEXt", b"zTXt", b"iTXt", b"eXIf") and length <= max_chunk:
                data = handle.read(length)
                if len(data) < length:
                    break
                handle.seek(4, os.SEEK_CUR)  # CRC
                if kind == b"eXIf":
                    exif_data = data
                    continue
                decoded = _decode_text_chunk(kind, data, max_chunk)
                if decoded is not None:
                    chunks[decoded[0]] = decoded[1]
            else:
                handle.seek(length + 4, os.SEEK_CUR)
    if exif_data is not None:
        exif = Image.Exif()
        try:
            exif.load(exif_data)
        except Exception:  # noqa: BLE001 - a broken EXIF block must not hide the text chunks
            return chunks
        _add_exif_chunks(chunks, exif)
    return chunks


def _inflate(data: bytes, limit: int) -> bytes | None:
    """zlib data decompressed to at most `limit` bytes; None when larger or damaged."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit)
    except zlib.error:
        return None
    return None if inflater.unconsumed_tail else out


def _decode_text_chunk(kind: bytes, data: bytes, limit: int) -> tuple[str, str] | None:
    """(keyword, text) of one tEXt/zTXt/iTXt chunk, or None when it cannot be decoded."""
    keyword, sep, rest = data.partition(b"\0")
    key = keyword.decode("latin-1")
    if kind == b"tEXt":
        return key, rest.decode("latin-1")
    if kind == b"zTXt":
        if not sep or rest[:1] != b"\0":  # compression method 0 (zlib) is the only one
            return None
        text = _inflate(rest[1:], limit)
        return None if text is None else (key, text.decode("latin-1"))
    # iTXt: compression flag, method, language\0, translated keyword\0, UTF-8 text
    if len(rest) < 2:
        return None
    compressed, method, rest = rest[0], rest[1], rest[2:]
    parts = rest.split(b"\0", 2)
    if len(parts) < 3:
        return None
    raw: bytes | None = parts[2]
    if compressed:
        raw = _inflate(parts[2], limit) if method == 0 else None
    if raw is None:
        return None
    try:
        return key, raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_metadata(path: Path | str) -> ImageMetadata:
    """Generation settings stored in an image file. Never raises; `error` says what went wrong.
    Only regular files are opened (a FIFO would block the caller forever)."""
    path = Path(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return _failed(f"{path.name} is not a regular file.")
        with open(path, "rb") as handle:
            is_png = handle.read(8) == _PNG_SIGNATURE
        if is_png:
            chunks = png_text_chunks(path)
        else:
            with Image.open(path) as image:
                chunks = image_chunks(image)
    except FileNotFoundError:
        return _failed(f"{path.name} does not exist.")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return _failed(f"{path.name} is not an image the studio can read ({exc}).")
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on hostile files
        return _failed(f"{path.name} could not be read ({type(exc).__name__}: {exc}).")
    return parse_chunks(chunks)


# -- applying to Settings ------------------------------------------------------------------------
RESTORE_GROUPS = {
    "all": FIELD_NAMES + INPAINT_FIELD_NAMES + EXTRA_FIELD_NAMES,
    "seed": ("seed",),
    "prompt": ("prompt", "negative_prompt"),
    "size": ("width", "height"),
}


def apply_fields(settings: Settings, fields: Mapping[str, Any], what: str = "all") -> Settings:
    """A new Settings with the recalled fields (`what`: all, seed, prompt, size). Restoring a
    seed turns the random seed off, or the recalled seed would be thrown away."""
    wanted = RESTORE_GROUPS.get(what, RESTORE_GROUPS["all"])
    names = {f.name: type(getattr(settings, f.name)) for f in dataclasses.fields(settings)}
    changes: dict[str, Any] = {}
    for key in wanted:
        if key in fields and key in names:
            value = fields[key]
            if names[key] is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is names[key]:
                changes[key] = value
    if "seed" in changes and "random_seed" in names:
        changes["random_seed"] = False
    return dataclasses.replace(settings, **changes)


# -- export --------------------------------------------------------------------------------------
EXPORT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def export_image(src_png: Path | str, dest_path: Path | str, quality: int = 95) -> Path:
    """Write the image as PNG, JPEG or WebP (by the destination's suffix), keeping its metadata.
    Raises ValueError for an unknown suffix and OSError when a file cannot be read or written."""
    src_png, dest_path = Path(src_png), Path(dest_path)
    fmt = EXPORT_FORMATS.get(dest_path.suffix.lower())
    if fmt is None:
        raise ValueError(f"Export to {dest_path.suffix or 'a file without suffix'} is not supported; use .png, .jpg or .webp.")
    with Image.open(src_png) as image:
        image.load()
        chunks = image_chunks(image)
        buffer = io.BytesIO()
        if fmt == "PNG":
            info = PngImagePlugin.PngInfo()
            for key, value in chunks.items():
                info.add_text(key, value)  # Pillow: tEXt for Latin-1, iTXt otherwise
            image.save(buffer, format="PNG", pnginfo=info)
        else:
            exif = Image.Exif()
            if PARAMETERS_KEY in chunks:
                exif.get_ifd(EXIF_IFD)[USER_COMMENT] = encode_user_comment(chunks[PARAMETERS_KEY])
            if REQUEST_KEY in chunks:
                request = _json(chunks[REQUEST_KEY])
                if isinstance(request, dict):
                    exif[IMAGE_DESCRIPTION] = json.dumps({REQUEST_KEY: request}, ensure_ascii=True)
            exif[0x0131] = "Diffusion Studio"  # Software
            rgb = image.convert("RGB") if fmt == "JPEG" else image.convert("RGBA" if "A" in image.getbands() else "RGB")
            options = {"quality": quality, "exif": exif.tobytes()}
            if fmt == "WEBP":
                options["lossless"] = quality >= 100
            rgb.save(buffer, format=fmt, **options)
    write_bytes_atomic(dest_path, buffer.getvalue())
    return dest_path
