"""LoRA files for tests: header-only shapes of real families (numpy, no torch), and real
random LoRAs for a pipeline (studio.dev.bench_lora.make_kohya_lora: peft, then kohya's key names)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file


def _pair(tensors: dict, name: str, width_in: int, width_out: int, rank: int = 4) -> None:
    tensors[f"{name}.lora_down.weight"] = np.full((rank, width_in), 0.01, np.float16)
    tensors[f"{name}.lora_up.weight"] = np.full((width_out, rank), 0.01, np.float16)
    tensors[f"{name}.alpha"] = np.array(float(rank), np.float16)


def write_family_lora(path: str | Path, family: str, metadata: dict | None = None) -> Path:
    """A kohya LoRA shaped as one for real `family` models ("sd1", "sd2", "sdxl"): a few of its
    modules with the real widths (SDXL: SGM block names and two text encoders)."""
    tensors: dict = {}
    if family == "sdxl":
        _pair(tensors, "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k", 2048, 640)
        _pair(tensors, "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q", 640, 640)
        _pair(tensors, "lora_te1_text_model_encoder_layers_0_self_attn_q_proj", 768, 768)
        _pair(tensors, "lora_te2_text_model_encoder_layers_0_self_attn_q_proj", 1280, 1280)
    else:
        width = {"sd1": 768, "sd2": 1024}[family]
        _pair(tensors, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", width, 320)
        _pair(tensors, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", 320, 320)
        _pair(tensors, "lora_te_text_model_encoder_layers_0_self_attn_q_proj", width, width)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def write_header_only_lora(path: str | Path, names_shapes: dict[str, tuple[int, ...]], metadata: dict | None = None) -> Path:
    """Exactly these tensors (zeros, float16): for family detection by names and metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.zeros(s, np.float16) for k, s in names_shapes.items()}, str(path), metadata=metadata)
    return path
