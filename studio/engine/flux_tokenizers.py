"""The two tokenizers Flux reads prompts with, built offline from resources/.

CLIP-L (pooled prompt, 77 tokens) is the SD 1.x one, padding with "<|endoftext|>" as FLUX.1's own
`tokenizer/special_tokens_map.json` does. T5-XXL (the sequence, up to 512 tokens for [dev] and
Fill, 256 for [schnell] in diffusers' pipelines) is Google's T5 v1.1 tokenizer, shipped in
resources/t5-tokenizer/ with its provenance.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from transformers import CLIPTokenizer, T5TokenizerFast

from studio.core.errors import ErrorKind, StudioError
from studio.core.storage.paths import resources_dir
from studio.engine.clip_tokenizers import PAD_EOS, clip_tokenizer

T5_MAX_LENGTH = 512  # FLUX.1 [dev] and Fill's max_sequence_length; [schnell] was trained with 256
T5_PAD_ID, T5_EOS_ID = 0, 1


def t5_tokenizer_dir() -> Path:
    return resources_dir() / "t5-tokenizer"


@lru_cache(maxsize=1)
def t5_tokenizer() -> T5TokenizerFast:
    """T5 v1.1's tokenizer, one shared object per process: callers must not mutate it."""
    folder = t5_tokenizer_dir()
    if not (folder / "tokenizer.json").is_file():
        raise StudioError(
            ErrorKind.INTERNAL,
            f"The T5 tokenizer files are missing from {folder}.",
            "Reinstall the studio; Flux needs them to read prompts.",
        )
    return T5TokenizerFast.from_pretrained(str(folder), local_files_only=True)


def flux_clip_tokenizer() -> CLIPTokenizer:
    return clip_tokenizer(PAD_EOS)
