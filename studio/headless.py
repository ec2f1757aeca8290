"""`studio generate`: the engine from a terminal, no Qt. Progress on stderr, one-line errors."""

from __future__ import annotations

import sys
import threading
from argparse import Namespace
from pathlib import Path

from studio.core.errors import ErrorKind, StudioError
from studio.core.events import (
    Event,
    ImageFinished,
    JobFailed,
    ModelLoaded,
    ModelLoading,
    StepProgress,
)
from studio.core.generation.request import GenerationRequest, InvalidRequest, random_seed
from studio.core.generation.samplers import DEFAULT_SAMPLER
from studio.core.generation.settings import effective_model, load_settings
from studio.core.models.model_info import model_defaults
from studio.core.storage.output_folder import saved_output_folder
from studio.core.storage.outputs import OutputWriter, png_bytes
from studio.core.storage.paths import settings_file


def batch_paths(path: Path, count: int) -> list[Path]:
    """--out FILE: the first image goes to FILE, the rest of a batch to FILE-2.png, ..."""
    return [path] + [path.with_name(f"{path.stem}-{n}{path.suffix}") for n in range(2, count + 1)]


class FileWriter:
    """Writes a batch to batch_paths(); without `overwrite`, never replaces an existing file
    (checked before the run, and again at each write in case one appeared meanwhile)."""

    def __init__(self, path: Path, overwrite: bool = False):
        self.path = path
        self.overwrite = overwrite
        self.count = 0

    def save(self, image, request: GenerationRequest) -> tuple[Path, GenerationRequest]:
        self.count += 1
        path = batch_paths(self.path, self.count)[-1]
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb" if self.overwrite else "xb") as file:
            file.write(png_bytes(image, request))
        return path, request


def existing_outputs(path: Path, count: int) -> list[Path]:
    return [p for p in batch_paths(path, count) if p.exists()]


def _fail(message: str) -> int:
    print(f"studio: error: {' '.join(message.split())}", file=sys.stderr)
    return 1


def build_request(args: Namespace) -> GenerationRequest:
    settings, _ = load_settings(settings_file())
    model = args.gen_model or args.model or effective_model(settings)
    if not model:
        raise StudioError(ErrorKind.MODEL_NOT_FOUND, "No model given and no demo model installed.",
                          "Pass --model FILE_OR_FOLDER.")
    defaults = model_defaults(model)
    width, height = args.size or (defaults.width or 512, defaults.height or 512)
    return GenerationRequest(
        prompt=args.prompt,
        negative_prompt=args.negative,
        # `is not None`, not `or`: --steps 0 must reach validation and be refused, not become the default.
        steps=args.steps if args.steps is not None else (defaults.steps or 20),
        guidance=args.cfg if args.cfg is not None else (defaults.guidance if defaults.guidance is not None else 7.0),
        seed=args.seed if args.seed is not None else random_seed(),
        width=width,
        height=height,
        sampler=args.sampler or defaults.sampler or DEFAULT_SAMPLER,
        batch_count=args.batch,
        model=str(Path(model).expanduser().resolve()),
        vae=str(Path(args.vae).expanduser().resolve()) if getattr(args, "vae", "") else "",
        text_encoders="\n".join(str(Path(p).expanduser().resolve()) for p in getattr(args, "text_encoders", None) or []),
        **_a1111_extras(args),
    ).validated()


def _a1111_extras(args: Namespace) -> dict:
    """Clip skip, hires fix and variation options (absent ones keep the request's defaults)."""
    extras: dict = {}
    for option, name in (("clip_skip", "clip_skip"), ("hires_scale", "hires_scale"), ("hires_steps", "hires_steps"),
                         ("denoise", "hires_denoise"), ("hires_upscaler", "hires_upscaler"),
                         ("variation_strength", "variation_strength")):
        if getattr(args, option, None) is not None:
            extras[name] = getattr(args, option)
    variation_seed = getattr(args, "variation_seed", None)
    if variation_seed is None and extras.get("variation_strength"):
        variation_seed = random_seed()  # as A1111 does for a variation seed of -1; the PNG records it
    if variation_seed is not None:
        extras["variation_seed"] = variation_seed
    resize = getattr(args, "seed_resize_from", None)
    if resize:
        extras["seed_resize_width"], extras["seed_resize_height"] = resize
    return extras


def generate(args: Namespace) -> int:
    try:
        request = build_request(args)
    except (InvalidRequest, StudioError) as exc:
        return _fail(str(exc))
    if args.out and not args.overwrite:
        taken = existing_outputs(args.out, request.batch_count)
        if taken:
            more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
            return _fail(f"{taken[0]}{more} already exists; pass --overwrite to replace it, or choose another --out.")
    from studio.engine.engine import Engine
    from studio.engine.memory import MemoryOptions
    from studio.engine.threads import apply_cpu_threads, cpu_threads

    apply_cpu_threads(cpu_threads())  # all cores but one unless --threads / STUDIO_CPU_THREADS say otherwise

    failures: list[StudioError] = []
    saved: list[Path] = []
    notes: list[str] = []
    tty = sys.stderr.isatty()

    def on_event(event: Event) -> None:
        if isinstance(event, ModelLoading):
            print(f"Loading {Path(event.model).name} on {event.device}…", file=sys.stderr)
            if event.note:  # the parts found for it, what memory will do
                print(f"note: {event.note}", file=sys.stderr)
        elif isinstance(event, ModelLoaded):
            print(f"Loaded in {event.seconds:.1f} s ({event.dtype}).", file=sys.stderr)
        elif isinstance(event, StepProgress):
            line = f"image {event.image_index + 1}/{request.batch_count} step {event.step}/{event.total}"
            print(f"\r{line}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
        elif isinstance(event, ImageFinished):
            saved.append(event.path)
            variation = f", variation seed {event.request.variation_seed}" if event.request.variation_strength else ""
            print(("\n" if tty else "") + f"{event.path} (seed {event.request.seed}{variation})")
            if event.note and event.note not in notes:  # e.g. a LoRA not found: said once, not per image
                notes.append(event.note)
                print(f"note: {event.note}", file=sys.stderr)
        elif isinstance(event, JobFailed):
            failures.append(event.error)

    writer = FileWriter(args.out, args.overwrite) if args.out else OutputWriter(saved_output_folder())
    engine = Engine(writer, on_event, previews=False)
    engine.library_dirs = list(load_settings(settings_file())[0].model_dirs)  # LoRAs beside the model folders
    engine.lora_dirs = [str(p) for p in getattr(args, "lora_dirs", None) or []]
    engine.memory = MemoryOptions(
        attention_slicing=getattr(args, "attention_slicing", False),
        vae_tiling=getattr(args, "vae_tiling", "auto"),
        cpu_offload=getattr(args, "offload", False),
        sequential_offload=getattr(args, "sequential_offload", False),
    )
    try:
        engine.load(request.model, args.gen_device or args.device or "auto", vae=request.vae,
                    text_encoders=request.text_encoder_paths)
    except StudioError as exc:
        return _fail(str(exc))
    try:
        engine.generate(request, threading.Event())
    except KeyboardInterrupt:
        print("\nstudio: interrupted", file=sys.stderr)
        return 130
    if failures:
        return _fail(str(failures[0]))
    return 0 if saved else _fail("no image was produced")
