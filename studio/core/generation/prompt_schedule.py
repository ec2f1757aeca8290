"""A1111's prompt editing `[from:to:when]` and alternation `[a|b]`: which text each step reads.

A1111 (modules/prompt_parser.py, get_learned_conditioning_prompt_schedules) parses a prompt with
a small grammar and turns it into a schedule: a list of (end_at_step, text), the text with every
edit and alternation resolved for the steps up to end_at_step. Its sampler then gives the
denoiser call numbered k (0, 1, 2, ... within a pass) the first entry with k <= end_at_step
(prompt_parser.reconstruct_cond_batch). This module is that, written anew without lark:

    start:     (prompt | literal "[", "]", "(", ")" or ":")*      a stray "|" or "\\": no schedule
    prompt:    (emphasized | scheduled | alternate | plain | whitespace)*
    emphasized "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"     (kept as written)
    scheduled  "[" [prompt ":"] prompt ":" [ws] NUMBER [ws] "]"
    alternate  "[" prompt ("|" prompt)+ "]"
    plain      any text without \\ [ ] ( ) : |, and backslash escapes (not of a newline)

Where a bracket could be read both ways, the structure wins (A1111's doctests: "a [b:3]" is an
edit, "a [unbalanced" is text). A prompt the grammar cannot read at all is one entry, as typed.

`when`, with A1111's default ("new") scheduling: a number with a "." is a fraction of the steps,
`int(when * steps)`; without, a step number. For the hires fix's second pass A1111 counts on
from the first pass: a fraction in [1, 2) is a fraction of the hires steps (`(when - 1) *
hires_steps`), a step number has the first pass's steps taken off. An edit at a step under 1 has
already happened. `[a|b]` gives entry t the option (t - 1) % n, for t in 1..steps.

Emphasis and everything else stay in the texts as typed (studio.core.generation.prompt_syntax reads them
later), and a prompt without an edit or alternation gives exactly one entry: itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from studio.core.generation.prompt_syntax import extract_extra_networks

NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # lark's SIGNED_NUMBER
WHITESPACE = re.compile(r"\s*")
PLAIN = re.compile(r"(?:[^\\\[\]():|]|\\.)+")  # lark's `.`: an escaped newline is no escape
LITERAL = "[]():"  # what the top level may hold as plain characters when no structure fits


@dataclass(frozen=True)
class ScheduleEntry:
    end_at_step: int  # this text serves the steps up to and including this one
    text: str


@dataclass(frozen=True)
class _Edit:  # [before:after:when]
    before: tuple | None
    after: tuple
    when: str  # as typed: whether it has a "." decides its meaning


@dataclass(frozen=True)
class _Alternate:  # [a|b|c]
    options: tuple[tuple, ...]


# A parsed prompt is a tuple of parts: str, _Edit or _Alternate.


def prompt_schedule(prompt: str, steps: int, hires_steps: int | None = None) -> list[ScheduleEntry]:
    """A1111's schedule of `prompt` for a pass of `steps` sampler steps; with `hires_steps`, the
    schedule of the hires fix's second pass (`hires_steps` steps after a first pass of `steps`).
    Never raises; the last entry ends at the pass's steps."""
    total = hires_steps if hires_steps is not None else steps
    total = max(1, total)
    tree = _parse(prompt)
    if tree is None:
        return [ScheduleEntry(total, prompt)]

    def when_of(edit: _Edit) -> int:
        return _when(edit.when, steps, hires_steps)

    ends = {total}
    for node in _walk(tree):
        if isinstance(node, _Edit):
            when = when_of(node)
            if when >= 1:
                ends.add(when)
        elif isinstance(node, _Alternate):
            ends.update(range(1, total + 1))
    return [ScheduleEntry(end, _render(tree, end, when_of)) for end in sorted(ends)]


def text_at_step(schedule: list[ScheduleEntry], step_index: int) -> str:
    """The text of the denoiser call `step_index` (0-based within the pass), A1111's choice: the
    first entry that ends at or after it. So `[a:b:2]` gives calls 0, 1 and 2 "a"."""
    return schedule[entry_index(schedule, step_index)].text


def entry_index(schedule: list[ScheduleEntry], step_index: int) -> int:
    for index, entry in enumerate(schedule):
        if step_index <= entry.end_at_step:
            return index
    return len(schedule) - 1  # past the schedule's end (a sampler with extra calls): the last


# A1111's composable-diffusion split (prompt_parser.get_multicond_prompt_list): parts between
# the word AND, each with an optional ":weight" at its end. `(?:\s|.)` there is any character.
AND_WORD = re.compile(r"\bAND\b")
AND_WEIGHT = re.compile(r"^(.*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$", re.DOTALL)


def and_parts(text: str) -> list[tuple[str, float]]:
    """(text, weight) of each part of a prompt (its extra-network tags already out) between the
    word AND, in order, repeats kept: `a cat AND a dog :0.8` -> [("a cat", 1.0), (" a dog", 0.8)].
    A prompt without AND is one part."""
    parts = []
    for part in AND_WORD.split(text):
        match = AND_WEIGHT.search(part)
        if match is None:  # never for this pattern; A1111 keeps such a part whole
            parts.append((part, 1.0))
        else:
            parts.append((match.group(1), float(match.group(2)) if match.group(2) is not None else 1.0))
    return parts


def counted_texts(prompt: str, steps: int) -> list[str]:
    """The texts A1111's token counter counts for a prompt (ui.update_token_counter), whose
    longest it shows: extra-network tags taken out, the prompt split on AND (each part without
    its ":weight"), and each part's edits and alternations resolved at every step of `steps`."""
    parts = dict.fromkeys(part for part, _ in and_parts(extract_extra_networks(prompt)[0]))
    return [entry.text for part in parts for entry in prompt_schedule(part, steps)]


def _when(typed: str, steps: int, hires_steps: int | None) -> int:
    value = float(typed)
    if hires_steps is None:
        total = steps
        value = value * steps if "." in typed else value
    else:
        total = hires_steps
        value = (value - 1.0) * hires_steps if "." in typed else value - steps
    # min(total, int(value)) as A1111; clamped first so that 1e400 (inf) cannot raise. Every
    # value under 1 acts alike (the edit has happened), so -1 stands for all of them.
    return int(max(-1.0, min(float(total), value)))


def _walk(parts: tuple):
    for part in parts:
        if isinstance(part, _Edit):
            yield part
            if part.before is not None:
                yield from _walk(part.before)
            yield from _walk(part.after)
        elif isinstance(part, _Alternate):
            yield part
            for option in part.options:
                yield from _walk(option)


def _render(parts: tuple, step: int, when_of) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, _Edit):
            chosen = part.before if step <= when_of(part) else part.after
            if chosen is not None:
                out.append(_render(chosen, step, when_of))
        else:
            out.append(_render(part.options[(step - 1) % len(part.options)], step, when_of))
    return "".join(out)


# --- parsing -----------------------------------------------------------------------------------


def _parse(text: str) -> tuple | None:
    """The prompt's parts, or None where A1111's grammar cannot read it (it is then one entry)."""
    try:
        return _Parser(text).start()
    except RecursionError:  # brackets nested hundreds deep: no real prompt; read it as typed
        return None


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.memo: dict[int, tuple[tuple, int] | None] = {}  # bracket at position -> (parts, end)

    def start(self) -> tuple | None:
        text, position, parts = self.text, 0, []
        while True:
            prompt, position = self.prompt(position)
            parts.extend(prompt)
            if position >= len(text):
                return tuple(parts)
            if text[position] not in LITERAL:
                return None  # a "|" outside [...], or a backslash that ends the prompt
            parts.append(text[position])
            position += 1

    def prompt(self, position: int) -> tuple[tuple, int]:
        """As many prompt items as fit from `position`: (parts, where they end)."""
        text, parts = self.text, []
        while position < len(text):
            char = text[position]
            if char in "([":
                found = self.bracket(position)
                if found is None:
                    break
                bracket, position = found
                parts.extend(bracket)
                continue
            match = PLAIN.match(text, position)
            if match is None:
                break  # ) ] : | or a lone backslash at the end
            parts.append(match.group())
            position = match.end()
        return tuple(parts), position

    def bracket(self, position: int) -> tuple[tuple, int] | None:
        if position not in self.memo:
            self.memo[position] = self._bracket(position)
        return self.memo[position]

    def _at(self, position: int) -> str:
        return self.text[position] if position < len(self.text) else ""

    def _bracket(self, position: int) -> tuple[tuple, int] | None:
        opener = self.text[position]
        first, end = self.prompt(position + 1)
        after = self._at(end)
        if opener == "(":
            if after == ")":
                return ("(", *first, ")"), end + 1
            if after == ":":
                second, close = self.prompt(end + 1)
                if self._at(close) == ")":
                    return ("(", *first, ":", *second, ")"), close + 1
            return None
        if after == "]":
            return ("[", *first, "]"), end + 1  # de-emphasis, kept as written
        if after == "|":
            options = [first]
            while self._at(end) == "|":
                option, end = self.prompt(end + 1)
                options.append(option)
            if self._at(end) == "]":
                return (_Alternate(tuple(options)),), end + 1
            return None
        if after == ":":
            found = self._number(end + 1)  # [to:when]
            if found is not None:
                when, close = found
                return (_Edit(None, first, when),), close
            second, colon = self.prompt(end + 1)  # [from:to:when]
            if self._at(colon) == ":":
                found = self._number(colon + 1)
                if found is not None:
                    when, close = found
                    return (_Edit(first, second, when),), close
        return None

    def _number(self, position: int) -> tuple[str, int] | None:
        """`[ws] NUMBER [ws] "]"` from `position`: (the number as typed, the position after "]")."""
        position = WHITESPACE.match(self.text, position).end()
        match = NUMBER.match(self.text, position)
        if match is None:
            return None
        close = WHITESPACE.match(self.text, match.end()).end()
        if self._at(close) != "]":
            return None
        return match.group(), close + 1
