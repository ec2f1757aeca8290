"""A1111's prompt language: extra-network tags, emphasis, BREAK and 75-token chunks."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.core.generation.prompt_syntax import (
    BREAK,
    BREAK_WORD,
    CHUNK_LENGTH,
    extract_extra_networks,
    make_chunks,
    parse_prompt_attention,
    target_token_count,
)

# A1111's own doctest cases (modules/prompt_parser.py), weights exactly as A1111 computes them.
A1111_CASES = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ("a ", 1.0),
            ("house", 1.5730000000000004),
            (" ", 1.1),
            ("on", 1.0),
            (" a ", 1.1),
            ("hill", 0.55),
            (", sun, ", 1.1),
            ("sky", 1.4641000000000006),
            (".", 1.1),
        ],
    ),
]

MORE_CASES = [
    ("", [("", 1.0)]),
    ("((word))", [("word", 1.1 * 1.1)]),
    ("[word]", [("word", 1 / 1.1)]),
    ("[[word]]", [("word", 1 / 1.1 / 1.1)]),
    ("(word:1.3)", [("word", 1.3)]),
    ("(word: 1.3 )", [("word", 1.3)]),  # spaces around the number (A1111 1.7+)
    ("(word:-0.5)", [("word", -0.5)]),
    ("(a (b:2) c)", [("a ", 1.1), ("b", 2.2), (" c", 1.1)]),
    ("[a (b) c", [("a ", 1 / 1.1), ("b", 1.1 / 1.1), (" c", 1 / 1.1)]),  # "[" left open: the rest
    ("a) b] c", [("a) b] c", 1.0)]),  # closers with nothing open are text
    ("time:12:30", [("time:12:30", 1.0)]),
    ("a :1.5) b", [("a :1.5) b", 1.0)]),  # a weight with no "(" open is text
    ("\\\\", [("\\", 1.0)]),
    ("back\\slash", [("backslash", 1.0)]),  # a lone backslash escapes nothing and goes
    ("(x:1.2.3)", [("x:1.2.3", 1.1)]),  # A1111 raises on this number; here it is text
    ("a BREAK b", [("a", 1.0), BREAK, ("b", 1.0)]),
    ("a\nBREAK\nb", [("a", 1.0), BREAK, ("b", 1.0)]),
    ("BREAKFAST, BREAKS", [("BREAKFAST, BREAKS", 1.0)]),  # only the whole word
    ("a break b", [("a break b", 1.0)]),  # only in capitals
    ("(a BREAK b)", [("a", 1.1), BREAK, ("b", 1.1)]),  # A1111 would multiply the marker
    ("a BREAK BREAK b", [("a", 1.0), BREAK, ("", 1.0), BREAK, ("b", 1.0)]),
]


@pytest.mark.parametrize("text,expected", A1111_CASES + MORE_CASES)
def test_parses_as_a1111(text, expected):
    assert parse_prompt_attention(text) == expected


def test_extra_networks_come_out_first():
    text, nets = extract_extra_networks("a <lora:my lora:-0.5> (red:1.2) cat <hypernet:x:1>")
    assert text == "a  (red:1.2) cat "
    assert [(n.kind, n.args) for n in nets] == [("lora", ("my lora", "-0.5")), ("hypernet", ("x", "1"))]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab :()[]\\.,1-5 BREAK\n")), max_size=60))
def test_never_raises_and_returns_fragments(text):
    fragments = parse_prompt_attention(text)
    assert fragments and all(isinstance(t, str) and isinstance(w, float) for t, w in fragments)
    # Equal-weight neighbours are merged; breaks stay separate.
    for left, right in zip(fragments, fragments[1:], strict=False):
        assert left[1] != right[1] or BREAK in (left, right)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_never_raises_on_any_text(text):
    parse_prompt_attention(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="()[]\\:"), max_size=80))
def test_plain_text_comes_back_whole(text):
    fragments = parse_prompt_attention(text)
    words = [f for f in fragments if f != BREAK]
    assert all(w == 1.0 for _, w in words)
    # BREAK and the whitespace around it go; everything else stays, in order.
    assert "".join(t for t, _ in words) == BREAK_WORD.sub("", text)
    assert fragments.count(BREAK) == len(BREAK_WORD.findall(text))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="\\:"), max_size=80))
def test_brackets_only_remove_themselves(text):
    """Without escapes and weights, the text is the input less the brackets that were consumed:
    every opener, and each closer that matched an opener."""
    if "BREAK" in text:
        return
    joined = "".join(t for t, _ in parse_prompt_attention(text))
    assert joined == _without_consumed_brackets(text)


def _without_consumed_brackets(text: str) -> str:
    out, round_open, square_open = [], 0, 0
    for ch in text:
        if ch == "(":
            round_open += 1
        elif ch == "[":
            square_open += 1
        elif ch == ")" and round_open:
            round_open -= 1
        elif ch == "]" and square_open:
            square_open -= 1
        else:
            out.append(ch)
    return "".join(out)


# --- chunks ------------------------------------------------------------------------------
COMMA, END = 9, 99


def _chunks(fragments, token_lists, **kw):
    return make_chunks(fragments, token_lists, comma_id=COMMA, end_id=END, **kw)


def test_short_prompt_is_one_padded_chunk():
    chunks, count = _chunks([("a b", 1.0), ("c", 1.5)], [[1, 2], [3]])
    assert len(chunks) == 1 and count == 3
    assert chunks[0].tokens == [1, 2, 3] + [END] * 72
    assert chunks[0].weights == [1.0, 1.0, 1.5] + [1.0] * 72
    assert (count, target_token_count(count)) == (3, 75)


def test_empty_prompt_is_one_empty_chunk():
    chunks, count = _chunks([("", 1.0)], [[]])
    assert len(chunks) == 1 and chunks[0].tokens == [END] * 75 and count == 0
    assert target_token_count(0) == 75


def test_overflow_without_comma_cuts_at_75():
    chunks, count = _chunks([("x", 1.0)], [list(range(100, 190))])
    assert [c.tokens[:75] for c in chunks] == [list(range(100, 175)), list(range(175, 190)) + [END] * 60]
    assert (count, target_token_count(count)) == (90, 150)


def test_overflow_breaks_at_the_last_comma_within_20_tokens():
    ids = list(range(100, 160)) + [COMMA] + list(range(200, 230))  # comma at position 60
    chunks, count = _chunks([("x", 1.2)], [ids])
    assert chunks[0].tokens == list(range(100, 160)) + [COMMA] + [END] * 14
    assert chunks[0].weights[:61] == [1.2] * 61 and chunks[0].weights[61:] == [1.0] * 14
    assert chunks[1].tokens[:30] == list(range(200, 230)) and chunks[1].tokens[30:] == [END] * 45
    assert count == 75 + 30


def test_comma_further_back_than_20_tokens_is_ignored():
    ids = list(range(100, 150)) + [COMMA] + list(range(200, 240))  # comma at 50: 25 from the end
    chunks, _ = _chunks([("x", 1.0)], [ids])
    assert chunks[0].tokens == ids[:75]


def test_break_pads_the_chunk_and_starts_another():
    chunks, count = _chunks([("a", 1.0), BREAK, ("b", 1.0)], [[1], [], [2]])
    assert [c.tokens[:2] for c in chunks] == [[1, END], [2, END]]
    assert (count, target_token_count(count)) == (76, 150)


def test_embedding_takes_its_vectors_slots_and_moves_whole_to_the_next_chunk():
    def find(ids, position):
        return ("emb", 2, 5) if ids[position : position + 2] == [7, 8] else None

    chunks, count = _chunks([("x", 1.3)], [[1, 7, 8, 2]], find_embedding=find)
    assert chunks[0].tokens[:7] == [1, 0, 0, 0, 0, 0, 2] and chunks[0].fixes == [(1, "emb")]
    assert chunks[0].weights[:7] == [1.3] * 7 and count == 7
    chunks, _ = _chunks([("x", 1.0)], [list(range(100, 172)) + [7, 8]], find_embedding=find)
    assert chunks[0].fixes == [] and chunks[1].fixes == [(0, "emb")]
    assert chunks[0].tokens[72:] == [END] * 3


def test_chunk_length_is_a1111s():
    assert CHUNK_LENGTH == 75
