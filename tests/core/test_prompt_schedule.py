"""A1111's prompt editing and alternation schedules (modules/prompt_parser.py's doctests as tables)."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.core.generation.prompt_schedule import and_parts, counted_texts, prompt_schedule, text_at_step


def schedule(prompt, steps=10, hires=None):
    return [[entry.end_at_step, entry.text] for entry in prompt_schedule(prompt, steps, hires)]


# get_learned_conditioning_prompt_schedules([p], 10)[0], from A1111's doctests.
A1111_10_STEPS = [
    ("test", [[10, "test"]]),
    ("a [b:3]", [[3, "a "], [10, "a b"]]),
    ("a [b: 3]", [[3, "a "], [10, "a b"]]),
    ("a [[[b]]:2]", [[2, "a "], [10, "a [[b]]"]]),
    ("[(a:2):3]", [[3, ""], [10, "(a:2)"]]),
    ("a [b : c : 1] d", [[1, "a b  d"], [10, "a  c  d"]]),
    ("a[b:[c:d:2]:1]e", [[1, "abe"], [2, "ace"], [10, "ade"]]),
    ("a [unbalanced", [[10, "a [unbalanced"]]),
    ("a [b:.5] c", [[5, "a  c"], [10, "a b c"]]),
    ("((a][:b:c [d:3]", [[3, "((a][:b:c "], [10, "((a][:b:c d"]]),
    ("[a|(b:1.1)]", [[s, "a" if s % 2 else "(b:1.1)"] for s in range(1, 11)]),
    ("[fe|]male", [[s, "female" if s % 2 else "male"] for s in range(1, 11)]),
    ("[fe|||]male", [[s, "female" if s % 4 == 1 else "male"] for s in range(1, 11)]),
    # A1111's doctest says [[5, 'a  c'], [10, 'a {b|d{ c']] ("not handling this right now"), but its
    # parser (lark) cannot read a "|" there and returns the prompt whole; so do we.
    ("a [{b|d{:.5] c", [[10, "a [{b|d{:.5] c"]]),
]


@pytest.mark.parametrize(("prompt", "expected"), A1111_10_STEPS)
def test_a1111_doctests(prompt, expected):
    assert schedule(prompt) == expected


# get_learned_conditioning_prompt_schedules([p], 10, 10)[0]: the hires pass of 10 steps after 10.
@pytest.mark.parametrize(("prompt", "expected"), [
    ("a [b:.5] c", [[10, "a b c"]]),  # a first-pass fraction has happened before the hires pass
    ("a [b:1.5] c", [[5, "a  c"], [10, "a b c"]]),  # 1.x: a fraction of the hires steps
    ("a [b:15] c", [[5, "a  c"], [10, "a b c"]]),  # step numbers count on from the first pass
    ("a [b:5] c", [[10, "a b c"]]),
])
def test_a1111_hires_schedules(prompt, expected):
    assert schedule(prompt, 10, 10) == expected


@pytest.mark.parametrize(("prompt", "steps", "expected"), [
    ("[a:b:0]", 10, [[10, "b"]]),  # an edit at step 0 has happened: "b" throughout
    ("[a:b:20]", 10, [[10, "a"]]),  # past the end: "a" throughout
    ("[a:b:0.29]", 100, [[28, "a"], [100, "b"]]),  # int(0.29 * 100) == 28, float error and all (A1111)
    ("[a:b:1e400]", 10, [[10, "a"]]),  # too large for a float: no error
    ("[a::3] c", 10, [[3, "a c"], [10, " c"]]),  # [from::when] removes
    ("[cat:dog:-2]", 10, [[10, "dog"]]),
    ("[a:b]", 10, [[10, "[a:b]"]]),  # no number: text (emphasis reads it later)
    ("(a:1.2) [b] \\[c:d:3\\]", 10, [[10, "(a:1.2) [b] \\[c:d:3\\]"]]),  # emphasis and escapes stay
    ("a|b [c:d:3]", 10, [[10, "a|b [c:d:3]"]]),  # a "|" outside [...]: A1111 cannot parse it, all text
    ("[(red:1.2):(blue:0.8):5] BREAK x", 10, [[5, "(red:1.2) BREAK x"], [10, "(blue:0.8) BREAK x"]]),
    # A backslash escapes any character but a newline (lark's `.`): A1111 cannot parse it, all text.
    ("a [b:c:3] \\\nd", 10, [[10, "a [b:c:3] \\\nd"]]),
    ("a [b:c:3] \\\\\nd", 10, [[3, "a b \\\\\nd"], [10, "a c \\\\\nd"]]),  # an escaped backslash, then a newline
])
def test_edge_cases(prompt, steps, expected):
    assert schedule(prompt, steps) == expected


def test_the_step_gets_the_first_entry_that_ends_at_or_after_it():
    """A1111's reconstruct_cond_batch: call k (from 0) reads the first entry with k <= end."""
    edit = prompt_schedule("[a:b:2]", 4)
    assert [text_at_step(edit, k) for k in range(4)] == ["a", "a", "a", "b"]
    alternate = prompt_schedule("[a|b]", 4)
    assert [text_at_step(alternate, k) for k in range(4)] == ["a", "a", "b", "a"]


PROMPT_CHARACTERS = st.lists(st.sampled_from(list("ab [](){}:|\\.,0123456789 -+eE<>") + ["BREAK", "é", "\n"])).map("".join)


@settings(max_examples=300, deadline=None)
@given(PROMPT_CHARACTERS, st.integers(1, 60), st.one_of(st.none(), st.integers(1, 60)))
def test_never_raises_and_ends_at_the_pass_steps(prompt, steps, hires):
    entries = prompt_schedule(prompt, steps, hires)
    assert entries and entries[-1].end_at_step == (hires or steps)
    assert [e.end_at_step for e in entries] == sorted({e.end_at_step for e in entries})


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(1, 60))
def test_any_text_never_raises(prompt, steps):
    assert prompt_schedule(prompt, steps)


@settings(max_examples=300, deadline=None)
@given(st.text().filter(lambda text: "[" not in text and "]" not in text), st.integers(1, 60))
def test_a_prompt_without_square_brackets_is_one_entry_equal_to_itself(prompt, steps):
    assert schedule(prompt, steps) == [[steps, prompt]]


def test_deep_nesting_is_read_as_typed():
    prompt = "(" * 5000 + "a" + ")" * 5000 + " [b:c:3]"
    assert schedule(prompt)[-1][1].startswith("(((")


@pytest.mark.parametrize(("prompt", "steps", "expected"), [
    ("[a:b:0.05]", 20, ["a", "b"]),
    ("x <lora:style:0.5>, y", 20, ["x , y"]),  # extra-network tags are not counted
    ("a cat AND a dog :0.8 AND a cat AND a dog", 20, ["a cat", " a dog", " a cat"]),  # each part once, no weight
    ("[a|b] AND c", 2, ["a", "b", " c"]),
    ("ANDROID", 20, ["ANDROID"]),  # AND only as a word
    ("", 20, [""]),
])
def test_counted_texts_are_a1111s(prompt, steps, expected):
    assert counted_texts(prompt, steps) == expected


@pytest.mark.parametrize(("text", "expected"), [
    # A1111's get_multicond_prompt_list: the part's text as its regex leaves it (leading space kept)
    ("a cat AND a dog :0.8", [("a cat", 1.0), (" a dog", 0.8)]),
    ("a AND b:-0.5 AND c: 1.5", [("a", 1.0), (" b", -0.5), (" c", 1.5)]),
    ("a AND b :.5 AND c :2.", [("a", 1.0), (" b", 0.5), (" c", 2.0)]),
    ("a AND b :+3", [("a", 1.0), (" b", 3.0)]),
    ("a AND b :1e3", [("a", 1.0), (" b :1e3", 1.0)]),  # no exponent: text, weight 1
    ("a AND (b:1.2)", [("a", 1.0), (" (b:1.2)", 1.0)]),  # emphasis is not a part weight
    ("a\nline AND b\n:0.5\n", [("a\nline", 1.0), (" b", 0.5)]),
    ("a AND", [("a", 1.0), ("", 1.0)]),
    ("ANDROID and more", [("ANDROID and more", 1.0)]),  # AND only as a word, in capitals
    ("cat :0.5", [("cat", 0.5)]),  # without AND: one part (A1111 weighs it; the engine leaves it plain)
])
def test_and_parts_are_a1111s(text, expected):
    assert and_parts(text) == expected


A1111_AND = re.compile(r"\bAND\b")  # modules/prompt_parser.py, re_AND and re_weight as A1111 writes them
A1111_WEIGHT = re.compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aAND :.-+0123456789e\n\t([)]")), max_size=30))
def test_and_parts_match_a1111s_regexes(text):
    expected = []
    for part in A1111_AND.split(text):
        match = A1111_WEIGHT.search(part)
        found, weight = match.groups() if match is not None else (part, 1.0)
        expected.append((found, float(weight) if weight is not None else 1.0))
    assert and_parts(text) == expected
