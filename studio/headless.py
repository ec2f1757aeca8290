"""`studio generate`: the engine from a terminal, no Qt. Progress on stderr, one-line errors."""

from __future__ import annotations

import sys
import threading
from argparse import Namespace
from pathlib import Path

from studio.core.errors import ErrorKind, StudioError
from studio.core.events import Event, ImageFinished, JobFailed, ModelLoaded, ModelLoading, StepProgress
from studio.core.model_info import model_defaults
from studio.core.outputs import OutputWriter, png_bytes
from studio.core.paths import outputs_dir, settings_file
from studio.core.request import GenerationRequest, InvalidRequest, random_seed
from studio.core.samplers import DEFAULT_SAMPLER
from studio.core.settings import effective_model, load_settings


class FileWriter:
    """--out FILE: the first image goes to FILE, the rest of a batch to FILE-2.png, ..."""

    def __init__(self, path: Path):
        self.path = path
        self.count = 0

    def save(self, image, request: GenerationRequest) -> tuple[Path, GenerationRequest]:
        self.count += 1
        path = self.path if self.count == 1 else self.path.with_name(f"{self.path.stem}-{self.count}{self.path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(image, request))
        return path, request


def _fail(message: str) -> int:
    print(f"studio: error: {' '.join(message.split())}", file=sys.stderr)
    return 1


def build_request(args: Namespace) -> GenerationRequest:
    settings, _ = load_settings(settings_file())
    model = args.gen_model or args.model or effective_model(settings)
    if not model:
        raise StudioError(ErrorKind.MODEL_NOT_FOUND, "No model given and no demo model installed.", "Pass --model FOLDER.")
    defaults = model_defaults(model)
    width, height = args.size or (defaults.width or 512, defaults.height or 512)
    return GenerationRequest(
        prompt=args.prompt,
        negative_prompt=args.negative,
        steps=args.steps or defaults.steps or 20,
        guidance=args.cfg if args.cfg is not None else (defaults.guidance if defaults.guidance is not None else 7.0),
        seed=args.seed if args.seed is not None else random_seed(),
        width=width,
        height=height,
        sampler=args.sampler or defaults.sampler or DEFAULT_SAMPLER,
        batch_count=args.batch,
        model=str(Path(model).expanduser().resolve()),
    ).validated()


def generate(args: Namespace) -> int:
    try:
        request = build_request(args)
    except (InvalidRequest, StudioError) as exc:
        return _fail(str(exc))
    from studio.engine.engine import Engine

    failures: list[StudioError] = []
    saved: list[Path] = []
    tty = sys.stderr.isatty()

    def on_event(event: Event) -> None:
        if isinstance(event, ModelLoading):
            print(f"Loading {Path(event.model).name} on {event.device}…", file=sys.stderr)
        elif isinstance(event, ModelLoaded):
            print(f"Loaded in {event.seconds:.1f} s ({event.dtype}).", file=sys.stderr)
        elif isinstance(event, StepProgress):
            line = f"image {event.image_index + 1}/{request.batch_count} step {event.step}/{event.total}"
            print(f"\r{line}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
        elif isinstance(event, ImageFinished):
            saved.append(event.path)
            print(("\n" if tty else "") + f"{event.path} (seed {event.request.seed})")
        elif isinstance(event, JobFailed):
            failures.append(event.error)

    writer = FileWriter(args.out) if args.out else OutputWriter(outputs_dir())
    engine = Engine(writer, on_event, previews=False)
    try:
        engine.load(request.model, args.gen_device or args.device or "auto")
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
