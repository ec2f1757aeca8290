"""Benchmark: the time to apply and remove two LoRAs (issue 11's goal: under 0.5 s on tiny models).

Measured through the engine's own LoRA code (studio.engine.lora) on the tiny SD 1.x model, with
two LoRAs made here by peft (random, non-zero) and written in kohya's format as model sites
ship them. "cold" reads both files and wraps the layers, then takes everything off again;
"warm" is a later job with the same LoRAs (cached: switched on and off only).

`make_kohya_lora` is also what the tests use to make real LoRAs.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

KOHYA_UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.2")
KOHYA_TE_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


def _kohya_name(prefix: str, module_path: str) -> str:
    """kohya's module name: a prefix and the diffusers/transformers path with "_" for ".".
    Text encoders are named from CLIPTextModel's `text_model.` root (transformers 4 layout)."""
    if prefix.startswith("lora_te") and not module_path.startswith("text_model."):
        module_path = "text_model." + module_path
    return prefix + module_path.replace(".", "_")


def kohya_state_dict(module, prefix: str, targets, rank: int = 4, alpha: float | None = None, seed: int = 0,
                     scale: float = 1.0) -> dict:
    """A random LoRA on `module` made by peft (both matrices random, so it changes the output),
    as kohya's keys: `<prefix><path>.lora_down.weight`, `.lora_up.weight`, `.alpha`."""
    import torch
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    torch.manual_seed(seed)
    alpha = float(rank if alpha is None else alpha)
    work = copy.deepcopy(module)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=False)
    inject_adapter_in_model(config, work, "made")
    tensors = {}
    for key, value in get_peft_model_state_dict(work, adapter_name="made").items():
        path, kind = key.rsplit(".lora_", 1)
        name = _kohya_name(prefix, path)
        tensors[f"{name}.lora_{'down' if kind.startswith('A') else 'up'}.weight"] = (value * scale).contiguous()
        tensors[f"{name}.alpha"] = torch.tensor(alpha)
    return tensors


def make_kohya_lora(pipe, path: str | Path, seed: int = 0, rank: int = 4, unet: bool = True, text_encoders: bool = True,
                    scale: float = 1.0, metadata: dict | None = None) -> Path:
    """A kohya-format LoRA for `pipe`'s UNet and text encoders (SDXL's two: lora_te1_/lora_te2_)."""
    from safetensors.torch import save_file

    tensors = {}
    if unet:
        tensors.update(kohya_state_dict(pipe.unet, "lora_unet_", KOHYA_UNET_TARGETS, rank, seed=seed, scale=scale))
    if text_encoders:
        encoders = [e for e in (getattr(pipe, "text_encoder", None), getattr(pipe, "text_encoder_2", None)) if e is not None]
        prefixes = ["lora_te_"] if len(encoders) == 1 else ["lora_te1_", "lora_te2_"]
        for number, (encoder, prefix) in enumerate(zip(encoders, prefixes, strict=True)):
            tensors.update(kohya_state_dict(encoder, prefix, KOHYA_TE_TARGETS, rank, seed=seed + 1000 * (number + 1),
                                            scale=scale))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"ss_network_module": "networks.lora", **(metadata or {})}
    save_file({k: v.float() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def bench_lora(repeats: int = 3) -> dict:
    """{"cold_s": median seconds to load two LoRAs, apply them and take them off completely,
    "warm_s": the same two again from the cache (apply and switch off), "first_s": the first
    cold run of the process (one-time imports included), "goal_s": 0.5}."""
    from studio.core.generation.request import GenerationRequest
    from studio.core.models.model_detect import Family
    from studio.engine.lora import cache_for, loras_for_job
    from studio.engine.tiny_model import build_tiny_pipeline

    pipe = build_tiny_pipeline(0)
    model = SimpleNamespace(pipe=pipe, info=SimpleNamespace(family=Family.SD1))
    request = GenerationRequest(prompt="a red circle <lora:bench one:0.8> <lora:bench two:-0.5>")
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as folder:
        make_kohya_lora(pipe, Path(folder) / "bench one.safetensors", seed=1)
        make_kohya_lora(pipe, Path(folder) / "bench two.safetensors", seed=2)
        engine = SimpleNamespace(library_dirs=[], lora_dirs=[folder])
        for _ in range(repeats + 1):  # the first also imports peft's layer code: reported apart
            started = time.perf_counter()
            with loras_for_job(engine, model, request) as note:
                assert not note, note
            cache = cache_for(model)
            cache.jobs += 10**6  # everything is old now: the next evict deletes it all
            cache.evict(pipe, keep=set())
            cold.append(time.perf_counter() - started)
        with loras_for_job(engine, model, request):
            pass
        for _ in range(repeats):
            started = time.perf_counter()
            with loras_for_job(engine, model, request):
                pass
            warm.append(time.perf_counter() - started)
    return {"first_s": cold[0], "cold_s": statistics.median(cold[1:]), "warm_s": statistics.median(warm), "goal_s": 0.5,
            "loras": 2}


if __name__ == "__main__":
    print(bench_lora())
