"""CLIP's byte-level BPE in plain Python, for counting prompt tokens without transformers.

The window's token counter ("37/75") needs token ids, not tensors. transformers' CLIPTokenizer
gives the same ids, but building it holds the GIL in one piece for 45-100 ms (json.load of the
49,408-entry vocabulary, then the Rust BPE built from it: two long C calls), and the GUI thread
freezes for that long (studio.dev.bench_stall). Built here, it reads only merges.txt, one table
(merge line -> rank) filled a piece at a time with a pause after each, and the ids follow from
the merges: CLIP's vocabulary is the 256 byte symbols, the same with "</w>", one token per merge
in merges.txt order, then the two special tokens (OpenAI's simple_tokenizer.py builds it so;
tests check the ids equal vocab.json's). Built in one go as Python bytecode (a tuple per merge,
then the vocabulary), it took ~45 ms of CPU while the engine ran its first generation, and the
GUI thread lost the GIL for up to 47 ms of it; now ~17 ms in pieces of under a millisecond.

The text is prepared as transformers' CLIPTokenizer (transformers 5, tokenizers backend)
prepares it: NFC, runs of whitespace to one space, lower case, then split by CLIP's pattern
(contractions, runs of letters, single digits, runs of other symbols; whitespace dropped), each
piece split again by the byte-level pre-tokenizer's pattern;
"<|startoftext|>" and "<|endoftext|>" typed in a prompt are one token each, as added tokens.
tests/core/test_clip_bpe.py compares the ids with transformers' on a spread of prompts.
"""

from __future__ import annotations

import threading
import time
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


# Ids: the 256 byte symbols, the same symbols ending a word, one token per merge, then BOS and EOS.
FIRST_MERGE_ID = 512
_UNRANKED = 1 << 30
# merges.txt is read into the rank table this many characters (~1,500 merges, a fraction of a
# millisecond) at a time, with a sleep after each piece long enough that a thread waiting for
# the GIL (the GUI's) takes it at once instead of after the 5 ms switch interval.
CHARS_PER_PIECE = 16_384
PAUSE_S = 0.001


class ClipBpe:
    """encode(text) -> CLIP token ids without BOS/EOS, as CLIPTokenizer(add_special_tokens=False).

    Its one table is merges.txt's lines and their ranks (MergeRanks, which the window reads
    ahead in pieces); no vocabulary is built, since a token's id follows from how BPE made it
    (see _bpe). The window builds the rest ahead as well once `regex` is imported; else it is
    built in the counter's thread with a pause between the pieces, so that it never keeps the
    GUI thread waiting for the GIL for long."""

    def __init__(self, merges: str | Path | MergeRanks):
        import unicodedata

        import regex  # a transformers dependency; imported here, when first needed

        self._normalize = unicodedata.normalize
        self._split = regex.compile(PATTERN).findall
        _pause()
        self._whitespace = regex.compile(r"\s+")
        self._byte_level_split = regex.compile(BYTE_LEVEL_PATTERN).findall
        self._byte_char = bytes_to_unicode()
        # A byte symbol's id is its place in the byte table (256 on when it ends a word).
        self._byte_id = {char: i for i, char in enumerate(self._byte_char.values())}
        _pause()
        self.ranks = (merges if isinstance(merges, MergeRanks) else MergeRanks(merges)).table()
        bos_id = FIRST_MERGE_ID + len(self.ranks)
        self._special_ids = {BOS: bos_id, EOS: bos_id + 1}
        self.eos_token_id = bos_id + 1
        self.comma_id = 256 + self._byte_id[","]
        self._cache: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        # Added tokens are matched in the raw text, before normalization (as tokenizers does).
        for i, part in enumerate(_split_keep(text, (BOS, EOS))):
            if i % 2:
                ids.append(self._special_ids[part])
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
                cached += self._bpe("".join(self._byte_char[b] for b in piece.encode("utf-8")))
            if len(self._cache) < 50_000:
                self._cache[word] = cached
        return cached

    def _bpe(self, chars: str) -> list[int]:
        """The ids of the word's symbols once merged, lowest-ranked pair first (its last symbol
        ends the word). A merge's token has the id FIRST_MERGE_ID + the merge's rank: CLIP's
        vocabulary lists one token per merge, in merges.txt order, and no token twice."""
        parts = list(chars[:-1]) + [chars[-1] + END_OF_WORD]
        ids = [self._byte_id[c] for c in chars]
        ids[-1] += 256
        ranks = self.ranks
        while len(parts) > 1:
            pair_ranks = [ranks.get(parts[i] + " " + parts[i + 1], _UNRANKED) for i in range(len(parts) - 1)]
            rank = min(pair_ranks)
            if rank == _UNRANKED:
                break
            at = pair_ranks.index(rank)
            first, second = parts[at], parts[at + 1]
            merged: list[str] = []
            merged_ids: list[int] = []
            i = 0
            while i < len(parts):  # every occurrence of the pair, left to right
                if i < len(parts) - 1 and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    merged_ids.append(FIRST_MERGE_ID + rank)
                    i += 2
                else:
                    merged.append(parts[i])
                    merged_ids.append(ids[i])
                    i += 1
            parts, ids = merged, merged_ids
        return ids


def _pause() -> None:
    """Hand the GIL to the GUI thread for a moment (on the GUI thread itself: nothing to do)."""
    if threading.current_thread() is not threading.main_thread():
        time.sleep(PAUSE_S)


class MergeRanks:
    """merges.txt's lines ("first second") -> their rank, read a piece at a time.

    Whoever has a moment adds a piece with step() (the window's GUI thread between two timer
    ticks, long before the first count: no other thread then competes with the engine's first
    generation for the GIL); table() adds the rest, pausing after each piece, in the thread that
    needs the table. Keyed by the line itself, the table holds only strings and ints (nothing for
    the garbage collector to track), and each piece is a few C calls (split, dict update) rather
    than thousands of rounds of bytecode."""

    def __init__(self, merges_file: str | Path):
        self._file = Path(merges_file)
        self._text: str | None = None
        self._start = 0
        self._ranks: dict[str, int] = {}
        self._lock = threading.Lock()  # one piece at a time; step() never waits for it

    def done(self) -> bool:
        return self._text is not None and self._start >= len(self._text)

    def step(self) -> bool:
        """Add one piece (the first reads the file) unless another thread is adding one.
        Returns whether the table is complete."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._add_piece()
            return self.done()
        finally:
            self._lock.release()

    def table(self) -> dict[str, int]:
        """The complete table, adding the pieces still missing."""
        while not self.done():
            with self._lock:
                self._add_piece()
            _pause()
        return self._ranks

    def _add_piece(self) -> None:
        if self._text is None:
            text = self._file.read_text(encoding="utf-8")
            self._text = text.partition("\n")[2] if text.startswith("#version") else text
            return
        if self.done():
            return
        text, ranks = self._text, self._ranks
        end = text.find("\n", self._start + CHARS_PER_PIECE)
        end = len(text) if end < 0 else end
        lines = [line for line in text[self._start:end].split("\n") if line]
        ranks.update(zip(lines, range(len(ranks), len(ranks) + len(lines)), strict=True))
        self._start = end + 1


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
def shipped_merge_ranks() -> MergeRanks:
    """The rank table of the shipped CLIP tokenizer's merges (resources/clip-tokenizer), built
    as its users call step() or table()."""
    from studio.core.storage.paths import resources_dir

    return MergeRanks(resources_dir() / "clip-tokenizer" / "merges.txt")


@lru_cache(maxsize=1)
def shipped_clip_bpe() -> ClipBpe:
    """The counter for the shipped CLIP tokenizer's merges."""
    return ClipBpe(shipped_merge_ranks())
