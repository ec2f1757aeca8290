"""The token counter under the prompt box: A1111's "37/75" and "92/150", live and off the GUI thread."""

import time

import pytest
from PySide6.QtWidgets import QPlainTextEdit

from studio.ui import token_counter
from studio.ui.generation_panel import GenerationPanel
from studio.ui.token_counter import TokenCounter, count_tokens

WORDS = ["red", "green", "blue", "circle", "square", "left", "right", "cat", "dog", "tree", "house", "sky"]


def _words(n):
    return " ".join(WORDS[i % len(WORDS)] for i in range(n))


def test_counts_as_a1111():
    assert count_tokens("") == (0, 75)
    assert count_tokens("a red circle") == (3, 75)
    assert count_tokens("a (red:1.3) [circle] <lora:style:0.8>") == (3, 75)  # syntax and tags are not tokens
    assert count_tokens(_words(75)) == (75, 75)
    assert count_tokens(_words(92)) == (92, 150)
    assert count_tokens("a red circle BREAK blue") == (76, 150)  # BREAK fills the first chunk
    # A comma within the last 20 tokens moves the words after it: the first chunk counts 75.
    assert count_tokens(f"{_words(70)}, {_words(10)}") == (85, 150)


def test_panel_shows_the_count_live(qtbot):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    counter = panel.findChild(TokenCounter, "tokenCounter")
    assert counter is panel.token_counter
    panel.prompt.setPlainText("a red circle")
    qtbot.waitUntil(lambda: counter.text() == "3/75", timeout=15000)
    panel.prompt.setPlainText(_words(92))
    qtbot.waitUntil(lambda: counter.text() == "92/150", timeout=5000)


def test_typing_is_debounced_and_the_newest_count_wins(qtbot):
    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    counter = TokenCounter(edit, edit)
    for i in range(1, 8):  # keystrokes faster than the debounce
        edit.setPlainText(_words(i))
    assert counter.busy() and counter.text() == ""
    qtbot.waitUntil(lambda: not counter.busy(), timeout=15000)
    assert counter._number == 1  # one count, of the last text
    assert counter.text() == "7/75"
    # A slow, older count arriving after a newer one is ignored.
    counter._show(counter._number - 1, 999, 1050)
    assert counter.text() == "7/75"


def test_gui_thread_never_tokenizes(qtbot, monkeypatch):
    import threading

    threads = []
    real = token_counter.count_tokens
    monkeypatch.setattr(token_counter, "count_tokens", lambda text: (threads.append(threading.current_thread()), real(text))[1])
    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    counter = TokenCounter(edit, edit)
    edit.setPlainText("a red circle")
    qtbot.waitUntil(lambda: counter.text() == "3/75", timeout=15000)
    assert threads and all(t is not threading.main_thread() for t in threads)


@pytest.mark.slow
def test_a_2000_character_prompt_counts_in_milliseconds():
    text = ("masterpiece, (best quality:1.2), a [red] circle on the left, BREAK green square, " * 30)[:2000]
    count_tokens(text)  # the tokenizer loaded
    started = time.perf_counter()
    for _ in range(10):
        count_tokens(text)
    assert (time.perf_counter() - started) / 10 < 0.05
