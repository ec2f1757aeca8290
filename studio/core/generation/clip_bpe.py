"""CLIP's byte-level BPE in plain Python, for counting prompt tokens without transformers.

The window's token counter ("37/75") needs token ids, not tensors. transformers' CLIPTokenizer
gives the same ids, but building it holds the GIL in one piece for 45-100 ms (json.load of the
49,408-entry vocabulary, then the Rust BPE built from it: two long C calls), and the GUI thread
freezes for that long (studio.dev.bench_stall). Built here, the work is Python bytecode that hands
the GIL back every few milliseconds, and it reads only merges.txt: CLIP's vocabulary is the 256
byte symbols, the same with "</w>", one token per merge in merges.txt order, then the two
special tokens (OpenAI's simple_tokenizer.py builds it so; tests check it equals vocab.json).

The text is prepared as transformers' CLIPTokenizer (transformers 5, tokenizers backend)
prepares it: NFC, runs of whitespace to one space, lower case, then split by CLIP's pattern
(contractions, runs of letters, single digits, runs of other symbols; whitespace dropped), each
piece split again by the byte-level pre-tokenizer's pattern;
"<|startoftext|>" and "<|endoftext|>" typed in a prompt are one token each, as added tokens.
tests/core/test_clip_bpe.py compares the ids with transformers' on a spread of prompts.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
# CLIP's pre-tokenizer pattern (transformers' CLIPTokenizer); needs the `regex` module for \p{..}.
PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
# ByteLevel's own split (GPT-2's pattern), applied to each piece after CLIP's: it changes only
# the pieces CLIP's pattern keeps whole, such as "<|endoftext|>" in other cases.
BYTE_LEVEL_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
END_OF_WORD = "</w>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (byte-level BPE's alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


class ClipBpe:
    """encode(text) -> CLIP token ids without BOS/EOS, as CLIPTokenizer(add_special_tokens=False)."""

    def __init__(self, merges_file: str | Path):
        import unicodedata

        import regex  # a transformers dependency; imported here, off the GUI thread

        self._normalize = unicodedata.normalize
        self._split = regex.compile(PATTERN).findall
        self._whitespace = regex.compile(r"\s+")
        self._byte_level_split = regex.compile(BYTE_LEVEL_PATTERN).findall
        self._byte_char = bytes_to_unicode()
        lines = Path(merges_file).read_text(encoding="utf-8").splitlines()
        merges = [tuple(line.split()) for line in lines if line and not line.startswith("#version")]
        self.ranks: dict[tuple[str, ...], int] = {pair: i for i, pair in enumerate(merges)}
        symbols = list(self._byte_char.values())
        vocab = symbols + [s + END_OF_WORD for s in symbols] + ["".join(pair) for pair in merges] + [BOS, EOS]
        self.ids: dict[str, int] = {token: i for i, token in enumerate(vocab)}
        self.eos_token_id = self.ids[EOS]
        self.comma_id = self.ids["," + END_OF_WORD]
        self._cache: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        # Added tokens are matched in the raw text, before normalization (as tokenizers does).
        for i, part in enumerate(_split_keep(text, (BOS, EOS))):
            if i % 2:
                ids.append(self.ids[part])
                continue
            part = self._whitespace.sub(" ", self._normalize("NFC", part)).lower()
            for word in self._split(part):
                ids.extend(self._word(word))
        return ids

    def _word(self, word: str) -> list[int]:
        cached = self._cache.get(word)
        if cached is None:
            cached = []
            for piece in self._byte_level_split(word):
                chars = "".join(self._byte_char[b] for b in piece.encode("utf-8"))
                cached += [self.ids[token] for token in self._bpe(chars)]
            if len(self._cache) < 50_000:
                self._cache[word] = cached
        return cached

    def _bpe(self, chars: str) -> list[str]:
        """Merge the word's symbols, lowest-ranked pair first (its last symbol ends the word)."""
        parts = list(chars[:-1]) + [chars[-1] + END_OF_WORD]
        ranks = self.ranks
        while len(parts) > 1:
            best = min(range(len(parts) - 1), key=lambda i: ranks.get((parts[i], parts[i + 1]), 1 << 30))
            first, second = parts[best], parts[best + 1]
            if (first, second) not in ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):  # every occurrence of the pair, left to right
                if i < len(parts) - 1 and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts


def _split_keep(text: str, specials: tuple[str, ...]) -> list[str]:
    """`text` split around each occurrence of a special token: [plain, special, plain, ...]."""
    out: list[str] = []
    rest = text
    while True:
        found = [(rest.find(s), s) for s in specials if s in rest]
        if not found:
            out.append(rest)
            return out
        at, special = min(found)
        out += [rest[:at], special]
        rest = rest[at + len(special):]


@lru_cache(maxsize=1)
def shipped_clip_bpe() -> ClipBpe:
    """The counter for the shipped CLIP tokenizer's merges (resources/clip-tokenizer)."""
    from studio.core.storage.paths import resources_dir

    return ClipBpe(resources_dir() / "clip-tokenizer" / "merges.txt")
