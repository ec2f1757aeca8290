"""A1111's prompt language, parsed without torch.

Extra networks first: A1111 takes `<kind:args>` tags (`<lora:name:0.8>`, `<hypernet:...>`) out of
the prompt before anything else reads it (modules/extra_networks.py, `re_extra_net`); the tags
stay in the saved prompt text, so an image's prompt can be pasted back as it was.

Then emphasis (`parse_prompt_attention`: weighted fragments and BREAK) and chunks of 75 tokens
(`make_chunks`: pure token arithmetic, shared by the engine's encoder and the window's counter).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")  # A1111's re_extra_net


@dataclass(frozen=True)
class ExtraNetwork:
    kind: str  # "lora", "hypernet", ...
    args: tuple[str, ...]  # the text between the colons: name, then weights


def extract_extra_networks(text: str) -> tuple[str, list[ExtraNetwork]]:
    """(the prompt without its extra-network tags, the tags in order of appearance)."""
    found: list[ExtraNetwork] = []

    def take(match: re.Match) -> str:
        found.append(ExtraNetwork(match.group(1), tuple(match.group(2).split(":"))))
        return ""

    return EXTRA_NETWORK.sub(take, text), found


# --- Emphasis: A1111's parse_prompt_attention (modules/prompt_parser.py) ---------------------
#
# The tokens of A1111's re_attention, in its order: escapes, openers, a closing weight
# ":1.3)" (spaces allowed around the number since A1111 1.7), closers, plain text, a lone colon.
ATTENTION = re.compile(
    r"""
    \\\( | \\\) | \\\[ | \\\] | \\\\ | \\   # escapes (a lone backslash too)
    | \( | \[                              # openers
    | :\s*([+-]?[.\d]+)\s*\)               # closes a ( with an explicit weight
    | \) | \]                              # closers
    | [^\\()\[\]:]+                        # plain text
    | :                                    # a colon that is not a weight
    """,
    re.VERBOSE,
)
BREAK_WORD = re.compile(r"\s*\bBREAK\b\s*", re.DOTALL)  # A1111's re_break
ROUND = 1.1  # (x)
SQUARE = 1 / 1.1  # [x]
BREAK = ("BREAK", -1.0)  # the marker A1111 puts between chunks
# Every weight stays within -MAX_EMPHASIS..MAX_EMPHASIS as it is multiplied. A1111 has no limit:
# `(x:99999)` or a thousand nested brackets overflow half precision (and 1.1**7500 even a
# double) and its image comes out NaN, so past this range it makes no picture at all. Within
# it nothing changes: after the mean is restored a token at 100 already drowns the rest.
MAX_EMPHASIS = 100.0


def _held(weight: float) -> float:
    """The weight within -MAX_EMPHASIS..MAX_EMPHASIS (the same float when it is)."""
    return min(max(weight, -MAX_EMPHASIS), MAX_EMPHASIS)


def is_break(fragment: tuple[str, float]) -> bool:
    return fragment[0] == BREAK[0] and fragment[1] == BREAK[1]


class _Runs:
    """The fragments' weights as runs of neighbours that share one weight.

    A closing bracket multiplies every fragment from its opener to the end, in the order the
    brackets close (A1111's order, so every weight is the same float A1111 computes). Fragments
    of one run have the same weight and receive the same factors from then on, so a run is
    multiplied once, not fragment by fragment: `(a` ten thousand times costs one split per
    bracket instead of fifty million multiplications. A BREAK marker joins whatever run it
    falls in: brackets never weigh it, so its number here is never read."""

    def __init__(self) -> None:
        self.starts: list[int] = []  # first fragment of each run, ascending
        self.values: list[float] = []
        self.count = 0  # fragments so far

    def append(self, is_break: bool = False) -> None:
        """One more fragment of weight 1 (a BREAK marker when `is_break`)."""
        if self.values and (is_break or self.values[-1] == 1.0):
            self.count += 1  # the last run has the same weight and gets the same factors
            return
        self.starts.append(self.count)
        self.values.append(1.0)
        self.count += 1

    def multiply_from(self, start: int, factor: float) -> None:
        """Multiply every fragment from index `start` on by `factor`."""
        if start >= self.count:
            return
        run = bisect.bisect_right(self.starts, start) - 1
        if self.starts[run] < start:  # the run straddles `start`: split it
            run += 1
            self.starts.insert(run, start)
            self.values.insert(run, self.values[run - 1])
        values = self.values
        for index in range(run, len(values)):
            values[index] = _held(values[index] * factor)
        # Neighbours that now share a weight merge: what follows treats them alike.
        head = max(run, 1)
        keep = [index for index in range(head, len(values)) if values[index] != values[index - 1]]
        if len(keep) < len(values) - head:
            self.starts[head:] = [self.starts[i] for i in keep]
            self.values[head:] = [values[i] for i in keep]

    def expand(self) -> list[float]:
        """One weight per fragment."""
        weights: list[float] = []
        ends = self.starts[1:] + [self.count] if self.starts else []
        for start, end, value in zip(self.starts, ends, self.values, strict=True):
            weights.extend([value] * (end - start))
        return weights


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """The prompt as (text, weight) fragments, A1111's way: `(x)` x1.1, `[x]` /1.1, `(x:1.3)`,
    escapes `\\( \\) \\[ \\] \\\\`, `BREAK` as its own fragment ("BREAK", -1), brackets left
    open apply to the rest of the prompt, neighbours of equal weight merged. Never raises.

    Two of A1111's bugs are not copied: a BREAK inside brackets had its -1 multiplied (so it was
    read as the word "BREAK" with a negative weight), and a malformed weight like `(x:1.2.3)`
    raised; here BREAK stays a break and a malformed weight is plain text.
    """
    texts: list[str] = []  # the fragments' text; BREAK markers are None
    weights = _Runs()
    round_open: list[int] = []  # index of the first fragment inside each open "("
    square_open: list[int] = []

    def add_text(piece: str) -> None:
        for i, part in enumerate(BREAK_WORD.split(piece)):
            if i:
                texts.append(None)
                weights.append(is_break=True)
            texts.append(part)
            weights.append()

    for match in ATTENTION.finditer(text):
        token, number = match.group(0), match.group(1)
        if token.startswith("\\"):
            texts.append(token[1:])
            weights.append()
        elif token == "(":
            round_open.append(len(texts))
        elif token == "[":
            square_open.append(len(texts))
        elif number is not None and round_open:
            try:
                weight = _held(float(number))  # "9" * 400 reads as infinity
            except ValueError:  # "1.2.3", "." : A1111 raises here
                add_text(token[:-1])
                weights.multiply_from(round_open.pop(), ROUND)
            else:
                weights.multiply_from(round_open.pop(), weight)
        elif token == ")" and round_open:
            weights.multiply_from(round_open.pop(), ROUND)
        elif token == "]" and square_open:
            weights.multiply_from(square_open.pop(), SQUARE)
        else:
            add_text(token)

    for start in round_open:
        weights.multiply_from(start, ROUND)
    for start in square_open:
        weights.multiply_from(start, SQUARE)
    fragments: list[list] = [
        list(BREAK) if piece is None else [piece, weight] for piece, weight in zip(texts, weights.expand(), strict=True)
    ]
    if not fragments:
        fragments = [["", 1.0]]

    merged: list[list] = [fragments[0]]
    for fragment in fragments[1:]:
        if fragment[1] == merged[-1][1] and not is_break(tuple(merged[-1])) and not is_break(tuple(fragment)):
            merged[-1][0] += fragment[0]
        else:
            merged.append(fragment)
    return [(piece, float(weight)) for piece, weight in merged]


# --- Chunks: A1111's FrozenCLIPEmbedderWithCustomWordsBase.tokenize_line (sd_hijack_clip.py) ---
#
# Pure token arithmetic, shared by the engine (which encodes the chunks) and the window's token
# counter (which only counts them), so the two can never disagree about where a chunk ends.

CHUNK_LENGTH = 75  # CLIP's 77 positions less the start and end tokens
COMMA_BACKTRACK = 20  # A1111's comma_padding_backtrack default


@dataclass
class PromptChunk:
    """75 prompt tokens (end-token padded), one weight per token, and where embeddings go.

    `fixes` holds (offset among the 75, embedding): the embedding's vectors replace the token
    embeddings from that offset on (its slots hold placeholder tokens)."""

    tokens: list[int]
    weights: list[float]
    fixes: list[tuple[int, object]]


# (embedding, how many prompt tokens its name took, how many vectors it has) or None
EmbeddingFinder = Callable[[list[int], int], "tuple[object, int, int] | None"]


def make_chunks(
    fragments: list[tuple[str, float]],
    token_lists: list[list[int]],
    comma_id: int | None,
    end_id: int,
    find_embedding: EmbeddingFinder | None = None,
    placeholder_id: int = 0,
    backtrack: int = COMMA_BACKTRACK,
    length: int = CHUNK_LENGTH,
) -> tuple[list[PromptChunk], int]:
    """(chunks, token count) of a parsed prompt whose fragments tokenized to `token_lists`.

    A chunk that would overflow ends after its last comma when that comma is within the final
    `backtrack` tokens (the words after it move to the next chunk); BREAK ends a chunk early.
    The token count is A1111's: every finished chunk counts 75, the last one its real length
    (so "92/150" reads as 75 tokens in chunk one and 17 in chunk two). `length` is smaller for
    a text encoder with fewer than 77 positions (the bundled demo model has 32).
    """
    chunks: list[PromptChunk] = []
    tokens: list[int] = []
    weights: list[float] = []
    fixes: list[tuple[int, object]] = []
    count = 0
    last_comma = -1

    def finish(is_last: bool = False) -> None:
        nonlocal tokens, weights, fixes, count, last_comma
        count += len(tokens) if is_last else length
        missing = length - len(tokens)
        chunks.append(PromptChunk(tokens + [end_id] * missing, weights + [1.0] * missing, fixes))
        tokens, weights, fixes, last_comma = [], [], [], -1

    for ids, fragment in zip(token_lists, fragments, strict=False):
        if is_break(fragment):
            finish()
            continue
        weight = fragment[1]
        position = 0
        while position < len(ids):
            token = ids[position]
            if token == comma_id:
                last_comma = len(tokens)
            elif backtrack and len(tokens) == length and last_comma != -1 and len(tokens) - last_comma <= backtrack:
                cut = last_comma + 1
                moved = tokens[cut:], weights[cut:], [(o - cut, e) for o, e in fixes if o >= cut]
                tokens, weights, fixes = tokens[:cut], weights[:cut], [(o, e) for o, e in fixes if o < cut]
                finish()
                tokens, weights, fixes = list(moved[0]), list(moved[1]), moved[2]
            if len(tokens) == length:
                finish()
            found = find_embedding(ids, position) if find_embedding else None
            if found is None:
                tokens.append(token)
                weights.append(weight)
                position += 1
                continue
            embedding, name_length, vectors = found
            if len(tokens) + vectors > length:
                finish()
            fixes.append((len(tokens), embedding))
            tokens += [placeholder_id] * vectors
            weights += [weight] * vectors
            position += name_length
    if tokens or not chunks:
        finish(is_last=True)
    return chunks, count


def target_token_count(count: int) -> int:
    """The counter's denominator: 75 per chunk the prompt needs ("37/75", "92/150")."""
    return -(-max(count, 1) // CHUNK_LENGTH) * CHUNK_LENGTH
