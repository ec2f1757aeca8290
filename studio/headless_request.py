"""The request `studio generate` runs: from its flags, or replayed from an image (`--from`).

A replay starts from what the image records (the studio's own request exactly, or the fields of
A1111's parameters) and every flag given on the command line overrides its field. The mode
follows from the inputs in effect: an input image makes it img2img, an input image and a mask
inpainting. Pure: reads files and settings, never imports torch.
"""

from __future__ import annotations

from argparse import Namespace
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from studio.core.errors import ErrorKind, StudioError
from studio.core.formats.metadata import apply_fields, read_metadata
from studio.core.generation.request import GenerationRequest, InvalidRequest, Mode, random_seed
from studio.core.generation.samplers import DEFAULT_SAMPLER
from studio.core.generation.settings import Settings, effective_model, load_settings, request_from_settings
from studio.core.models.model_info import model_defaults
from studio.core.storage.paths import settings_file

# argparse dest -> request field, for the flags that set one field as given.
FLAG_FIELDS = {
    "prompt": "prompt", "negative": "negative_prompt", "steps": "steps", "cfg": "guidance", "seed": "seed",
    "sampler": "sampler", "batch": "batch_count", "clip_skip": "clip_skip", "hires_scale": "hires_scale",
    "hires_steps": "hires_steps", "denoise": "hires_denoise", "hires_upscaler": "hires_upscaler",
    "variation_seed": "variation_seed", "variation_strength": "variation_strength", "strength": "strength",
    "mask_blur": "mask_blur", "inpaint_area": "inpaint_area", "inpaint_padding": "inpaint_padding",
    "masked_content": "masked_content",
}  # fmt: skip
INPUT_FLAGS = {"strength": "--strength"}  # need an input image
INPAINT_FLAGS = {"mask_blur": "--mask-blur", "inpaint_area": "--inpaint-area", "inpaint_padding": "--inpaint-padding",
                 "masked_content": "--masked-content"}  # need a mask


def build_request(args: Namespace) -> tuple[GenerationRequest, list[str]]:
    """(the validated request, notes for the terminal). Raises StudioError or InvalidRequest."""
    notes: list[str] = []
    given = {field: getattr(args, dest) for dest, field in FLAG_FIELDS.items() if getattr(args, dest, None) is not None}
    source = getattr(args, "from_image", None)
    base, named = _replayed(Path(source).expanduser()) if source else (None, "")
    if base is None and "prompt" not in given:
        raise InvalidRequest("Give a --prompt, or --from IMAGE to make an image's recipe again.")
    model = _model(args, base, named, notes)
    init_image, mask = _inputs(args, base)
    _refuse_flags_without_inputs(given, init_image, mask)
    if base is None:
        defaults = model_defaults(model)
        base = GenerationRequest(
            prompt=given["prompt"],
            steps=defaults.steps or 20,
            guidance=defaults.guidance if defaults.guidance is not None else 7.0,
            seed=random_seed(),
            width=defaults.width or 512,
            height=defaults.height or 512,
            sampler=defaults.sampler or DEFAULT_SAMPLER,
        )
        if init_image and not args.size:
            base = replace(base, **_size_of(init_image))  # the input's own size, to a multiple of 8
    changes: dict[str, Any] = dict(given)
    if args.size:
        changes["width"], changes["height"] = args.size
    if getattr(args, "seed_resize_from", None):
        changes["seed_resize_width"], changes["seed_resize_height"] = args.seed_resize_from
    if getattr(args, "vae", None) is not None:
        changes["vae"] = str(Path(args.vae).expanduser().resolve()) if args.vae else ""
    if getattr(args, "text_encoders", None):  # a split model's parts (Flux: CLIP-L, T5-XXL)
        changes["text_encoders"] = "\n".join(str(Path(p).expanduser().resolve()) for p in args.text_encoders)
    variation = changes.get("variation_strength", base.variation_strength)
    if variation and "variation_seed" not in changes and not base.variation_strength:
        changes["variation_seed"] = random_seed()  # as A1111 does for a variation seed of -1; the PNG records it
    mode = Mode.INPAINT if mask else Mode.IMG2IMG if init_image else Mode.TXT2IMG
    request = replace(base, **changes, model=model, mode=mode, init_image=init_image, mask=mask,
                      model_hash="", lora_hashes="", ti_hashes="")  # the engine fills these in from the files it uses
    return request.validated(), notes


def _replayed(path: Path) -> tuple[GenerationRequest, str]:
    """(the request an image records, the model it names when that is not a path): the studio's
    own request exactly, else A1111's (or another tool's) fields over the studio's defaults."""
    meta = read_metadata(path)
    if not meta.ok:
        raise StudioError(ErrorKind.BAD_INPUT, meta.error or f"{path.name} carries no settings.",
                          "Pass --from a PNG made by the studio or by A1111.")
    if meta.request is not None:
        return meta.request, ""
    settings = apply_fields(Settings(), meta.fields)
    request = request_from_settings(replace(settings, mode=Mode.TXT2IMG.value, batch_count=1), model="")
    named = next((f"{key.lower()} {meta.extras[key]}" for key in ("Model", "Model hash") if meta.extras.get(key)), "")
    return request, named


def _model(args: Namespace, base: GenerationRequest | None, named: str, notes: list[str]) -> str:
    chosen = getattr(args, "gen_model", None) or getattr(args, "model", None)
    if not chosen and base is not None and base.model:
        chosen = base.model  # the replayed request's own model
    if not chosen:
        chosen = effective_model(load_settings(settings_file())[0])
        if chosen and named:
            notes.append(f"the image names {named}, which is not looked up: using {Path(chosen).name}, the last "
                         "model used (pass --model to choose another).")
    if not chosen:
        raise StudioError(ErrorKind.MODEL_NOT_FOUND, "No model given and no demo model installed.",
                          "Pass --model FILE_OR_FOLDER.")
    return str(Path(chosen).expanduser().resolve())


def _inputs(args: Namespace, base: GenerationRequest | None) -> tuple[str | None, str | None]:
    """The input image and mask in effect: the flags', else the replayed request's."""
    init_image = getattr(args, "init_image", None)
    mask = getattr(args, "mask", None)
    if base is not None and base.mode is not Mode.TXT2IMG:
        init_image = init_image or base.init_image
        if base.mode is Mode.INPAINT:
            mask = mask or base.mask
    resolved = [str(Path(p).expanduser().resolve()) if p else None for p in (init_image, mask)]
    if resolved[1] and not resolved[0]:
        raise InvalidRequest("--mask needs --init-image: the mask says which part of that image to paint again.")
    return resolved[0], resolved[1]


def _refuse_flags_without_inputs(given: dict[str, Any], init_image: str | None, mask: str | None) -> None:
    for name, flag in INPUT_FLAGS.items():
        if name in given and not init_image:
            raise InvalidRequest(f"{flag} needs --init-image (it says how far to move away from that image).")
    for name, flag in INPAINT_FLAGS.items():
        if name in given and not mask:
            raise InvalidRequest(f"{flag} needs --mask (it is an inpainting option).")


def _size_of(path: str) -> dict[str, int]:
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return {}  # the input checks say what is wrong with it
    return {"width": max(8, round(width / 8) * 8), "height": max(8, round(height / 8) * 8)}
