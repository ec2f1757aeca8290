"""The `studio` command: the window by default; `generate` and `bench` subcommands.

`studio generate` never imports Qt: it drives the same engine from the terminal.
`studio IMAGE...` opens the window with the images as if dropped on it (the desktop entry's
`Exec=studio %F`, so "Open with Diffusion Studio" works from a file manager).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from studio import __version__
from studio.core.generation.samplers import DEFAULT_SAMPLER
from studio.core.generation.settings import HIRES_UPSCALERS

DEVICE_HELP = "auto (default: CUDA, else Apple MPS, else CPU), cuda, mps or cpu"


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (the usage block buried it), with where help is."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x512, not {text!r}") from None
    return width, height


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"threads must be a whole number, 0 for automatic, not {text!r}")
    return value


# The command line's words for inpainting options -> the request's values.
INPAINT_AREAS = {"whole": "whole", "masked": "only_masked", "only_masked": "only_masked"}
MASKED_CONTENTS = {"original": "original", "fill": "fill", "noise": "latent_noise", "latent_noise": "latent_noise"}


def _choice(words: dict[str, str]):
    def convert(text: str) -> str:
        try:
            return words[text.strip().lower().replace(" ", "_")]
        except KeyError:
            shown = ", ".join(w for w in words if "_" not in w)
            raise argparse.ArgumentTypeError(f"choose {shown}, not {text!r}") from None

    return convert


COMMANDS = ("generate", "bench", "soak")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # what a drop on the window accepts (studio/ui/drop.py)
THREADS_HELP = "CPU threads for torch (default: all cores but one; also STUDIO_CPU_THREADS)"


def _add_window_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--model",
                        help="checkpoint file or diffusers model folder (default: the last one used, else the demo model)")
    parser.add_argument("--device", choices=("auto", "cuda", "mps", "cpu"), help=DEVICE_HELP)
    parser.add_argument("--threads", type=_threads, default=None, metavar="N", help=THREADS_HELP)
    parser.add_argument("--exit-when-shown", action="store_true", help=argparse.SUPPRESS)


def build_window_parser() -> argparse.ArgumentParser:
    """`studio [options] [IMAGE ...]`. Kept apart from the subcommands: argparse cannot tell
    an optional list of file names from a subcommand name in one parser."""
    parser = _Parser(
        prog="studio", description="Diffusion Studio: local image generation.",
        epilog="commands: `studio generate` makes images without the window, `studio bench` measures "
               "speed; `studio COMMAND --help` lists their options.",
    )
    _add_window_options(parser)
    parser.add_argument("files", nargs="*", type=Path, metavar="IMAGE",
                        help="images to open, as if dropped on the window (a studio PNG restores its settings)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="studio", description="Diffusion Studio: local image generation.")
    _add_window_options(parser)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    gen = sub.add_parser("generate", help="make images without opening the window")
    gen.add_argument("--prompt", default=None, help="what to draw (required unless --from is given)")
    gen.add_argument("--from", dest="from_image", type=Path, default=None, metavar="IMAGE",
                     help="make an image's recipe again: a studio PNG's own request (the same pixels on the same "
                          "device) or A1111's parameters; any other flag overrides its field")
    gen.add_argument("--negative", default=None, help="negative prompt")
    gen.add_argument("--model", dest="gen_model", help="a .safetensors checkpoint (SD 1.x, 2.x, SDXL) or diffusers model folder")
    gen.add_argument("--vae", default=None, help="a .safetensors VAE to decode with (default: the checkpoint's own)")
    gen.add_argument("--text-encoder", dest="text_encoders", action="append", default=[], metavar="FILE",
                     help="a text encoder file for a model that needs them (Flux: CLIP-L and T5-XXL; repeat it); "
                          "default: found beside the model, in ComfyUI's models/text_encoders")
    gen.add_argument("--device", dest="gen_device", choices=("auto", "cuda", "mps", "cpu"), help=DEVICE_HELP)
    gen.add_argument("--threads", dest="gen_threads", type=_threads, default=None, metavar="N", help=THREADS_HELP)
    gen.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's, else 20)")
    gen.add_argument("--cfg", type=float, default=None, help="guidance scale (default: the model's, else 7)")
    gen.add_argument("--seed", type=int, default=None, help="default: random (the seed used is printed)")
    gen.add_argument("--size", type=_size, default=None,
                     help="WxH, multiples of 8 (default: the input image's, else the model's, else 512x512)")
    gen.add_argument("--sampler", default=None, help=f"A1111 name, e.g. 'Euler a' (default: {DEFAULT_SAMPLER})")
    gen.add_argument("--batch", type=int, default=None, help="number of images (seeds seed, seed+1, ...; with a "
                                                             "variation strength the variation seed counts up instead)")
    gen.add_argument("--clip-skip", type=int, default=None, metavar="N", help="A1111's clip skip, 1-12 (default 1)")
    gen.add_argument("--hires-scale", type=float, default=None, metavar="X",
                     help="hires fix: upscale by X (1-4) and denoise again (default 1: off; txt2img)")
    gen.add_argument("--hires-steps", type=int, default=None, metavar="N", help="hires fix steps (default 0: as --steps)")
    gen.add_argument("--denoise", type=float, default=None, metavar="D",
                     help="hires fix denoising strength, above 0 and at most 1 (default 0.7)")
    gen.add_argument("--hires-upscaler", default=None, choices=HIRES_UPSCALERS, metavar="NAME",
                     help=f"hires fix upscaler: {', '.join(HIRES_UPSCALERS)} (default Latent)")
    gen.add_argument("--variation-seed", type=int, default=None, metavar="N",
                     help="variation seed (default: random when --variation-strength is given)")
    gen.add_argument("--variation-strength", type=float, default=None, metavar="S",
                     help="how far towards the variation seed's picture, 0-1 (default 0: none)")
    gen.add_argument("--seed-resize-from", type=_size, default=None, metavar="WxH",
                     help="draw the noise as for this size, so a picture keeps its composition at another size")
    inputs = gen.add_argument_group("image to image and inpainting",
                                    "an --init-image makes it image to image; with a --mask, inpainting")
    inputs.add_argument("--init-image", type=Path, default=None, metavar="FILE", help="the picture to start from")
    inputs.add_argument("--mask", type=Path, default=None, metavar="FILE",
                        help="white where the picture is painted again (resized to the picture)")
    inputs.add_argument("--strength", type=float, default=None, metavar="S",
                        help="denoising strength: how far from the input, above 0 and at most 1 (default 0.75)")
    inputs.add_argument("--mask-blur", type=int, default=None, metavar="N", help="feathering of the mask, px (default 4)")
    inputs.add_argument("--inpaint-area", type=_choice(INPAINT_AREAS), default=None, metavar="{whole,masked}",
                        help="whole: repaint at the picture's size; masked: only around the mask, at full size "
                             "(default whole)")
    inputs.add_argument("--inpaint-padding", type=int, default=None, metavar="N",
                        help="with --inpaint-area masked: px of context around the mask (default 32)")
    inputs.add_argument("--masked-content", type=_choice(MASKED_CONTENTS), default=None,
                        metavar="{original,fill,noise}",
                        help="what the masked part starts from (default original)")
    gen.add_argument("--out", type=Path, help="output PNG (default: the studio's output folder); "
                                              "a batch adds FILE-2.png, FILE-3.png, ...")
    gen.add_argument("--overwrite", action="store_true", help="replace --out files that already exist")
    gen.add_argument("--lora-dir", dest="lora_dirs", action="append", default=[], type=Path, metavar="FOLDER",
                     help="a folder of LoRAs for <lora:NAME:WEIGHT> in the prompt, besides those found "
                          "beside your model folders (repeatable)")
    gen.add_argument("--offload", action="store_true", help="model CPU offload: for GPUs too small for the model")
    gen.add_argument("--sequential-offload", action="store_true",
                     help="sequential CPU offload: one layer at a time on the GPU (slowest; for the smallest GPUs)")
    gen.add_argument("--attention-slicing", action="store_true", help="attention in slices: less memory, a little slower")
    gen.add_argument("--vae-tiling", choices=("auto", "on", "off"), default="auto",
                     help="decode in tiles (auto: above 2048x2048)")

    bench = sub.add_parser("bench", help="measure overhead, GUI stalls, cancel latency and launch time")
    bench.add_argument("--model", dest="bench_model",
                       help="checkpoint file or model folder (default: demo model, else a tiny one); also times its loading")
    bench.add_argument("--device", dest="bench_device", choices=("auto", "cuda", "mps", "cpu"), help=DEVICE_HELP)
    bench.add_argument("--threads", dest="bench_threads", type=_threads, default=None, metavar="N", help=THREADS_HELP)
    bench.add_argument("--steps", type=int, default=20)
    bench.add_argument("--size", type=_size, default=None)
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--json", type=Path, default=Path("bench.json"), help="where to write results")

    soak = sub.add_parser("soak", help="many generations with cancels; prints memory, thread, file and None-reference growth")
    soak.add_argument("--jobs", type=int, default=2000)
    soak.add_argument("--cancel-every", type=int, default=5, help="cancel every Nth job (0: never)")
    soak.add_argument("--model", dest="soak_model", help="model to use (default: a tiny random one, built offline)")
    soak.add_argument("--device", dest="soak_device", choices=("auto", "cuda", "mps", "cpu"), help="default: cpu")
    soak.add_argument("--threads", dest="soak_threads", type=_threads, default=None, metavar="N", help=THREADS_HELP)
    soak.add_argument("--steps", type=int, default=2)
    soak.add_argument("--size", type=int, default=64, help="image side in pixels (multiple of 8)")
    soak.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """A subcommand goes to the full parser; anything else is the window with optional images."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # Find the first word that is not an option or an option's value; never exits, never errors.
    probe = argparse.ArgumentParser(add_help=False)
    for option in ("--model", "--device", "--threads"):
        probe.add_argument(option)
    probe.add_argument("words", nargs="*")
    words = probe.parse_known_args(argv)[0].words
    if words and words[0] in COMMANDS:
        return build_parser().parse_args(argv)
    args = build_window_parser().parse_args(argv)
    args.command = None
    return args


def _use_threads(threads: int | None) -> None:
    """--threads reaches the engine (in this process or its engine thread) through the same
    variable a person could set; 0 means automatic."""
    if threads is not None:
        from studio.engine.threads import ENV_VAR

        if threads:
            os.environ[ENV_VAR] = str(threads)
        else:
            os.environ.pop(ENV_VAR, None)


def _missing_image(files: list[Path]) -> str | None:
    for path in files:
        if not path.is_file():
            return f"no such image file: {path}"
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            return f"{path} is not a PNG, JPEG or WebP image"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "generate":
        _use_threads(args.gen_threads if args.gen_threads is not None else args.threads)
        from studio.headless import generate

        return generate(args)
    if args.command == "bench":
        _use_threads(args.bench_threads if args.bench_threads is not None else args.threads)
        from studio.dev.bench import run_bench

        return run_bench(args)
    if args.command == "soak":
        _use_threads(args.soak_threads if args.soak_threads is not None else args.threads)
        from studio.dev.soak import run_soak

        return run_soak(args)
    _use_threads(args.threads)
    problem = _missing_image(args.files)
    if problem:
        print(f"studio: error: {problem}", file=sys.stderr)
        return 2
    from studio.launch import run_gui

    return run_gui(args.model, args.device, args.exit_when_shown, [str(path.resolve()) for path in args.files])


if __name__ == "__main__":
    sys.exit(main())
