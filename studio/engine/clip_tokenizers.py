"""The CLIP tokenizers every Stable Diffusion family reads prompts with, built offline.

SD 1.x, SD 2.x and both of SDXL's text encoders share one byte-level BPE vocabulary (OpenAI
CLIP's, 49,408 tokens). We ship it once in `resources/clip-tokenizer/` (derived by
`studio.dev.make_clip_tokenizer`) and hand the tokenizer objects to diffusers'
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

Built on the engine thread while the window runs, so no step may hold the GIL long (issue 12:
the GUI never frozen over 50 ms). `CLIPTokenizer.from_pretrained` hands both file names to the
tokenizers library, which reads and parses them in Rust in one call: 45-67 ms with the GIL held
(studio.dev.bench_stall on a tiny single file). Here vocab.json is parsed in slices (a few ms each)
and the merges in Python, and only the BPE model's own construction stays in Rust (~25 ms);
the result is the same tokenizer (tests/engine/test_clip_tokenizer_build.py compares them).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from transformers import CLIPTokenizer

from studio.core.errors import ErrorKind, StudioError
from studio.core.storage.paths import resources_dir

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
PAD_EOS = EOS  # SD 1.x, SDXL `tokenizer`
PAD_BANG = "!"  # SD 2.x, SDXL `tokenizer_2`
MAX_LENGTH = 77  # CLIP's context: 75 prompt tokens between BOS and EOS
VOCAB_SLICES = 16  # json.loads of the whole vocab.json holds the GIL ~15 ms; a slice ~1 ms


def tokenizer_dir() -> Path:
    return resources_dir() / "clip-tokenizer"


def _check_files(folder: Path) -> None:
    if not (folder / "vocab.json").is_file() or not (folder / "merges.txt").is_file():
        raise StudioError(
            ErrorKind.INTERNAL,
            f"The CLIP tokenizer files are missing from {folder}.",
            "Reinstall the studio, or run `python -m studio.dev.make_clip_tokenizer` in a source checkout.",
        )


def read_vocab(path: Path, slices: int = VOCAB_SLICES) -> dict[str, int]:
    """vocab.json's {token: id}, parsed a slice at a time so other threads get the GIL between.

    The file is one JSON object. It is cut at a `,"` near every len/slices characters, and the
    run of entries before the cut is parsed as an object of its own. A `,"` can also sit inside
    a token (the token ","), but a cut there leaves that slice ending inside a string, which
    never parses: the cut then moves to the next `,"`. A slice that parses ends after a whole
    value, so the next character is the comma between two entries and the slices together give
    what json.loads gives for the whole file."""
    text = path.read_text(encoding="utf-8").strip()
    if not (text.startswith("{") and text.endswith("}")):
        return json.loads(text)  # not the one-object layout: let json say what is wrong
    body = text[1:-1]
    vocab: dict[str, int] = {}
    start, step = 0, max(1, len(body) // max(1, slices))
    while start < len(body):
        end = body.find(',"', start + step)
        while True:
            end = len(body) if end < 0 else end
            try:
                vocab.update(json.loads("{" + body[start:end] + "}"))
                break
            except json.JSONDecodeError:
                if end == len(body):
                    raise
                end = body.find(',"', end + 1)
        start = end + 1
    return vocab


def read_merges(path: Path) -> list[tuple[str, str]]:
    """merges.txt's pairs in rank order, without the "#version" header line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]  # type: ignore[misc]


@lru_cache(maxsize=1)
def _vocab_and_merges(folder: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Parsed once per process: SDXL's two tokenizers read the same files. Only read from."""
    return read_vocab(folder / "vocab.json"), read_merges(folder / "merges.txt")


@lru_cache(maxsize=4)
def clip_tokenizer(pad_token: str = PAD_EOS) -> CLIPTokenizer:
    """CLIP's tokenizer padding with `pad_token`; one shared object per pad token, built on
    first use (a model load) and kept for the process.

    Shared, so callers must not mutate it (adding textual-inversion tokens does): copy it first.
    The studio's embeddings never add tokens (studio.engine.prompt_encoding swaps their vectors
    in at placeholder positions)."""
    folder = tokenizer_dir()
    _check_files(folder)
    vocab, merges = _vocab_and_merges(folder)
    # CLIPTokenizer copies both into its Rust BPE model (the one long step left: ~25 ms).
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,  # type: ignore[arg-type]  # its hint says list[str]; tokenizers 0.23 takes only pairs
        model_max_length=MAX_LENGTH,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=pad_token,
        name_or_path=str(folder),
    )
