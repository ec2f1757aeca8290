"""Build a CLIP tokenizer whose vocabulary is a fixed list of whole words.

The demo model and the engine tests need a real `CLIPTokenizer` (the one SD 1.x pipelines
load from a model folder) without fetching one from a hub. CLIP's tokenizer is byte-level
BPE, so we give it every byte as a base symbol plus merges that rebuild each known word into
a single token. Unknown words still tokenize (into byte pieces) and never raise.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from transformers import CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


def build_word_tokenizer(words: Iterable[str], max_length: int = 77) -> CLIPTokenizer:
    """A CLIPTokenizer that maps each of `words` (lower case, no spaces) to one token."""
    base = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for symbol in base + [s + "</w>" for s in base]:
        vocab.setdefault(symbol, len(vocab))
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for word in sorted(set(words)):
        if not word or " " in word:
            raise ValueError(f"not a single word: {word!r}")
        # Merge left to right: "red" -> r e d</w> -> re d</w> -> red</w>.
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pair = (parts[0], parts[1])
            if pair not in seen:
                seen.add(pair)
                merges.append(pair)
            parts = [parts[0] + parts[1], *parts[2:]]
            vocab.setdefault(parts[0], len(vocab))
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def save_word_tokenizer(words: Iterable[str], folder: Path, max_length: int = 77) -> CLIPTokenizer:
    tokenizer = build_word_tokenizer(words, max_length)
    tokenizer.save_pretrained(str(folder))
    return tokenizer
