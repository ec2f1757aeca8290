"""The CLIP tokenizers every Stable Diffusion family reads prompts with, built offline.

SD 1.x, SD 2.x and both of SDXL's text encoders share one byte-level BPE vocabulary (OpenAI
CLIP's, 49,408 tokens). We ship it once in `resources/clip-tokenizer/` (derived by
`studio.tools.make_clip_tokenizer`) and hand the tokenizer objects to diffusers'
`from_single_file(..., tokenizer=..., tokenizer_2=...)`, so nothing is fetched from a hub.

The tokenizers differ only in the padding token, and that matters: the text encoder sees the
pad positions, so the wrong pad changes the image.
- SD 1.x and SDXL's first tokenizer (OpenAI CLIP ViT-L/14) pad with "<|endoftext|>" (id 49407):
  `pad_token` in runwayml/stable-diffusion-v1-5 and stable-diffusion-xl-base-1.0 `tokenizer/`.
- SD 2.x's tokenizer and SDXL's `tokenizer_2` (OpenCLIP ViT-H / bigG) pad with "!" (id 0):
  `"pad_token": "!"` in the `special_tokens_map.json` of stabilityai/stable-diffusion-2-1
  `tokenizer/` and stable-diffusion-xl-base-1.0 `tokenizer_2/`. It mirrors OpenCLIP, whose
  tokenizer pads with zeros, and id 0 is "!" (diffusers issue #2201, transformers #24925).
  Side effect, kept on purpose because the Hub tokenizers do the same (diffusers #4153): with
  pad "!", a "!" in a prompt becomes a pad token too ("!!" gives 0 0, where OpenCLIP gives 748).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from transformers import CLIPTokenizer

from studio.core.errors import ErrorKind, StudioError
from studio.core.paths import resources_dir

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
PAD_EOS = EOS  # SD 1.x, SDXL `tokenizer`
PAD_BANG = "!"  # SD 2.x, SDXL `tokenizer_2`
MAX_LENGTH = 77  # CLIP's context: 75 prompt tokens between BOS and EOS


def tokenizer_dir() -> Path:
    return resources_dir() / "clip-tokenizer"


@lru_cache(maxsize=4)
def clip_tokenizer(pad_token: str = PAD_EOS) -> CLIPTokenizer:
    """CLIP's tokenizer padding with `pad_token`; one shared object per pad token.

    Shared, so callers must not mutate it (adding textual-inversion tokens does): copy it first.
    """
    folder = tokenizer_dir()
    if not (folder / "vocab.json").is_file() or not (folder / "merges.txt").is_file():
        raise StudioError(
            ErrorKind.INTERNAL,
            f"The CLIP tokenizer files are missing from {folder}.",
            "Reinstall the studio, or run `python -m studio.tools.make_clip_tokenizer` in a source checkout.",
        )
    # A local folder: transformers reads the two files and never looks at a hub.
    return CLIPTokenizer.from_pretrained(
        str(folder),
        model_max_length=MAX_LENGTH,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=pad_token,
        local_files_only=True,
    )
