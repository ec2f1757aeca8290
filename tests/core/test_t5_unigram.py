"""T5's unigram tokenizer in plain Python (the token counter's, for Flux): the same ids as
transformers' T5TokenizerFast on the shipped tokenizer, built in pieces."""

import pytest

from studio.core.generation.t5_unigram import T5Unigram, shipped_t5_unigram
from studio.core.storage.paths import resources_dir
from studio.ui.token_counter import count_t5_tokens

PROMPTS = [
    "a photo of a cat",
    "  leading and   multiple   spaces  ",
    "Café déjà vu, naïve résumé",
    "masterpiece, best quality, 1girl, (red hair:1.2), looking at viewer",
    "東京の夜景、ネオン",
    "emoji 🎉 test 🙂",
    "numbers 12345 and 3.14159",
    "tab\tnew\nline",
    "UPPER lower MiXeD",
    "ﬁ ligature ½ ①",
    "x" * 40,
    "don't won't it's",
    "a,b;c:d",
    "",
    " ",
    "<extra_id_0> text </s>",
    "<extra_id_0>text",
    "a<extra_id_12>b </s> c",
    "A cinematic photo of an astronaut riding a horse on Mars, 35mm, golden hour, ultra-detailed, 8k",
]


@pytest.fixture(scope="module")
def fast_tokenizer():
    transformers = pytest.importorskip("transformers")
    return transformers.T5TokenizerFast.from_pretrained(str(resources_dir() / "t5-tokenizer"), local_files_only=True)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_ids_match_transformers(fast_tokenizer, prompt):
    assert shipped_t5_unigram().encode(prompt) == fast_tokenizer(prompt, add_special_tokens=False)["input_ids"]


def test_built_a_piece_at_a_time():
    t5 = T5Unigram(resources_dir() / "t5-tokenizer" / "tokenizer.json")
    steps = 0
    while not t5.step():
        steps += 1
    assert steps > 10  # many small pieces, never one long hold of the GIL
    assert t5.encode("a photo of a cat") == shipped_t5_unigram().encode("a photo of a cat")


def test_count_includes_the_closing_token_and_skips_syntax(fast_tokenizer):
    prompt = "a (red:1.3) [circle] <lora:style:0.8> on a table"
    plain = "a red circle on a table"
    assert count_t5_tokens(plain) == len(fast_tokenizer(plain)["input_ids"])  # with </s>
    assert count_t5_tokens(prompt) == count_t5_tokens(plain)  # weights and tags are not tokens
    assert count_t5_tokens("") == 1
