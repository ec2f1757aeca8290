"""Derive CLIP's BPE tokenizer files (vocab.json, merges.txt) from OpenAI's merge list.

Every Stable Diffusion text encoder (SD 1.x, SD 2.x, both of SDXL's) reads prompts through
the same byte-level BPE vocabulary of 49,408 tokens that OpenAI published with CLIP. Diffusers
would fetch it from the Hugging Face Hub (`tokenizer/vocab.json` + `merges.txt` of each model
repository); the studio works offline and never reaches a hub, so we ship the two files in
`resources/clip-tokenizer/` and build `transformers.CLIPTokenizer` objects from them
(`studio.engine.clip_tokenizers`).

Source: `bpe_simple_vocab_16e6.txt.gz`, the merge list OpenAI published with CLIP
(github.com/openai/CLIP, clip/bpe_simple_vocab_16e6.txt.gz), which open-clip-torch ships as
`open_clip/bpe_simple_vocab_16e6.txt.gz` in its wheel (3.3.0: sha256
924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a). Get it from PyPI without
installing open-clip-torch (and without adding it as a dependency):

    .venv/bin/pip download --no-deps -d /tmp/oc open-clip-torch
    cd /tmp/oc && unzip -o open_clip_torch-*.whl open_clip/bpe_simple_vocab_16e6.txt.gz
    python -m studio.dev.make_clip_tokenizer /tmp/oc/open_clip/bpe_simple_vocab_16e6.txt.gz \
        --out resources/clip-tokenizer

The construction is the one of CLIP's `SimpleTokenizer` (and Hugging Face's `CLIPTokenizer`,
which reads the files we write): the first line of the gz is a header, the next 48,894 lines are
merges; ids are the 256 byte symbols, the same with the end-of-word mark `</w>`, one id per merge
(the merged pair), then `<|startoftext|>` (49406) and `<|endoftext|>` (49407).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

# CLIP's (and GPT-2's) byte table, shared with the token counter's tokenizer (pure Python, no transformers).
from studio.core.generation.clip_bpe import bytes_to_unicode

VOCAB_SIZE = 49408
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
# CLIP keeps 49152 - 256 - 2 merges; with 256 bytes, 256 bytes+"</w>" and the two specials
# that makes exactly VOCAB_SIZE ids. The `+ 1` skips the header line.
_MERGE_LINES = slice(1, 49152 - 256 - 2 + 1)


def read_merges(source_gz: Path) -> list[tuple[str, str]]:
    with gzip.open(source_gz, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[_MERGE_LINES]]
    bad = [m for m in merges if len(m) != 2]
    if bad:
        raise ValueError(f"{source_gz}: not a CLIP merge list (line {merges.index(bad[0]) + 2}: {bad[0]!r})")
    return merges  # type: ignore[return-value]


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    symbols = list(bytes_to_unicode().values())
    symbols += [s + "</w>" for s in symbols]
    symbols += ["".join(pair) for pair in merges]
    symbols += [BOS, EOS]
    vocab = {symbol: i for i, symbol in enumerate(symbols)}
    if len(vocab) != VOCAB_SIZE or len(symbols) != VOCAB_SIZE:
        raise ValueError(f"expected {VOCAB_SIZE} distinct tokens, got {len(vocab)} of {len(symbols)}")
    return vocab


def write_tokenizer(source_gz: Path, out_dir: Path) -> tuple[Path, Path]:
    merges = read_merges(source_gz)
    vocab = build_vocab(merges)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_path = out_dir / "vocab.json"
    merges_path = out_dir / "merges.txt"
    # Same shape as the Hub's files: compact JSON in id order, merges after a version header.
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    merges_path.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return vocab_path, merges_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.dev.make_clip_tokenizer", description=__doc__.split("\n")[0])
    parser.add_argument("source_gz", type=Path, help="bpe_simple_vocab_16e6.txt.gz (from open-clip-torch or CLIP)")
    parser.add_argument("--out", type=Path, default=Path("resources/clip-tokenizer"), help="output folder")
    args = parser.parse_args(argv)
    vocab_path, merges_path = write_tokenizer(args.source_gz, args.out)
    print(f"wrote {vocab_path} and {merges_path} ({VOCAB_SIZE} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
