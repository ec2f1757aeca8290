"""`studio generate`: the engine from a terminal, no Qt. Progress on stderr, one-line errors."""

from __future__ import annotations

import sys
import threading
from argparse import Namespace
from dataclasses import replace
from pathlib import Path

from studio.core.errors import StudioError
from studio.core.events import (
    Event,
    ImageFinished,
    JobFailed,
    ModelLoaded,
    ModelLoading,
    StepProgress,
)
from studio.core.generation.request import GenerationRequest, InvalidRequest
from studio.core.generation.settings import load_settings
from studio.core.storage.output_folder import saved_output_folder
from studio.core.storage.outputs import OutputWriter, png_bytes
from studio.core.storage.outputs import _companion_paths as companion_paths  # noqa: PLC2701 - the same names as the output folder's
from studio.core.storage.outputs import _write_companions as write_companions  # noqa: PLC2701
from studio.core.storage.paths import settings_file
from studio.headless_checks import check_inputs, check_out, check_writable_folder
from studio.headless_request import build_request


def batch_paths(path: Path, count: int) -> list[Path]:
    """--out FILE: the first image goes to FILE, the rest of a batch to FILE-2.png, ..."""
    return [path] + [path.with_name(f"{path.stem}-{n}{path.suffix}") for n in range(2, count + 1)]


def output_files(path: Path, request: GenerationRequest) -> list[Path]:
    """Every file --out FILE makes: the batch's images, then copies of the input image and mask
    (FILE-init.png, FILE-mask.png: `--from FILE` replays them after the inputs are gone)."""
    return batch_paths(path, request.batch_count) + list(companion_paths(path, request).values())


class FileWriter:
    """Writes a batch to batch_paths(); without `overwrite`, never replaces an existing file
    (checked before the run, and again at each write in case one appeared meanwhile). The
    inputs are copied once, beside the first image; every image's request points at the copies."""

    def __init__(self, path: Path, overwrite: bool = False):
        self.path = path
        self.overwrite = overwrite
        self.count = 0
        self.copies: dict[str, str] = {}

    def save(self, image, request: GenerationRequest) -> tuple[Path, GenerationRequest]:
        self.count += 1
        path = batch_paths(self.path, self.count)[-1]
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.count == 1:
            companions = companion_paths(path, request)
            if not self.overwrite and any(p.exists() for p in companions.values()):
                raise FileExistsError(f"{next(p for p in companions.values() if p.exists())} appeared meanwhile")
            write_companions(request, companions)
            self.copies = {name: str(copy) for name, copy in companions.items()}
        recorded = replace(request, **self.copies)
        with open(path, "wb" if self.overwrite else "xb") as file:
            file.write(png_bytes(image, recorded))
        return path, recorded


def _fail(message: str) -> int:
    print(f"studio: error: {' '.join(message.split())}", file=sys.stderr)
    return 1


def generate(args: Namespace) -> int:
    """Every argument and path is checked before torch is imported: a bad one costs a second,
    not a model load and a generation."""
    lora_dirs = list(getattr(args, "lora_dirs", None) or [])
    try:
        request, notes = build_request(args)
        check_inputs(request, lora_dirs)
        if args.out:
            check_out(output_files(args.out, request), args.overwrite)
        else:
            check_writable_folder(saved_output_folder(), "The output folder")
    except (InvalidRequest, StudioError) as exc:
        return _fail(str(exc))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    from studio.engine.engine import Engine
    from studio.engine.memory import MemoryOptions
    from studio.engine.threads import apply_cpu_threads, cpu_threads

    apply_cpu_threads(cpu_threads())  # all cores but one unless --threads / STUDIO_CPU_THREADS say otherwise

    failures: list[StudioError] = []
    saved: list[Path] = []
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
    engine.lora_dirs = [str(p) for p in lora_dirs]
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
