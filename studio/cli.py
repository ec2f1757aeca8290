"""The `studio` command: the window by default; `generate` and `bench` subcommands.

`studio generate` never imports Qt: it drives the same engine from the terminal.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from studio import __version__
from studio.core.samplers import DEFAULT_SAMPLER

DEVICE_HELP = "auto (default: CUDA, else Apple MPS, else CPU), cuda, mps or cpu"


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x512, not {text!r}") from None
    return width, height


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Diffusion Studio: local image generation.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--model", help="diffusers model folder (default: the last one used, else the demo model)")
    parser.add_argument("--device", choices=("auto", "cuda", "mps", "cpu"), help=DEVICE_HELP)
    parser.add_argument("--exit-when-shown", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command")

    gen = sub.add_parser("generate", help="make images without opening the window")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative", default="", help="negative prompt")
    gen.add_argument("--model", dest="gen_model", help="diffusers model folder")
    gen.add_argument("--device", dest="gen_device", choices=("auto", "cuda", "mps", "cpu"), help=DEVICE_HELP)
    gen.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's, else 20)")
    gen.add_argument("--cfg", type=float, default=None, help="guidance scale (default: the model's, else 7)")
    gen.add_argument("--seed", type=int, default=None, help="default: random (the seed used is printed)")
    gen.add_argument("--size", type=_size, default=None, help="WxH, multiples of 8 (default: the model's, else 512x512)")
    gen.add_argument("--sampler", default=None, help=f"A1111 name, e.g. 'Euler a' (default: {DEFAULT_SAMPLER})")
    gen.add_argument("--batch", type=int, default=1, help="number of images (seeds seed, seed+1, ...)")
    gen.add_argument("--out", type=Path, help="output PNG (default: the studio's output folder)")

    bench = sub.add_parser("bench", help="measure overhead, GUI stalls, cancel latency and launch time")
    bench.add_argument("--model", dest="bench_model", help="model folder (default: demo model, else a tiny one)")
    bench.add_argument("--device", dest="bench_device", choices=("auto", "cuda", "mps", "cpu"), help=DEVICE_HELP)
    bench.add_argument("--steps", type=int, default=20)
    bench.add_argument("--size", type=_size, default=None)
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--json", type=Path, default=Path("bench.json"), help="where to write results")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "generate":
        from studio.headless import generate

        return generate(args)
    if args.command == "bench":
        from studio.bench import run_bench

        return run_bench(args)
    from studio.app import run_gui

    return run_gui(args.model, args.device, args.exit_when_shown)


if __name__ == "__main__":
    sys.exit(main())
