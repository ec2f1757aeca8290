"""Importing a huge or hostile style file never freezes the window: it runs off the GUI thread,
writes one file, says how many presets were imported and skipped, and its messages stay short."""

from __future__ import annotations

import json
import threading
import time

import pytest

from studio.core.storage.presets import MAX_IMPORT_BYTES, PresetError, PresetStore
from studio.ui.preset_bar import MAX_MESSAGE_CHARS, PresetBar


@pytest.fixture
def bar(qtbot, tmp_path):
    store = PresetStore(builtin_dir=tmp_path / "builtin", user_dir=tmp_path / "user")
    widget = PresetBar(store)
    qtbot.addWidget(widget)
    return widget


def _messages(bar) -> list[str]:
    seen: list[str] = []
    bar.message.connect(seen.append)
    return seen


def test_a_huge_json_list_of_junk_gives_one_short_message(qtbot, bar, tmp_path):
    junk = tmp_path / "styles.json"
    junk.write_text(json.dumps([1] * 2_000_000))  # 6 MB of items that are not styles
    seen = _messages(bar)
    started = time.perf_counter()
    assert bar.import_presets(junk) == []
    assert time.perf_counter() - started < 15
    assert len(seen) == 1 and seen[0].startswith("Nothing was imported") and len(seen[0]) <= MAX_MESSAGE_CHARS + 1
    assert "more" in seen[0]  # the rest is counted, not quoted


def test_a_large_csv_is_linear_written_once_and_counted(qtbot, bar, tmp_path):
    rows = ["name,prompt,negative_prompt"] + [f"Style {i},\"{{prompt}}, look {i}\",blurry" for i in range(16_000)]
    rows += [",orphan row,"] * 5  # no name: skipped
    styles = tmp_path / "styles.csv"
    styles.write_text("\n".join(rows) + "\n")
    seen = _messages(bar)
    started = time.perf_counter()
    imported = bar.import_presets(styles)
    elapsed = time.perf_counter() - started
    assert len(imported) == 16_000 and elapsed < 10  # 68 s before (one fsynced file per row)
    files = sorted(p.name for p in (tmp_path / "user").iterdir())
    assert files == ["styles.json"]  # one write
    assert len(seen) == 1  # one message, with its reasons: one said before it would be replaced unread
    assert seen[0].startswith("Imported 16,000 preset(s) from styles.csv; 5 skipped. Row 16002 skipped:")
    assert all(len(m) <= MAX_MESSAGE_CHARS + 1 for m in seen)
    # Loaded back at the next start; one of them can be renamed and deleted.
    again = PresetStore(builtin_dir=tmp_path / "builtin", user_dir=tmp_path / "user")
    assert again.load() == [] and len(again.list()) == 16_000
    assert again.get("Style 7").values["prompt"] == "{prompt}, look 7"
    again.rename("Style 7", "Mine")
    again.delete("Style 8")
    third = PresetStore(builtin_dir=tmp_path / "builtin", user_dir=tmp_path / "user")
    third.load()
    assert third.get("Mine") and third.get("Style 7") is None and third.get("Style 8") is None
    assert len(third.list()) == 15_999


def test_the_import_runs_off_the_gui_thread(qtbot, bar, tmp_path, monkeypatch):
    threads = []
    real = PresetStore.prepare_import

    def spy(self, path, progress=None):
        threads.append(threading.current_thread())
        return real(self, path, progress)

    monkeypatch.setattr(PresetStore, "prepare_import", spy)
    styles = tmp_path / "styles.csv"
    styles.write_text("name,prompt\nA,a\nB,b\n")
    assert [p.name for p in bar.import_presets(styles)] == ["A", "B"]
    assert threads and threads[0] is not threading.main_thread()


def test_a_file_over_the_cap_is_refused_not_cut(tmp_path, monkeypatch):
    import studio.core.storage.presets as presets

    monkeypatch.setattr(presets, "MAX_IMPORT_BYTES", 1000)
    styles = tmp_path / "styles.csv"
    styles.write_text("name,prompt\n" + "".join(f"S{i},p\n" for i in range(500)))
    store = PresetStore(builtin_dir=tmp_path / "builtin", user_dir=tmp_path / "user")
    with pytest.raises(PresetError, match="too large to import"):
        store.import_file(styles)
    assert MAX_IMPORT_BYTES >= 10_000_000  # the old silent cut was at 10 MB


def test_a_reimport_replaces_the_same_names(tmp_path):
    store = PresetStore(builtin_dir=tmp_path / "builtin", user_dir=tmp_path / "user")
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("name,prompt\nA,one\nB,one\n")
    second.write_text("name,prompt\nB,two\nC,two\n")
    store.import_file(first)
    store.import_file(second)
    store.save_preset(store.get("C").__class__("A", {"prompt": "three"}))
    fresh = PresetStore(builtin_dir=tmp_path / "builtin", user_dir=tmp_path / "user")
    fresh.load()
    assert {p.name: p.values["prompt"] for p in fresh.list()} == {"A": "three", "B": "two", "C": "two"}
