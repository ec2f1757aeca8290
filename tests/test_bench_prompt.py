"""The prompt-encoding benchmark runs through the engine's code and reports a 3-chunk prompt."""

import pytest

from studio.dev.bench_prompt import WEIGHTED_PROMPT, measure_prompt_encoding
from studio.ui.token_counter import count_tokens


def test_the_weighted_prompt_needs_three_chunks():
    count, target = count_tokens(WEIGHTED_PROMPT)
    assert target == 225 and count > 150


@pytest.mark.slow
def test_measures_encoding_with_loras_against_one_generation():
    result = measure_prompt_encoding(repeats=1, steps=1, size=64)
    assert result["weighted_chunks"] == 3
    assert result["loras"].startswith("2 applied")
    assert 0 < result["plain_encode_s"] and 0 < result["weighted_encode_s"] < result["generation_s"]
    assert result["share_of_generation"] == result["weighted_encode_s"] / result["generation_s"]
