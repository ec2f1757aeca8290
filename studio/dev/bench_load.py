"""`studio bench`: model load time and peak memory, the studio against diffusers' own call.

Each load runs in a fresh process (imports done before the clock starts), alternating the two,
so file caches and allocator state favour neither. The bare call is what a diffusers user would
write for the same file: `from_single_file` (with our shipped configs, as it cannot run offline
otherwise) or `from_pretrained`, then `.to(device)`.
"""

from __future__ import annotations

import json
import statistics
import subprocess

from studio.dev.child_process import python_code

_CHILD = r"""
import json, os, resource, sys, time, threading
import torch, diffusers
from studio.core.models.model_detect import inspect_model
from studio.engine.devices import resolve_device
path, device_choice, which = sys.argv[1:4]
device, dtype = resolve_device(device_choice)
info = inspect_model(path)
from studio.engine.families import adapter_for
adapter = adapter_for(info.family)
cls = adapter.load_class(info)  # imports happen before the clock in both: this measures loading
if which == "studio":
    from studio.core.storage.outputs import OutputWriter
    from studio.engine.engine import Engine
    engine = Engine(OutputWriter(os.environ["STUDIO_HOME"]), lambda event: None)
    started = time.perf_counter()
    engine.load(path, device_choice)
else:
    started = time.perf_counter()
    if info.single_file:
        from studio.core.models.safetensors_header import read_header
        from studio.engine.checkpoint_config import checkpoint_config_dir
        config = checkpoint_config_dir(info, read_header(path))
        pipe = cls.from_single_file(path, config=str(config), local_files_only=True, dtype=dtype,
                                    **adapter.tokenizers(), **adapter.load_arguments())
    else:
        pipe = cls.from_pretrained(path, dtype=dtype, local_files_only=True, use_safetensors=True, **adapter.load_arguments())
    pipe.to(device)
if device == "cuda":
    torch.cuda.synchronize()
seconds = time.perf_counter() - started
peak = torch.cuda.max_memory_allocated() if device == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "peak_bytes": peak}))
"""


def _one(path: str, device: str, which: str) -> dict:
    result = subprocess.run(
        python_code(_CHILD, path, device, which), capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        raise RuntimeError(f"{which} load failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_load(path: str, device: str = "auto", repeats: int = 3) -> dict:
    """Median load seconds and peak memory of the studio's load and the bare diffusers call."""
    runs: dict[str, list[dict]] = {"studio": [], "bare": []}
    for _ in range(repeats):
        for which in ("bare", "studio"):
            runs[which].append(_one(path, device, which))
    studio_s = statistics.median(r["seconds"] for r in runs["studio"])
    bare_s = statistics.median(r["seconds"] for r in runs["bare"])
    return {
        "load_studio_s": studio_s,
        "load_bare_s": bare_s,
        "load_ratio": studio_s / bare_s if bare_s else float("nan"),
        "load_peak_studio_mb": max(r["peak_bytes"] for r in runs["studio"]) / 2**20,
        "load_peak_bare_mb": max(r["peak_bytes"] for r in runs["bare"]) / 2**20,
    }
