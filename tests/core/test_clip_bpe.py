"""CLIP's BPE in plain Python (the token counter's): the same vocabulary and the same ids as
transformers' CLIPTokenizer on the shipped files."""

import gc
import json
import sys
import time

import pytest

from studio.core.generation import clip_bpe
from studio.core.generation.clip_bpe import FIRST_MERGE_ID, bytes_to_unicode, shipped_clip_bpe
from studio.core.storage.paths import resources_dir

PROMPTS = [
    "a red circle",
    "masterpiece, (best quality:1.2), 8k uhd, 1girl, 2boys, 1234567890 3.14 -5",
    "Hello,   World!! it's   a cat's toy; we'll see, don't 'quoted' ''' ... --- ___ a_b",
    "café naïve Ünïcödé ÀÉÎÕÜ straße İstanbul e\u0301 combining \u0300 marks ﬁ",
    "東京タワー 夜景 和風 emoji 🐱🔥 ½ ² ① Ⅻ 〇 ٣٤",
    "x<|endoftext|>y <|startoftext|> <|ENDOFTEXT|>",  # typed specials: one token; other cases: text
    "tabs\tand\nnewlines\u00a0nbsp\u2003emsp \u200bzero\u200bwidth   ",
    "",
    "SHOUTING CamelCase weird ~!@#$%^&*()",
]


def test_ids_follow_the_shipped_vocabulary():
    """The counter builds no vocabulary: a byte symbol's id is its place in the byte table, a
    merge's token's is 512 + the merge's rank. vocab.json must agree on every token."""
    bpe = shipped_clip_bpe()
    vocab = json.loads((resources_dir() / "clip-tokenizer" / "vocab.json").read_text(encoding="utf-8"))
    symbols = list(bytes_to_unicode().values())
    derived = {s: i for i, s in enumerate(symbols)} | {s + "</w>": 256 + i for i, s in enumerate(symbols)}
    derived |= {line.replace(" ", ""): FIRST_MERGE_ID + rank for line, rank in bpe.ranks.items()}
    derived |= {"<|startoftext|>": bpe.eos_token_id - 1, "<|endoftext|>": bpe.eos_token_id}
    assert derived == vocab
    assert bpe.comma_id == vocab[",</w>"]
    assert bpe.encode("<|startoftext|>, <|endoftext|>") == [vocab["<|startoftext|>"], vocab[",</w>"], vocab["<|endoftext|>"]]


def test_ids_equal_transformers_clip_tokenizer():
    pytest.importorskip("transformers")
    from studio.engine.clip_tokenizers import clip_tokenizer

    reference = clip_tokenizer()(PROMPTS, add_special_tokens=False)["input_ids"]
    bpe = shipped_clip_bpe()
    assert [bpe.encode(p) for p in PROMPTS] == reference


def test_repeated_words_come_from_the_cache():
    bpe = shipped_clip_bpe()
    first = bpe.encode("an unusualwordforthecache")
    assert "unusualwordforthecache" in bpe._cache
    assert bpe.encode("an unusualwordforthecache") == first


def test_rank_table_is_filled_in_pieces_shorter_than_the_switch_interval(monkeypatch):
    """The counter is built beside the engine's first generation: between two pauses (where the
    GUI thread takes the GIL at once) it must hold the GIL for less than the interval after which
    a waiting thread asks for it, or the GUI waits."""
    pauses = [time.thread_time()]
    monkeypatch.setattr(clip_bpe, "_pause", lambda: pauses.append(time.thread_time()))
    ranks = clip_bpe.MergeRanks(resources_dir() / "clip-tokenizer" / "merges.txt").table()
    pieces = [b - a for a, b in zip(pauses, pauses[1:], strict=False)]
    assert len(pieces) >= 20
    assert max(pieces) < sys.getswitchinterval()
    assert len(ranks) == 48894 and ranks["t h"] == 1 and ranks["i n"] == 0


def test_building_tracks_no_object_per_merge():
    """49,000 tuples (a pair per merge) cost the build its time and give the garbage collector
    work on the same thread; the table holds strings and ints only."""
    gc.disable()
    try:
        before = len(gc.get_objects())
        bpe = clip_bpe.ClipBpe(resources_dir() / "clip-tokenizer" / "merges.txt")
        assert len(gc.get_objects()) - before < 1000
    finally:
        gc.enable()
    assert bpe.encode("a red circle") == shipped_clip_bpe().encode("a red circle")
