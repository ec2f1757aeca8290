"""The token counter under the prompt box: A1111's "37/75" and "92/150", live and off the GUI
thread, and not before the engine thread's imports are done."""

import subprocess
import sys
import threading
import time

import pytest
from PySide6.QtWidgets import QPlainTextEdit

from studio.core.generation.clip_bpe import MergeRanks
from studio.core.storage.paths import resources_dir
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


@pytest.mark.parametrize(("prompt", "steps", "count"), [
    ("[a:b:0.05]", 20, 1),  # edits resolved: "a" then "b", not the brackets and the number
    ("[cloud:0.9] solo masterpiece (masterpiece:1.2) <lora:add_detail:0.5>", 20, 4),
    ("a red circle AND a blue square :0.8", 20, 3),  # the longest part of an AND, its weight not counted
    ("[a red circle|blue]", 20, 3),  # alternation: the longest option
    ("[red circle:a much longer text than before:5]", 20, 6),
    ("x [g:a b c d e f:2]", 1, 2),  # at 1 step an edit at step 2 never happens: "x g" only
])
def test_counts_the_syntax_as_a1111_resolves_it(prompt, steps, count):
    assert count_tokens(prompt, steps=steps) == (count, 75)


def test_the_count_follows_the_panels_steps(qtbot):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    counter = panel.token_counter
    counter.engine_ready()
    panel.steps.setValue(20)
    panel.prompt.setPlainText("[a b c d e f g h:x:0.5]")  # "a ... h" for steps 1-10 at 20 steps
    qtbot.waitUntil(lambda: counter.text() == "8/75", timeout=15000)
    panel.steps.setValue(1)  # int(0.5 * 1) = 0: the edit has happened before the first step
    qtbot.waitUntil(lambda: counter.text() == "1/75", timeout=5000)


def test_panel_shows_the_count_live(qtbot):
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    counter = panel.findChild(TokenCounter, "tokenCounter")
    assert counter is panel.token_counter
    counter.engine_ready()
    panel.prompt.setPlainText("a red circle")
    qtbot.waitUntil(lambda: counter.text() == "3/75", timeout=15000)
    panel.prompt.setPlainText(_words(92))
    qtbot.waitUntil(lambda: counter.text() == "92/150", timeout=5000)


def test_typing_is_debounced_and_the_newest_count_wins(qtbot):
    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    counter = TokenCounter(edit, edit)
    counter.engine_ready()
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
    threads = []
    real = token_counter.count_tokens
    monkeypatch.setattr(token_counter, "count_tokens",
                        lambda text, **kw: (threads.append(threading.current_thread()), real(text, **kw))[1])
    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    counter = TokenCounter(edit, edit)
    counter.engine_ready()
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


def _recording_counts(monkeypatch) -> list[str]:
    asked: list[str] = []
    real = token_counter.count_tokens
    monkeypatch.setattr(token_counter, "count_tokens", lambda text, **kw: (asked.append(text), real(text, **kw))[1])
    return asked


def test_nothing_is_counted_before_the_engine_is_ready(qtbot, monkeypatch):
    asked = _recording_counts(monkeypatch)
    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    counter = TokenCounter(edit, edit)
    edit.setPlainText("a red circle")  # a restored prompt, as the window loads its settings
    qtbot.wait(token_counter.DEBOUNCE_MS * 3)
    assert asked == [] and counter.text() == "" and counter.busy()  # blank, never a guess
    counter.engine_ready(object())  # as connected to modelLoaded/modelFailed: their event ignored
    qtbot.waitUntil(lambda: counter.text() == "3/75", timeout=15000)
    assert asked == ["a red circle"] and not counter.busy()
    counter.engine_ready()  # a later model load changes nothing
    edit.setPlainText(_words(92))
    qtbot.waitUntil(lambda: counter.text() == "92/150", timeout=5000)


def test_counting_starts_without_a_model_after_the_fallback(qtbot, monkeypatch):
    monkeypatch.setattr(token_counter, "FALLBACK_MS", 300)
    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    counter = TokenCounter(edit, edit)
    edit.setPlainText("a red circle")
    qtbot.wait(150)
    assert not counter.is_ready() and counter.text() == ""
    qtbot.waitUntil(lambda: counter.text() == "3/75", timeout=15000)
    assert counter.is_ready()


def test_typing_in_the_prompt_starts_counting_at_once(qtbot, monkeypatch):
    asked = _recording_counts(monkeypatch)
    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    counter = TokenCounter(edit, edit)
    edit.show()
    qtbot.waitExposed(edit)
    edit.activateWindow()
    edit.setFocus()
    qtbot.waitUntil(edit.hasFocus, timeout=5000)
    qtbot.keyClicks(edit, "a red circle")
    qtbot.waitUntil(lambda: counter.text() == "3/75", timeout=15000)
    assert asked[-1] == "a red circle"


def test_counting_never_imports_transformers():
    """The counter's tokenizer is plain Python: building it froze the GUI thread when it was
    transformers' (45-100 ms holding the GIL), and importing transformers beside the engine's
    imports froze it for up to 270 ms."""
    code = ("import sys; from studio.ui.token_counter import count_tokens; "
            "assert count_tokens('a red circle, (blue:1.2)') == (5, 75); "
            "print(sorted(m for m in ('transformers', 'tokenizers', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_rank_table_is_read_on_the_gui_thread_in_short_pieces_before_the_engine_is_ready(qtbot, monkeypatch):
    """A third thread reading it beside the engine's first generation (when the first count is
    due) kept the GUI waiting for the GIL up to 47 ms; read by the GUI thread between its own
    ticks, a piece delays the GUI by its own length only."""
    ranks = MergeRanks(resources_dir() / "clip-tokenizer" / "merges.txt")
    pieces = []  # (thread, CPU seconds) of each step
    step = ranks.step

    def timed_step():
        started = time.thread_time()
        done = step()
        pieces.append((threading.current_thread(), time.thread_time() - started))
        return done

    monkeypatch.setattr(ranks, "step", timed_step)
    monkeypatch.setattr(token_counter, "shipped_merge_ranks", lambda: ranks)
    monkeypatch.setattr(token_counter, "PREBUILD_DELAY_MS", 50)
    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    counter = TokenCounter(edit, edit)
    assert pieces == []  # nothing while the window is being built
    qtbot.waitUntil(ranks.done, timeout=10000)
    assert not counter.is_ready()
    assert len(pieces) >= 20 and {thread for thread, _ in pieces} == {threading.main_thread()}
    assert max(seconds for _, seconds in pieces) < sys.getswitchinterval()


def test_the_tokenizer_is_built_on_the_gui_thread_once_the_engine_has_imported_its_modules(qtbot, monkeypatch):
    """Its patterns need `regex`, a C extension: imported by the GUI thread while the engine
    thread loads torch's libraries it would wait for the loader's lock with the GIL in hand."""
    ranks = MergeRanks(resources_dir() / "clip-tokenizer" / "merges.txt")
    built = []
    monkeypatch.setattr(token_counter, "shipped_merge_ranks", lambda: ranks)
    monkeypatch.setattr(token_counter, "shipped_clip_bpe", lambda: built.append(threading.current_thread()))
    monkeypatch.setattr(token_counter, "PREBUILD_DELAY_MS", 10)
    monkeypatch.setattr(token_counter, "PREBUILD_POLL_MS", 10)
    monkeypatch.setattr(token_counter, "TOKENIZER_MODULES", ("sys", "a_module_the_engine_has_not_imported"))
    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    counter = TokenCounter(edit, edit)
    qtbot.waitUntil(ranks.done, timeout=10000)
    qtbot.wait(100)
    assert built == [] and counter._prebuild.isActive()  # waiting for the engine's import
    monkeypatch.setattr(token_counter, "TOKENIZER_MODULES", ("sys",))
    qtbot.waitUntil(lambda: built == [threading.main_thread()], timeout=5000)
    qtbot.wait(50)
    assert built == [threading.main_thread()] and not counter._prebuild.isActive()


def test_engine_ready_leaves_the_rest_to_the_count_thread(qtbot, monkeypatch):
    monkeypatch.setattr(token_counter, "PREBUILD_DELAY_MS", 10)
    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    counter = TokenCounter(edit, edit)
    counter.engine_ready()
    assert not counter._prebuild.isActive()  # never two threads building the same tokenizer
