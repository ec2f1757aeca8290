"""Benchmark: A1111 prompt encoding against a plain prompt, and as a share of one generation
(issue 11's goal: a 3-chunk prompt with emphasis and 2 LoRAs encodes in under 5% of a generation).

Measured through the engine's own code (studio.engine.prompt_encoding.encode_request) on a loaded
model: the tiny SD 1.x model with the real CLIP vocabulary unless a model is given. The LoRAs are
two random kohya files made here (studio.dev.bench_lora) and applied with the engine's LoRA code for
the weighted run, so the text encoders carry their layers as in a real job. "generation_s" is
one whole job through the engine (encode, denoise, decode, save) at the same settings.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

GOAL_SHARE = 0.05

PLAIN_PROMPT = "a large red circle on the left, blue background"
# About 180 CLIP tokens in three chunks, emphasis of every kind, a BREAK, and two LoRA tags.
WEIGHTED_PROMPT = (
    "masterpiece, (best quality:1.2), ((ultra detailed)), [blurry], a large (red:1.3) circle on the left, "
    "(blue background:0.8), soft [[shadows]], studio lighting, sharp focus, 35mm photograph, film grain, "
    "(intricate details:1.1), depth of field, bokeh, warm colors, golden hour, rim light, volumetric fog, "
    "BREAK a small (green:1.4) square on the right, [muted tones], wooden table, ceramic cup, morning light, "
    "window reflections, (dust particles:0.9), calm atmosphere, cinematic composition, rule of thirds, "
    "highly detailed textures, natural skin, realistic materials, subtle vignette, (high contrast:1.15), "
    "crisp edges, clean lines, award winning photo, trending on artstation, 8k wallpaper, hdr, "
    "BREAK (long exposure:0.7), [lens flare], gentle breeze, scattered leaves, quiet street, evening, "
    "<lora:bench one:0.8> <lora:bench two:-0.5>"
)


def measure_prompt_encoding(model: str | None = None, repeats: int = 5, steps: int = 20, size: int = 64,
                            device: str = "auto", loras: bool = True) -> dict:
    """Median seconds to encode the plain and the weighted 3-chunk prompt (with `loras`, two
    LoRAs applied), one generation's seconds, and the weighted encoding's share of it."""
    from studio.core.generation.request import GenerationRequest
    from studio.core.storage.outputs import OutputWriter
    from studio.engine.engine import Engine
    from studio.engine.prompt_encoding import encode_request
    from studio.engine.tiny_model import save_tiny_family

    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        model = model or str(save_tiny_family(scratch / "tiny-sd1", "sd1"))
        engine = Engine(OutputWriter(scratch / "out"), lambda event: None, previews=False)
        loaded = engine.load(model, device)
        request = GenerationRequest(PLAIN_PROMPT, negative_prompt="lowres, bad anatomy", steps=steps, width=size,
                                    height=size, seed=1, model=model)
        weighted = GenerationRequest(WEIGHTED_PROMPT, negative_prompt="lowres, bad anatomy", steps=steps,
                                     width=size, height=size, seed=1, model=model)
        pipe = loaded.pipe

        def timed(req) -> tuple[float, int]:
            times, chunks = [], 0
            for _ in range(repeats + 1):  # the first is a warm-up
                started = time.perf_counter()
                chunks = encode_request(loaded, pipe, req).chunks
                _synchronize(loaded.device)
                times.append(time.perf_counter() - started)
            return statistics.median(times[1:]), chunks

        plain_s, _ = timed(request)
        lora_note = "not measured"
        if loras:
            weighted_s, chunks, lora_note = _with_loras(engine, loaded, weighted, scratch, lambda: timed(weighted))
        else:
            weighted_s, chunks = timed(weighted)
        generation = []
        for _ in range(max(1, repeats // 2)):
            started = time.perf_counter()
            engine.generate(request, threading.Event())
            generation.append(time.perf_counter() - started)
        generation_s = statistics.median(generation)
    return {
        "plain_encode_s": plain_s,
        "weighted_encode_s": weighted_s,
        "weighted_chunks": chunks,
        "loras": lora_note,
        "generation_s": generation_s,
        "share_of_generation": weighted_s / generation_s,
        "goal_share": GOAL_SHARE,
        "steps": steps,
        "size": size,
        "device": loaded.device,
    }


def _with_loras(engine, loaded, request, scratch: Path, run):
    """run() with two random LoRAs applied to the loaded model through the engine's LoRA code."""
    from studio.dev.bench_lora import make_kohya_lora
    from studio.engine.lora import loras_for_job

    folder = scratch / "loras"
    folder.mkdir()
    make_kohya_lora(loaded.pipe, folder / "bench one.safetensors", seed=1)
    make_kohya_lora(loaded.pipe, folder / "bench two.safetensors", seed=2)
    job_engine = SimpleNamespace(library_dirs=[], lora_dirs=[str(folder)])
    with loras_for_job(job_engine, loaded, request) as note:
        weighted_s, chunks = run()
    return weighted_s, chunks, f"2 applied{': ' + note if note else ''}"


def _synchronize(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


if __name__ == "__main__":
    for key, value in measure_prompt_encoding().items():
        print(f"{key}: {value}")
