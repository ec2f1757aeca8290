"""A1111's token counter under the prompt box: "37/75", and "92/150" once a second chunk starts.

The count is the engine's own arithmetic (studio.core.prompt_syntax.make_chunks: emphasis
parsed, tags taken out, comma backtrack and BREAK), with the shipped CLIP tokenizer, so the
counter and the encoder agree on where a chunk ends. Embedding names count as the words they
spell (the engine counts their vectors; the window does not open embedding files).

The tokenizer lives in transformers, which takes a second or two to import; it is imported and
used in a Python thread, never on the GUI thread, and not before the first count is due, so the
window opens as fast as before. Counting waits for a 150 ms pause in typing; the newest count
wins.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QWidget

from studio.core.prompt_syntax import (
    extract_extra_networks,
    make_chunks,
    parse_prompt_attention,
    target_token_count,
)

DEBOUNCE_MS = 150
THREAD_NAME = "token-counter"

_lock = threading.Lock()  # one tokenizer, used by one count at a time (fast tokenizers are not reentrant)
_tokenizer = None


def _shared_tokenizer():
    global _tokenizer
    if _tokenizer is None:
        # transformers, not torch: still a second or two to import, hence this thread
        from studio.engine.clip_tokenizers import clip_tokenizer

        _tokenizer = clip_tokenizer()
    return _tokenizer


def count_tokens(text: str, tokenizer=None) -> tuple[int, int]:
    """(tokens, the 75-per-chunk target) of a prompt, as A1111 counts them. Call off the GUI
    thread when the tokenizer may not be loaded yet."""
    with _lock:
        tokenizer = tokenizer or _shared_tokenizer()
        fragments = parse_prompt_attention(extract_extra_networks(text)[0])
        token_lists = tokenizer([piece for piece, _ in fragments], add_special_tokens=False, truncation=False, verbose=False)[
            "input_ids"
        ]
        comma = tokenizer.convert_tokens_to_ids(",</w>")
    _, count = make_chunks(fragments, token_lists, comma, tokenizer.eos_token_id)
    return count, target_token_count(count)


class TokenCounter(QLabel):
    """Shows the token count of `edit`'s text, updated as the artist types."""

    _counted = Signal(int, int, int)  # (count number, tokens, target), emitted in the count thread

    def __init__(self, edit: QPlainTextEdit, parent: QWidget | None = None):
        super().__init__("", parent)
        self.setObjectName("tokenCounter")
        self.setAccessibleName("Prompt tokens")
        self.setToolTip("Tokens in the prompt / what its chunks of 75 hold. Past 75 the prompt is encoded in more chunks.")
        self._edit = edit
        self._number = 0  # of the newest count asked for
        self._shown = 0  # of the newest count on screen
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._count)
        edit.textChanged.connect(self._timer.start)
        # A bound method of an object living in the GUI thread: Qt queues the call there.
        self._counted.connect(self._show)

    def busy(self) -> bool:
        """True while a count is due or running (for tests)."""
        return self._timer.isActive() or self._shown != self._number

    def _count(self) -> None:
        self._number += 1
        threading.Thread(target=self._run, args=(self._number, self._edit.toPlainText()), name=THREAD_NAME, daemon=True).start()

    def _run(self, number: int, text: str) -> None:
        try:
            count, target = count_tokens(text)
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
