"""Prompt bombs: emphasis parsing stays linear in the prompt, and the weights it gives are the very
floats A1111's fragment-by-fragment multiplication gives (a different rounding would change
which neighbours merge, and so the tokens)."""

from __future__ import annotations

import random
import time

from studio.core.generation.prompt_syntax import ATTENTION, BREAK, BREAK_WORD, MAX_EMPHASIS, ROUND, SQUARE, parse_prompt_attention


def _a1111_weights(text: str) -> list[tuple[str, float]]:
    """A1111's parse_prompt_attention as this module had it: every closing bracket multiplies
    each fragment after its opener, one by one (quadratic, but the reference for the floats)."""
    fragments: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply_from(start: int, factor: float) -> None:
        for fragment in fragments[start:]:
            if fragment[1] != BREAK[1] or fragment[0] != BREAK[0]:
                fragment[1] *= factor

    def add_text(piece: str) -> None:
        for i, part in enumerate(BREAK_WORD.split(piece)):
            if i:
                fragments.append(list(BREAK))
            fragments.append([part, 1.0])

    for match in ATTENTION.finditer(text):
        token, number = match.group(0), match.group(1)
        if token.startswith("\\"):
            fragments.append([token[1:], 1.0])
        elif token == "(":
            round_open.append(len(fragments))
        elif token == "[":
            square_open.append(len(fragments))
        elif number is not None and round_open:
            try:
                weight = float(number)
            except ValueError:
                add_text(token[:-1])
                multiply_from(round_open.pop(), ROUND)
            else:
                multiply_from(round_open.pop(), weight)
        elif token == ")" and round_open:
            multiply_from(round_open.pop(), ROUND)
        elif token == "]" and square_open:
            multiply_from(square_open.pop(), SQUARE)
        else:
            add_text(token)
    for start in round_open:
        multiply_from(start, ROUND)
    for start in square_open:
        multiply_from(start, SQUARE)
    if not fragments:
        fragments = [["", 1.0]]
    merged = [fragments[0]]
    for fragment in fragments[1:]:
        breaks = merged[-1] == list(BREAK) or fragment == list(BREAK)
        if fragment[1] == merged[-1][1] and not breaks:
            merged[-1][0] += fragment[0]
        else:
            merged.append(fragment)
    return [(piece, float(weight)) for piece, weight in merged]


def test_ten_thousand_unclosed_brackets_parse_in_linear_time():
    started = time.perf_counter()
    fragments = parse_prompt_attention("(a" * 10_000)
    took = time.perf_counter() - started
    assert took < 1.0, f"(a x 10,000 took {took:.1f} s"  # quadratic: 11-15 s
    assert fragments[0] == ("a", ROUND)
    # Weights grow until they reach the most emphasis takes, then the rest is one fragment at it.
    assert fragments[-1] == ("a" * (10_000 - len(fragments) + 1), MAX_EMPHASIS) and len(fragments) == 49
    weight = 1.0
    for _ in range(3):
        weight *= ROUND
    assert fragments[2] == ("a", weight)  # the third "a" sits inside three brackets


def test_other_bracket_bombs_stay_fast():
    for bomb in ("(" * 50_000 + "a", "[a" * 10_000, "((a)" * 5_000, "(a:1.1)" * 10_000, "(a BREAK " * 5_000):
        started = time.perf_counter()
        parse_prompt_attention(bomb)
        assert time.perf_counter() - started < 1.0, bomb[:12]


def test_weights_are_a1111s_floats_for_random_bracket_soup():
    rng = random.Random(7)
    pieces = ["(", ")", "[", "]", "a", "b ", ":1.3)", ":0.5)", ":x)", "\\(", " BREAK ", ",", ":", "((", "]]"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        assert parse_prompt_attention(text) == _a1111_weights(text), text
