"""Saving off the critical path, measured (issue 12 item 7): a batch at 1024x1024 on the tiny
model on the CPU, time until the last PNG is on disk, with the engine saving each image before
the next one starts (synchronous, `studio generate`'s way) and with the writer thread
(studio.core.storage.image_writer, the controller's way). Also the bare run (no saving at all) for the
same images, so the overhead of each mode can be read as a ratio (the issue's goal: at most 1.02).

    python -m studio.dev.bench_queue [--size 1024] [--batch 4] [--steps 2] [--repeats 1]

Engine code only: no Qt, no window. `studio bench` is the place for the GUI-side numbers.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from studio.core.events import Event, ImageFinished, JobFailed
from studio.core.generation.request import GenerationRequest
from studio.core.storage.image_writer import ImageWriter, WriteResult
from studio.core.storage.outputs import OutputWriter, png_bytes


def save_bench_model(folder: Path) -> Path:
    """The tests' tiny random SD 1.x model, reshaped for 1024 px on a CPU: a VAE that scales by
    8 as real ones do (the tests' scales by 2: a 1024 px image would be denoised at 512x512
    latents, for many minutes) and a UNet whose attention works at 32x32 (the tests' attends
    at full latent size: 4096 tokens, seconds a step). Denoising becomes cheap; the decode and
    the PNG stay full size, and they are what this benchmark is about."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from studio.engine.tiny_model import build_tiny_pipeline

    pipe = build_tiny_pipeline()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        sample_size=128,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=[8, 16, 32, 32],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        mid_block_add_attention=False,  # attention over 128x128 latents alone would take seconds
    )
    pipe.register_modules(vae=vae, unet=unet)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return Path(folder)


def _request(model: str, size: int, batch: int, steps: int) -> GenerationRequest:
    return GenerationRequest(prompt="a red circle on the left", steps=steps, width=size, height=size, seed=1,
                             sampler="Euler", batch_count=batch, model=model)


def bench_save_modes(model: str, scratch: Path, size: int = 1024, batch: int = 4, steps: int = 2,
                     repeats: int = 1) -> dict[str, Any]:
    """Median seconds until the last image of the batch is on disk, per mode: "bare" (nothing
    saved), "sync" (the engine saves each image before going on), "writer" (the writer thread
    saves while the next image denoises; "writer_engine": when the engine was free for the next
    job); plus one PNG's encode time and the ratios to bare, paired within each repeat."""
    from PIL import Image

    from studio.engine.engine import Engine
    from studio.engine.threads import apply_cpu_threads, cpu_threads

    apply_cpu_threads(cpu_threads())  # as the studio's engine thread does: a core is left for the rest
    events: list[Event] = []
    engine = Engine(OutputWriter(scratch / "sync"), events.append, previews=False)
    request = _request(model, size, batch, steps)
    engine.generate(_request(model, size, 1, 1), threading.Event(), save_images=False)  # load + warm up
    _raise_failure(events)

    def bare() -> float:
        started = time.perf_counter()
        engine.generate(request, threading.Event(), save_images=False)
        return time.perf_counter() - started

    def sync() -> float:
        started = time.perf_counter()
        engine.generate(request, threading.Event())  # each PNG on disk before the next image starts
        return time.perf_counter() - started

    def writer() -> float:
        results: list[WriteResult] = []
        image_writer = ImageWriter(OutputWriter(scratch / "writer"), results.append)

        def hand_over(event: Event) -> None:
            events.append(event)
            if isinstance(event, ImageFinished):
                image_writer.submit(event.job_id, event.image_index, event.image, event.request)

        engine.emit = hand_over
        started = time.perf_counter()
        try:
            engine.generate(request, threading.Event(), job_id="bench", save_images=False)
            timings["writer_engine"].append(time.perf_counter() - started)  # when the engine is free again
            image_writer.close(120)  # returns when the last PNG is on disk
        finally:
            engine.emit = events.append
        seconds = time.perf_counter() - started
        if len(results) != batch or not all(type(r).__name__ == "ImageSaved" for r in results):
            raise RuntimeError(f"the writer saved {len(results)} of {batch} images: {results!r}")
        return seconds

    # Paired: each repeat runs the three modes back to back (in a rotating order), and the
    # ratios are taken within a repeat, so a busy neighbour on a shared CPU skews all three alike.
    timings: dict[str, list[float]] = {"bare": [], "sync": [], "writer": [], "writer_engine": []}
    modes = [("bare", bare), ("sync", sync), ("writer", writer)]
    for repeat in range(repeats):
        for name, run in modes[repeat % 3:] + modes[:repeat % 3]:
            events.clear()
            timings[name].append(run())
            _raise_failure(events)
    last = next(e for e in reversed(events) if isinstance(e, ImageFinished))
    started = time.perf_counter()
    png_bytes(Image.fromarray(last.image), last.request)
    encode = time.perf_counter() - started
    result: dict[str, Any] = {name: statistics.median(values) for name, values in timings.items()}
    ratios = {f"{name}_ratio": statistics.median(t / b for t, b in zip(timings[name], timings["bare"], strict=True))
              for name in ("sync", "writer", "writer_engine")}
    result.update(size=size, batch=batch, steps=steps, repeats=repeats, png_encode_s=encode, runs=timings, **ratios)
    return result


def _raise_failure(events: list[Event]) -> None:
    for event in events:
        if isinstance(event, JobFailed):
            raise RuntimeError(f"the benchmark job failed: {event.error.one_line()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.dev.bench_queue", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="",
                        help="a model folder or file (default: a tiny random SD 1.x model, save_bench_model)")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="studio-bench-queue-") as folder:
        scratch = Path(folder)
        model = args.model
        if not model:
            model = str(save_bench_model(scratch / "tiny-sd-vae8"))
        r = bench_save_modes(model, scratch, args.size, args.batch, args.steps, args.repeats)
    print(f"batch of {r['batch']} at {r['size']}x{r['size']}, {r['steps']} steps, median of {r['repeats']} "
          "(ratios paired within each repeat):")
    print(f"  bare (no saving)           {r['bare']:.2f} s")
    print(f"  engine saves each image    {r['sync']:.2f} s  ({r['sync_ratio']:.3f} x bare)")
    print(f"  writer thread              {r['writer']:.2f} s  ({r['writer_ratio']:.3f} x bare)")
    print(f"  engine free again (writer) {r['writer_engine']:.2f} s  ({r['writer_engine_ratio']:.3f} x bare)")
    print(f"  one PNG encode             {r['png_encode_s'] * 1000:.0f} ms")
    for name, values in r["runs"].items():
        print(f"  {name} runs: {', '.join(f'{v:.2f}' for v in values)} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
