"""A kill mid-append tears the history index's last line (issue 12). Loading heals it: the torn
bytes are cut off the file, the image the line named comes back from its own metadata, and the
next append starts on a line of its own. Real files throughout: real PNGs, real torn bytes."""

from __future__ import annotations

import json

from PIL import Image

from studio.core.generation.request import GenerationRequest
from studio.core.storage.history import History, entry_for
from studio.core.storage.outputs import png_bytes


def _image(folder, name, prompt, seed):
    request = GenerationRequest(prompt=prompt, seed=seed, width=96, height=64, steps=7)
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(Image.new("RGB", (96, 64), (seed, 0, 0)), request))
    return path, request


MID_PROMPT = "mid-prompt"


def _index_with_torn_tail(tmp_path, cut):
    """Three entries added normally; the fourth image is on disk, its line cut after `cut` bytes
    or in the middle of its prompt (the order a save happens in: the image first, then its line)."""
    out = tmp_path / "out"
    history = History(tmp_path / "history.jsonl")
    for seed in range(1, 4):
        history.add(*_image(out, f"{seed:05d}.png", f"picture {seed}", seed))
    path, request = _image(out, "00004.png", "the one being added", 4)
    line = entry_for(path, request).to_json().encode("utf-8") + b"\n"
    if cut == MID_PROMPT:
        cut = line.index(b"the one being") + 5
    with open(history.index_path, "ab") as handle:
        handle.write(line[:cut])
    return history.index_path, path, request, line


def _lines(index):
    data = index.read_bytes()
    assert data.endswith(b"\n"), "a healed index ends on a whole line"
    return [json.loads(line) for line in data.splitlines()]


def test_a_torn_last_line_is_healed_and_its_image_comes_back_from_its_metadata(tmp_path):
    index, path, request, line = _index_with_torn_tail(tmp_path, MID_PROMPT)
    assert not index.read_bytes().endswith(b"\n")
    history = History(index)
    assert history.load() == [] and not history.damaged
    assert len(history) == 4
    entry = history.get(path)
    assert entry is not None and entry.prompt == "the one being added"
    assert (entry.seed, entry.width, entry.height) == (4, 96, 64)
    assert entry.generation_request() == request, "rebuilt from the PNG's own request"
    assert [row["path"] for row in _lines(index)][-1] == str(path)
    assert len(_lines(index)) == 4, "the torn bytes are gone: every line is a whole entry"
    again = History(index)
    assert again.load() == [] and len(again) == 4


def test_the_next_append_after_a_torn_line_gets_a_line_of_its_own(tmp_path):
    """Without a load in between (another process tore it): the append starts a fresh line."""
    index, _, _, _ = _index_with_torn_tail(tmp_path, MID_PROMPT)
    path, request = _image(tmp_path / "out", "00005.png", "after the crash", 5)
    History(index).add(path, request)
    history = History(index)
    history.load()
    assert history.get(path).prompt == "after the crash"
    assert history.entries()[0].path == str(path)


def test_appends_after_a_heal_stay_whole(tmp_path):
    index, torn_path, _, _ = _index_with_torn_tail(tmp_path, MID_PROMPT)
    history = History(index)
    history.load()
    path, request = _image(tmp_path / "out", "00005.png", "after the crash", 5)
    history.add(path, request)
    rows = _lines(index)
    assert [r["path"] for r in rows][-2:] == [str(torn_path), str(path)]
    fresh = History(index)
    assert fresh.load() == [] and len(fresh) == 5


def test_a_torn_line_whose_image_is_gone_is_dropped_quietly(tmp_path):
    index, path, _, _ = _index_with_torn_tail(tmp_path, MID_PROMPT)
    path.unlink()
    history = History(index)
    assert history.load() == [] and not history.damaged
    assert len(history) == 3 and history.get(path) is None
    assert len(_lines(index)) == 3


def test_a_whole_line_missing_only_its_newline_is_kept(tmp_path):
    index, path, request, line = _index_with_torn_tail(tmp_path, -1)
    history = History(index)
    assert history.load() == []
    assert history.get(path).generation_request() == request
    assert index.read_bytes().endswith(line)


def test_a_line_torn_inside_its_path_is_damage_that_a_rebuild_repairs(tmp_path):
    index, path, _, line = _index_with_torn_tail(tmp_path, 15)  # '{"path": "/tmp/' : no name to go on
    history = History(index)
    warnings = history.load()
    assert history.damaged and "1 damaged line" in warnings[0]
    assert index.read_bytes().endswith(b"}\n" + line[:15] + b"\n"), "ended, so nothing glues onto it"
    again = History(index)
    assert again.load() and again.damaged, "the damage stays visible until a rebuild repairs it"
    again.add(*_image(tmp_path / "out", "00005.png", "after the crash", 5))
    assert again.load_or_rebuild(tmp_path / "out")
    assert again.get(path) is not None and len(again) == 5
    assert len(_lines(index)) == 5 and History(index).load() == []


def test_every_cut_point_heals(tmp_path):
    """Wherever the kill lands in the line, the file is whole afterwards, and the image is
    back whenever its path was written in full."""
    index, path, _, line = _index_with_torn_tail(tmp_path, 1)
    base = index.read_bytes()[:-1]
    path_end = line.index(b'",') + 1  # the closing quote of the path
    for cut in sorted({*range(1, len(line), 13), path_end - 1, path_end, len(line) - 1}):
        index.write_bytes(base + line[:cut])
        history = History(index)
        warnings = history.load()
        assert index.read_bytes().endswith(b"\n"), cut
        if cut >= path_end:
            assert warnings == [] and history.get(path) is not None, cut
        else:  # nothing names the image: damage, which load_or_rebuild repairs
            assert history.get(path) is None and history.damaged and warnings, cut
        assert len(index.read_bytes().splitlines()) == 4, cut
