"""What SD 1.x, SD 2.x and SDXL share: a UNet, CLIP text encoders read A1111's way, the
original (LDM) single-file layout, and one shipped CLIP vocabulary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from studio.core.models.family import ModelInfo
from studio.core.models.safetensors_header import SafetensorsHeader
from studio.engine.families.base import FamilyAdapter

SD_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline")
PAD_EOS, PAD_BANG = "<|endoftext|>", "!"  # studio.engine.clip_tokenizers says which family pads with which


@dataclass(frozen=True)
class CheckpointTextEncoder:
    """Where a text encoder's tensors sit in an original-layout checkpoint."""

    folder: str  # the diffusers component ("text_encoder", "text_encoder_2")
    prefix: str  # its key prefix in the checkpoint
    layout: str  # "hf" (transformers' CLIP names) or "openclip"
    drops_last_layer: bool = False  # diffusers keeps 23 of OpenCLIP-H's 24 layers (SD 2.x reads the penultimate)
    projection: bool = False  # its text_projection sizes the pooled output (SDXL's second encoder)
    # The real encoder's layers (CLIP ViT-L 12, OpenCLIP ViT-H 24, ViT-bigG 32): a header
    # declaring more is not a real model.
    max_layers: int = 12


class UNetFamily(FamilyAdapter):
    """The base of the Stable Diffusion families' adapters."""

    checkpoint_text_encoders: ClassVar[tuple[CheckpointTextEncoder, ...]]
    tokenizer_pads: ClassVar[tuple[str, ...]]  # pad token of `tokenizer` (and `tokenizer_2`)
    composable_prompts = True  # A1111 combines AND parts for these families

    def tokenizers(self) -> dict:
        """The shipped CLIP tokenizers (shared: nothing changes them; embeddings are swapped in at
        the token-embedding layer, never added as tokens)."""
        from studio.engine.clip_tokenizers import clip_tokenizer

        return {name: clip_tokenizer(pad) for name, pad in zip(("tokenizer", "tokenizer_2"), self.tokenizer_pads, strict=False)}

    def single_file_config(self, info: ModelInfo, header: SafetensorsHeader) -> Path:
        from studio.engine.checkpoint_config import checkpoint_config_dir

        return checkpoint_config_dir(info, header)

    def finish_unet_config(self, config: dict, header: SafetensorsHeader, channels: list, depths: list[int],
                           mid_depth: int) -> None:
        """Set what a checkpoint's shapes cannot tell (head counts) by the family's convention,
        and its own conditioning sizes. `channels`/`depths`: per UNet level."""
        config["attention_head_dim"] = [max(1, c // 64) for c in channels]  # heads of 64 channels
