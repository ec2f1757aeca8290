"""A1111's token counter under the prompt box: "37/75", and "92/150" once a second chunk starts.

The count is the engine's own arithmetic (studio.core.generation.prompt_syntax.make_chunks: emphasis
parsed, tags taken out, comma backtrack and BREAK), with the shipped CLIP tokenizer's merges, so
the counter and the encoder agree on where a chunk ends. Embedding names count as the words they
spell (the engine counts their vectors; the window does not open embedding files).

The tokenizer is CLIP's BPE in plain Python (studio.core.generation.clip_bpe), not transformers': building
that one held the GIL in one piece for 45-100 ms, a visible freeze of the GUI thread. Its one
table (merges.txt's ranks, no imports needed) is read by the GUI thread itself in pieces of
~0.4 ms between timer ticks, from half a second after the window opens: a third thread
reading it beside the engine's first generation (when the first count is due) kept the GUI
waiting for the GIL up to 47 ms. The rest (its patterns, the counting) runs in a Python
thread, never on the GUI thread. Counting waits for a 150 ms pause in typing; the newest
count wins.

Nor does the counter start before the engine thread has finished its own imports (the window
calls `engine_ready` when the model has loaded or failed): two threads importing at once froze
the GUI for 50-270 ms (studio.dev.bench_stall). Importing a C extension (the counter needs `regex`
and `unicodedata`; it used to import all of transformers) loads a shared library while holding
the GIL; while the engine thread loads torch's libraries, the dynamic loader's lock is taken, so
the counter waits for it with the GIL in hand and every other Python thread, the GUI's
included, waits too. Once the engine has imported transformers, these imports cost nothing.
Until then the label is blank, never a guess. Counting starts earlier when the artist types in
the prompt (a count asked for is worth the risk of one short stall), and FALLBACK_MS after the
counter was built when no model loads at all (none chosen).

Models that read the prompt with T5 (Flux) count with T5's tokenizer and show its limit
("212/512", no chunks): `use_counter("t5", 512)`. Its vocabulary is read in the count's
thread a piece at a time (studio.core.generation.t5_unigram): the GUI thread waited at most
6-13 ms for the GIL while it was read, where building the `tokenizers` one held it 154 ms.
"""

from __future__ import annotations

import sys
import threading

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QSpinBox, QWidget

from studio.core.generation.clip_bpe import shipped_clip_bpe, shipped_merge_ranks
from studio.core.generation.fields import request_default
from studio.core.generation.prompt_schedule import counted_texts
from studio.core.generation.prompt_syntax import (
    extract_extra_networks,
    make_chunks,
    parse_prompt_attention,
    target_token_count,
)
from studio.core.generation.t5_unigram import EOS_ID, shipped_t5_unigram

DEBOUNCE_MS = 150
# Counting starts this long after the counter is built when the window never says the engine is
# ready (no model chosen): well past the engine's imports (3-6 s on a 2-core machine, warm).
FALLBACK_MS = 15000
THREAD_NAME = "token-counter"
# The tokenizer's rank table is read on the GUI thread a piece (~0.4 ms) per tick of this timer,
# starting this long after the counter is built (the window is on screen by then) and done
# long before the engine has imported torch; then, checked every PREBUILD_POLL_MS, once the
# engine has imported the modules the tokenizer needs, its patterns are compiled (1-5 ms).
# The first count, beside the engine's first generation, has only a few words to look up.
PREBUILD_DELAY_MS = 500
PREBUILD_TICK_MS = 5
PREBUILD_POLL_MS = 100
TOKENIZER_MODULES = ("regex", "unicodedata")

DEFAULT_STEPS = request_default("steps")  # edits resolve at the panel's steps; this without a steps box
CLIP_TOOLTIP = "Tokens in the prompt / what its chunks of 75 hold. Past 75 the prompt is encoded in more chunks."
T5_TOOLTIP = ("T5 tokens in the prompt (with the closing one) / the most this model reads. "
              "Past the limit the end of the prompt is cut off.")

_lock = threading.Lock()  # one tokenizer, used by one count at a time (fast tokenizers are not reentrant)


def count_tokens(text: str, tokenizer=None, steps: int = DEFAULT_STEPS) -> tuple[int, int]:
    """(tokens, the 75-per-chunk target) of a prompt, as A1111 counts them: the longest of the
    texts its steps read (studio.core.generation.prompt_schedule.counted_texts). Call off the GUI
    thread when the counting tokenizer may not be built yet.

    By default the shipped CLIP tokenizer's merges in plain Python (studio.core.generation.clip_bpe: the
    same ids as transformers' CLIPTokenizer, built without holding the GIL for long);
    `tokenizer` may be a transformers tokenizer instead."""
    counts = [_count_text(counted, tokenizer) for counted in counted_texts(text, steps)]
    return max(counts, key=lambda count: count[0])


def _count_text(text: str, tokenizer) -> tuple[int, int]:
    fragments = parse_prompt_attention(text)
    pieces = [piece for piece, _ in fragments]
    with _lock:
        if tokenizer is None:
            bpe = shipped_clip_bpe()
            token_lists = [bpe.encode(piece) for piece in pieces]
            comma, end = bpe.comma_id, bpe.eos_token_id
        else:
            token_lists = tokenizer(pieces, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
            comma, end = tokenizer.convert_tokens_to_ids(",</w>"), tokenizer.eos_token_id
    _, count = make_chunks(fragments, token_lists, comma, end)
    return count, target_token_count(count)


def count_t5_tokens(text: str) -> int:
    """T5 tokens of a prompt as the encoder receives them: each emphasis fragment's tokens (tags
    taken out, weights parsed, as for CLIP) and the closing </s>. Call off the GUI thread."""
    fragments = parse_prompt_attention(extract_extra_networks(text)[0])
    with _lock:
        t5 = shipped_t5_unigram()
        ids = [token for piece, _ in fragments for token in t5.encode(piece)]
    if ids and ids[-1] == EOS_ID:
        return len(ids)
    return len(ids) + 1


def _imported(name: str) -> bool:
    """Whether module `name` is imported and done initializing: importing it again is a lookup,
    with no shared library to load and no import lock to wait for."""
    module = sys.modules.get(name)
    return module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False)


class TokenCounter(QLabel):
    """Shows the token count of `edit`'s text, updated as the artist types."""

    _counted = Signal(int, int, int)  # (count number, tokens, target), emitted in the count thread

    def __init__(self, edit: QPlainTextEdit, parent: QWidget | None = None, steps: QSpinBox | None = None):
        super().__init__("", parent)
        self._steps = steps  # prompt editing ([a:b:0.5]) resolves at these steps, as in A1111
        self.setObjectName("tokenCounter")
        self.setAccessibleName("Prompt tokens")
        self._kind, self._limit = "clip", 75
        self.setToolTip(CLIP_TOOLTIP)
        self._edit = edit
        self._number = 0  # of the newest count asked for
        self._shown = 0  # of the newest count on screen
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._count)
        edit.textChanged.connect(self._text_changed)
        if steps is not None:
            steps.valueChanged.connect(self._timer.start)
        # A bound method of an object living in the GUI thread: Qt queues the call there.
        self._counted.connect(self._show)
        self._ready = False  # whether counting may start (the engine's imports are done)
        self._waiting = False  # a count came due before that
        self._fallback = QTimer(self)
        self._fallback.setSingleShot(True)
        self._fallback.timeout.connect(self.engine_ready)
        self._fallback.start(FALLBACK_MS)
        self._prebuild = QTimer(self)
        self._prebuild.timeout.connect(self._prebuild_step)
        self._prebuild.start(PREBUILD_DELAY_MS)

    def _prebuild_step(self) -> None:
        """The next piece of the tokenizer, on the GUI thread (see PREBUILD_DELAY_MS)."""
        try:
            ranks = shipped_merge_ranks()
            if not ranks.done():
                ranks.step()
                self._prebuild.setInterval(PREBUILD_TICK_MS)
                return
            if not all(_imported(name) for name in TOKENIZER_MODULES):
                self._prebuild.setInterval(PREBUILD_POLL_MS)
                return
            shipped_clip_bpe()
        except Exception:  # noqa: BLE001 - the count, built in its thread, meets the same problem and shows nothing
            pass
        self._prebuild.stop()

    def engine_ready(self, *_event) -> None:
        """Let counting start: the engine thread has imported its libraries (connect it to the
        controller's modelLoaded and modelFailed; their event is ignored). A count that came due
        before runs now. Later calls do nothing."""
        self._fallback.stop()
        self._prebuild.stop()  # what is left is built by the count's thread
        if self._ready:
            return
        self._ready = True
        if self._waiting:
            self._waiting = False
            self._count()

    def use_counter(self, kind: str, limit: int) -> None:
        """Count with "clip" (A1111's chunks of 75) or "t5" (one sequence of `limit` tokens), as
        the chosen model reads its prompt; the shown count is redone at once."""
        if (kind, limit) == (self._kind, self._limit):
            return
        self._kind, self._limit = kind, limit
        self.setToolTip(T5_TOOLTIP if kind == "t5" else CLIP_TOOLTIP)
        self.setText("")  # never the other tokenizer's count
        self._timer.start()

    def counter_kind(self) -> tuple[str, int]:
        return self._kind, self._limit

    def is_ready(self) -> bool:
        return self._ready

    def _text_changed(self) -> None:
        if not self._ready and self._edit.hasFocus():  # the artist is typing: they want the count
            self.engine_ready()
        self._timer.start()

    def busy(self) -> bool:
        """True while a count is due, waiting for the engine or running (for tests)."""
        return self._timer.isActive() or self._waiting or self._shown != self._number

    def _count(self) -> None:
        if not self._ready:
            self._waiting = True  # counted at engine_ready; the label stays blank meanwhile
            return
        self._number += 1
        steps = self._steps.value() if self._steps is not None else DEFAULT_STEPS
        threading.Thread(target=self._run, args=(self._number, self._edit.toPlainText(), steps, self._kind, self._limit),
                         name=THREAD_NAME, daemon=True).start()

    def _run(self, number: int, text: str, steps: int = DEFAULT_STEPS, kind: str = "clip", limit: int = 75) -> None:
        try:
            if kind == "t5":  # the longest text its steps read, as for CLIP
                count, target = max(count_t5_tokens(counted) for counted in counted_texts(text, steps)), limit
            else:
                count, target = count_tokens(text, steps=steps)
        except Exception:  # noqa: BLE001 - a counter that fails shows nothing; the prompt still works
            count, target = -1, 0
        try:
            self._counted.emit(number, count, target)
        except RuntimeError:  # the window closed mid-count and took this label with it
            pass

    @Slot(int, int, int)
    def _show(self, number: int, count: int, target: int) -> None:
        if number != self._number:
            return  # an older count finishing late must not undo a newer one
        self._shown = number
        self.setText(f"{count}/{target}" if count >= 0 else "")
