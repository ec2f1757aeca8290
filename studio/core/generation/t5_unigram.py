"""T5's SentencePiece unigram tokenizer in plain Python, for counting prompt tokens ("212/512")
without transformers or tokenizers.

The `tokenizers` package builds the shipped tokenizer.json in one Rust call that holds the GIL
for ~150 ms (measured on the 2-core VM), a visible freeze of the GUI thread. Here the vocabulary
(32,100 pieces and their log-probabilities) is read from the same file a piece at a time with a
pause after each (as studio.core.generation.clip_bpe reads CLIP's merges), and a prompt is split
by the unigram model's Viterbi search: the segmentation whose pieces' scores sum highest.

The text is prepared as the shipped tokenizer.json says: SentencePiece's nmt_nfkc normalization
(NFKC here, tabs and newlines as spaces; the precompiled charsmap differs from it only on rare
control and formatting characters), trailing whitespace stripped, a run of spaces becoming one
"▁", then every space "▁" with one prepended (to each part between added tokens such as </s>),
words split before each "▁". Characters the vocabulary lacks become <unk>, consecutive ones one
<unk>. tests/core/test_t5_unigram.py compares the ids with
transformers' T5TokenizerFast on a spread of prompts.
"""

from __future__ import annotations

import json
import re
import threading
import time
import unicodedata
from functools import lru_cache
from pathlib import Path

SPACE = "\u2581"  # "▁", SentencePiece's word boundary
UNK_ID, EOS_ID = 2, 1
ENTRIES_PER_PIECE = 500  # vocabulary entries read per piece (~1 ms on the 2-core VM)
PAUSE_S = 0.001
# One vocabulary entry as tokenizer.json writes it: ["piece", score]
_ENTRY = re.compile(r'\[\s*"((?:[^"\\]|\\.)*)"\s*,\s*(-?[0-9.eE+-]+)\s*\]')
_RUNS_OF_SPACES = re.compile(" {2,}")
_CONTROL_SPACES = str.maketrans("\t\n\r", "   ")  # the charsmap makes them spaces
# Added tokens, matched in the raw text before anything else (as tokenizers does).
_ADDED = re.compile(r"<extra_id_(\d{1,2})>|</s>|<pad>|<unk>")
_ADDED_IDS = {"<pad>": 0, "</s>": EOS_ID, "<unk>": UNK_ID}
_UNSCORED = float("-inf")


class T5Unigram:
    """encode(text) -> T5 token ids without the closing </s>, as T5TokenizerFast(add_special_tokens=False)."""

    def __init__(self, tokenizer_json: str | Path):
        self._file = Path(tokenizer_json)
        self._text: str | None = None
        self._at = 0  # where the next piece of the vocabulary starts in _text
        self._entries = None
        self._scores: dict[str, tuple[int, float]] = {}
        self._next_id = 0
        self._longest = 1
        self._done = False
        self._lock = threading.Lock()
        self._cache: dict[str, list[int]] = {}
        self._unk_score = 0.0

    # -- the vocabulary, read in pieces --------------------------------------------------------
    def done(self) -> bool:
        return self._done

    def step(self) -> bool:
        """Read one piece of the vocabulary unless another thread is; whether it is complete."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._add_piece()
            return self._done
        finally:
            self._lock.release()

    def build(self) -> T5Unigram:
        """Read what is left of the vocabulary, pausing between pieces off the GUI thread."""
        while not self._done:
            with self._lock:
                self._add_piece()
            if threading.current_thread() is not threading.main_thread():
                time.sleep(PAUSE_S)
        return self

    def _add_piece(self) -> None:
        if self._done:
            return
        if self._text is None:
            text = self._file.read_text(encoding="utf-8")
            start = text.find('"vocab"', text.find('"model"'))
            if start < 0:
                raise ValueError(f"{self._file} has no unigram vocabulary")
            self._text, self._at = text, start
            self._entries = _ENTRY.finditer(text, start)
            return
        scores = self._scores
        for _ in range(ENTRIES_PER_PIECE):
            match = next(self._entries, None)  # type: ignore[call-overload]
            if match is None or self._next_id >= self._vocab_end():
                self._finish()
                return
            piece = match.group(1)
            if "\\" in piece:
                piece = json.loads(f'"{piece}"')
            scores.setdefault(piece, (self._next_id, float(match.group(2))))
            self._next_id += 1
            if len(piece) > self._longest:
                self._longest = len(piece)

    def _vocab_end(self) -> int:
        return 32_100  # T5 v1.1's vocabulary: 32,000 pieces and 100 <extra_id_N> sentinels

    def _finish(self) -> None:
        self._done = True
        self._text = None
        self._entries = None
        # SentencePiece scores an unknown character below every piece (min score - 10).
        self._unk_score = min(score for _, score in self._scores.values()) - 10.0

    # -- counting --------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        self.build()
        ids: list[int] = []
        start = 0
        for added in _ADDED.finditer(text):
            ids += self._encode_plain(text[start:added.start()])
            number = added.group(1)
            ids.append(32_099 - int(number) if number is not None else _ADDED_IDS[added.group(0)])
            start = added.end()
        return ids + self._encode_plain(text[start:])

    def _encode_plain(self, text: str) -> list[int]:
        text = unicodedata.normalize("NFKC", text.translate(_CONTROL_SPACES)).rstrip()
        text = _RUNS_OF_SPACES.sub(SPACE, text).replace(" ", SPACE)
        if not text:
            return []
        if not text.startswith(SPACE):  # each part between added tokens, as tokenizers does
            text = SPACE + text
        ids: list[int] = []
        for word in _words(text):
            cached = self._cache.get(word)
            if cached is None:
                cached = self._viterbi(word)
                if len(self._cache) < 50_000:
                    self._cache[word] = cached
            ids.extend(cached)
        return ids

    def _viterbi(self, word: str) -> list[int]:
        """The best-scoring segmentation of `word` into vocabulary pieces (ids)."""
        n, scores, longest = len(word), self._scores, self._longest
        best = [_UNSCORED] * (n + 1)
        back: list[tuple[int, int]] = [(0, UNK_ID)] * (n + 1)  # (start, id) of the piece ending here
        best[0] = 0.0
        for end in range(1, n + 1):
            for start in range(max(0, end - longest), end):
                if best[start] == _UNSCORED:
                    continue
                found = scores.get(word[start:end])
                if found is not None:
                    score = best[start] + found[1]
                    if score > best[end]:
                        best[end], back[end] = score, (start, found[0])
            if best[end] == _UNSCORED:  # one unknown character
                best[end], back[end] = best[end - 1] + self._unk_score, (end - 1, UNK_ID)
        ids: list[int] = []
        end = n
        while end > 0:
            start, token = back[end]
            if not (token == UNK_ID and ids and ids[-1] == UNK_ID):  # consecutive unknowns are one <unk>
                ids.append(token)
            end = start
        ids.reverse()
        return ids


def _words(text: str) -> list[str]:
    """`text` split before every "▁" (Metaspace's split: the space begins the next word)."""
    words: list[str] = []
    start = 0
    for i in range(1, len(text)):
        if text[i] == SPACE:
            words.append(text[start:i])
            start = i
    words.append(text[start:])
    return words


@lru_cache(maxsize=1)
def shipped_t5_unigram() -> T5Unigram:
    """The counter for the shipped T5 tokenizer (resources/t5-tokenizer), built as its users
    call step() or encode()."""
    from studio.core.storage.paths import resources_dir

    return T5Unigram(resources_dir() / "t5-tokenizer" / "tokenizer.json")
