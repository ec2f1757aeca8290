"""CLIP's BPE in plain Python (the token counter's): the same vocabulary and the same ids as
transformers' CLIPTokenizer on the shipped files."""

import json

import pytest

from studio.core.generation.clip_bpe import shipped_clip_bpe
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


def test_vocabulary_is_the_shipped_one():
    bpe = shipped_clip_bpe()
    vocab = json.loads((resources_dir() / "clip-tokenizer" / "vocab.json").read_text(encoding="utf-8"))
    assert bpe.ids == vocab
    assert (bpe.eos_token_id, bpe.comma_id) == (vocab["<|endoftext|>"], vocab[",</w>"])


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
