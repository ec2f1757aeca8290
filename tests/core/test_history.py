import json
import os
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from studio.core.generation.request import GenerationRequest
from studio.core.storage.history import History, HistoryEntry, history_file
from studio.core.storage.outputs import png_bytes


class Writer:
    """Writes studio PNGs (as the output writer does) into a folder."""

    def __init__(self, root):
        self.root = root
        self.count = 0

    def save(self, image, request):
        self.count += 1
        path = self.root / "2026-01-01" / f"{self.count:05d}-{request.seed}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(image, request))
        return path


def _make(writer, prompt, seed, size=(64, 64)):
    request = GenerationRequest(prompt=prompt, seed=seed, width=size[0], height=size[1])
    return writer.save(Image.new("RGB", size), request), request


def test_index_lives_in_data_home(studio_home):
    assert history_file().parent == studio_home
    assert History().index_path == history_file()


def test_add_persists_across_restarts(tmp_path):
    writer = Writer(tmp_path / "out")
    history = History(tmp_path / "h.jsonl")
    path1, req1 = _make(writer, "a red fox", 1)
    path2, req2 = _make(writer, "a blue whale", 2, (128, 64))
    history.add(path1, req1)
    history.add(path2, req2)
    again = History(tmp_path / "h.jsonl")
    assert again.load() == []
    entries = again.entries()
    assert [e.prompt for e in entries] == ["a blue whale", "a red fox"]  # newest first
    assert (entries[0].seed, entries[0].width, entries[0].height, entries[0].path) == (2, 128, 64, str(path2))
    assert entries[0].generation_request() == req2
    assert entries[0].time > 0


def test_search_is_case_insensitive_and_ands_words(tmp_path):
    history = History(tmp_path / "h.jsonl")
    for i, prompt in enumerate(["A Red Fox in snow", "red car", "a fox, blue sky"]):
        history.add(tmp_path / f"{i}.png", GenerationRequest(prompt=prompt, seed=i))
    assert [e.prompt for e in history.search("FOX")] == ["a fox, blue sky", "A Red Fox in snow"]
    assert [e.prompt for e in history.search("red fox")] == ["A Red Fox in snow"]
    assert [e.prompt for e in history.search("fox car")] == []
    assert len(history.search("  ")) == 3


def test_delete_removes_file_and_entry_and_tolerates_missing_file(tmp_path):
    writer = Writer(tmp_path / "out")
    history = History(tmp_path / "h.jsonl")
    path, req = _make(writer, "x", 1)
    gone, req2 = _make(writer, "y", 2)
    history.add(path, req)
    history.add(gone, req2)
    gone.unlink()
    assert history.delete(gone) is True  # file already gone: fine
    assert history.delete(path) is True and not path.exists()
    assert history.delete(path) is False
    again = History(tmp_path / "h.jsonl")
    again.load()
    assert len(again) == 0


def test_rebuild_from_images_when_index_is_lost(tmp_path):
    writer = Writer(tmp_path / "out")
    made = [_make(writer, f"prompt {i}", 100 + i) for i in range(3)]
    # A foreign image (A1111) and a non-generated one in the folder too.
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a1111 cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 9, Size: 64x64")
    Image.new("RGB", (64, 64)).save(tmp_path / "out" / "foreign.png", pnginfo=info)
    Image.new("RGB", (8, 8)).save(tmp_path / "out" / "plain.png")
    (tmp_path / "out" / "notes.txt").write_text("hi")
    history = History(tmp_path / "h.jsonl")
    assert history.load_or_rebuild(tmp_path / "out") == []  # missing index: rebuilt silently
    assert len(history) == 4
    for path, request in made:
        assert history.get(path).generation_request() == request
    foreign = history.get(tmp_path / "out" / "foreign.png")
    assert foreign.prompt == "a1111 cat" and foreign.seed == 9 and foreign.request is None
    assert history.index_path.is_file()


def test_damaged_index_lines_are_skipped_then_rebuilt(tmp_path):
    writer = Writer(tmp_path / "out")
    history = History(tmp_path / "h.jsonl")
    for i in range(3):
        history.add(*_make(writer, f"p{i}", i))
    with open(history.index_path, "ab") as handle:
        handle.write(b'{"path": "/damaged", "pro\n')  # damage in the middle (a torn tail heals: test_history_torn)
    again = History(tmp_path / "h.jsonl")
    warnings = again.load()
    assert len(again) == 3 and "damaged" in warnings[0]
    again.add(*_make(writer, "after crash", 9))
    third = History(tmp_path / "h.jsonl")
    third.load()
    assert third.entries()[0].prompt == "after crash" and len(third) == 4
    rebuilt = History(tmp_path / "h.jsonl")
    warnings = rebuilt.load_or_rebuild(tmp_path / "out")
    assert "rebuilt from 4" in warnings[0]
    fresh = History(tmp_path / "h.jsonl")
    assert fresh.load() == [] and len(fresh) == 4


def test_garbage_index_is_not_fatal(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"\xff\xfe\x00 not json\n[1,2]\n{\"path\": 3}\n" + os.urandom(64))
    history = History(path)
    warnings = history.load()
    assert len(history) == 0 and warnings


def test_entry_json_round_trip():
    entry = HistoryEntry("/a.png", "p", "n", 1, 64, 64, 5.0, {"steps": 3}, None)
    assert HistoryEntry.from_json(entry.to_json()) == entry
    assert json.loads(entry.to_json())["path"] == "/a.png"


def test_img2img_entry_keeps_strength(tmp_path):
    from studio.core.generation.request import Mode

    history = History(tmp_path / "h.jsonl")
    request = GenerationRequest(prompt="p", mode=Mode.IMG2IMG, strength=0.4, init_image="/in.png")
    entry = history.add(tmp_path / "x.png", request)
    assert entry.fields["strength"] == 0.4
    assert "strength" not in history.add(tmp_path / "y.png", GenerationRequest(prompt="q")).fields


# -- damaged and hostile index lines (issue 9, items 4 and 9) ----------------------------------
def _entry_line(path, **changes):
    data = json.loads(HistoryEntry(str(path), "p", seed=1, width=64, height=64, time=1.0).to_json())
    return json.dumps(data | changes) + "\n"


def test_an_overlong_line_is_skipped_without_being_read_whole(tmp_path):
    import tracemalloc

    index = tmp_path / "history.jsonl"
    with open(index, "w", encoding="utf-8") as handle:
        handle.write(_entry_line(tmp_path / "a.png"))
        handle.write('{"path": "' + "x" * 8_000_000 + '"}\n')  # 8 MB: a damaged (or hostile) line
        handle.write(_entry_line(tmp_path / "b.png"))
    history = History(index)
    tracemalloc.start()
    try:
        warnings = history.load()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [Path(e.path).name for e in history.entries()] == ["b.png", "a.png"]
    assert history.damaged and "1 damaged line" in warnings[0]
    assert peak < 3_000_000  # the old reader held the whole file (8 MB+) as one string


def test_index_numbers_are_clamped_and_bad_ones_dropped(tmp_path):
    index = tmp_path / "history.jsonl"
    request = GenerationRequest("x").to_dict() | {"steps": 2**40, "seed": 2**64}
    index.write_text(_entry_line(tmp_path / "a.png", seed=2**64, width=10**20, height="tall", time=1e400,
                                 fields={"steps": 2**31, "guidance": -5, "seed": "?"}, request=request))
    history = History(index)
    assert history.load() == []
    entry = history.entries()[0]
    assert (entry.seed, entry.width, entry.height, entry.time) == (2**32 - 1, 4096, None, 0.0)
    assert entry.fields == {"steps": 150, "guidance": 0.0}
    restored = entry.generation_request()
    assert (restored.steps, restored.seed) == (150, 2**32 - 1)


def test_a_fifo_index_does_not_block(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "history.jsonl")
    history = History(tmp_path / "history.jsonl")
    assert "could not be read" in history.load()[0]


def test_entries_are_newest_first_by_the_time_they_were_made(tmp_path):
    from studio.core.storage.history import History, HistoryEntry

    history = History(tmp_path / "h.jsonl")
    for name, when in (("b", 200.0), ("a", 100.0), ("c", 300.0)):  # the index order is not the time order
        history._entries[name] = HistoryEntry(name, time=when)
    assert [e.path for e in history.entries()] == ["c", "b", "a"]


def test_restore_all_brings_back_clip_skip_hires_and_variation(tmp_path):
    from studio.core.formats.metadata import apply_fields
    from studio.core.generation.request import GenerationRequest
    from studio.core.generation.settings import Settings
    from studio.core.storage.history import HistoryEntry, entry_for

    request = GenerationRequest(prompt="p", seed=1, width=64, height=64, clip_skip=2, hires_scale=1.5,
                                variation_seed=3, variation_strength=0.25)
    entry = entry_for(tmp_path / "x.png", request)
    old = HistoryEntry(entry.path, fields={k: v for k, v in entry.fields.items() if k in ("prompt", "seed")},
                       request=entry.request)  # written before the extras were recorded in fields
    for e in (entry, old):
        settings = apply_fields(Settings(), e.restorable_fields(), "all")
        assert (settings.clip_skip, settings.hires_fix, settings.hires_scale) == (2, True, 1.5)
        assert (settings.variation, settings.variation_seed, settings.variation_strength) == (True, 3, 0.25)
