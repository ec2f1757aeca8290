"""Output images are written atomically (issue 9, item 10) and stale temporary files are
cleaned at start (item 11)."""

import errno
import io
import os
import time

import numpy as np
import pytest
from PIL import Image

from studio.core.generation.request import GenerationRequest, Mode
from studio.core.storage import atomic
from studio.core.storage.atomic import clean_stale_temp_files, write_bytes_atomic, write_bytes_new
from studio.core.storage.outputs import OutputWriter, read_request, save_input


def _inputs(tmp_path):
    init, mask = tmp_path / "in" / "init.png", tmp_path / "in" / "mask.png"
    init.parent.mkdir()
    Image.new("RGB", (64, 64), "blue").save(init)
    Image.new("L", (64, 64), 255).save(mask)
    return GenerationRequest("x", seed=5, width=64, height=64, mode=Mode.INPAINT, init_image=str(init), mask=str(mask))


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


class DiskFullAfter:
    """os.fdopen for atomic.py whose files accept `budget` bytes in total, then write half
    of the next block and raise ENOSPC, as a full disk does."""

    def __init__(self, budget):
        self.budget = budget

    def __call__(self, fd, mode="r", *args, **kwargs):
        handle = open(fd, mode, *args, **kwargs)
        outer = self

        class Full:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                handle.close()

            def write(self, data):
                if len(data) > outer.budget:
                    handle.write(data[: len(data) // 2])
                    raise OSError(errno.ENOSPC, "No space left on device")
                outer.budget -= len(data)
                return handle.write(data)

            def __getattr__(self, name):
                return getattr(handle, name)

        return Full()


def test_save_writes_the_image_and_its_companions(tmp_path):
    request = _inputs(tmp_path)
    path, recorded = OutputWriter(tmp_path / "out").save(Image.new("RGB", (64, 64), "red"), request)
    assert read_request(path) == recorded
    assert os.path.getsize(recorded.init_image) > 0 and os.path.getsize(recorded.mask) > 0
    assert not [n for n in _files(tmp_path / "out") if n.endswith(".tmp")]


def test_a_failing_companion_copy_leaves_no_file_under_a_final_name(tmp_path):
    request = _inputs(tmp_path)
    os.unlink(request.mask)  # the mask vanished before the save
    with pytest.raises(OSError):
        OutputWriter(tmp_path / "out").save(Image.new("RGB", (64, 64)), request)
    assert _files(tmp_path / "out") == []  # the old writer left a 0-byte result and the init copy


def _png_size(path):
    buffer = io.BytesIO()
    with Image.open(path) as image:
        image.save(buffer, format="PNG")
    return len(buffer.getvalue())


@pytest.mark.parametrize("stage", ["init copy", "mask copy", "result"])
def test_a_full_disk_midway_leaves_nothing_behind(tmp_path, monkeypatch, stage):
    request = _inputs(tmp_path)
    init, mask = _png_size(request.init_image), _png_size(request.mask)
    budget = {"init copy": 0, "mask copy": init, "result": init + mask}[stage]
    monkeypatch.setattr(atomic.os, "fdopen", DiskFullAfter(budget))
    with pytest.raises(OSError) as failure:
        OutputWriter(tmp_path / "out").save(Image.new("RGB", (64, 64), "red"), request)
    assert failure.value.errno == errno.ENOSPC
    assert _files(tmp_path / "out") == []  # no partial PNG, no 0-byte file, no temp file
    monkeypatch.undo()
    path, _ = OutputWriter(tmp_path / "out").save(Image.new("RGB", (64, 64), "red"), request)  # retry works
    assert path.name.startswith("00001-") and os.path.getsize(path) > 0


def test_a_failing_fsync_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    with pytest.raises(OSError):
        OutputWriter(tmp_path / "out").save(Image.new("RGB", (8, 8)), GenerationRequest("x", seed=1))
    assert _files(tmp_path / "out") == []


def test_save_input_is_atomic_and_replaces_a_0_byte_leftover(tmp_path, monkeypatch):
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    monkeypatch.setattr(atomic.os, "fdopen", DiskFullAfter(10))
    with pytest.raises(OSError):
        save_input(pixels, tmp_path)
    assert _files(tmp_path) == []
    monkeypatch.undo()
    path = save_input(pixels, tmp_path)
    path.write_bytes(b"")  # what a crash left before saves were atomic
    assert save_input(pixels, tmp_path) == path and path.stat().st_size > 0


def test_write_bytes_new_never_overwrites(tmp_path):
    target = tmp_path / "a.png"
    write_bytes_new(target, b"first")
    with pytest.raises(FileExistsError):
        write_bytes_new(target, b"second")
    assert target.read_bytes() == b"first" and _files(tmp_path) == ["a.png"]


# -- stale temporary files (item 11) -----------------------------------------------------------
def _aged(path, seconds):
    old = time.time() - seconds
    os.utime(path, (old, old))
    return path


def test_only_our_old_temp_files_are_removed(tmp_path):
    stale = tmp_path / ".settings.json.ab12cd_9.tmp"
    stale.write_bytes(b"{")
    _aged(stale, 3600)
    fresh = tmp_path / ".history.jsonl.zzzzzzzz.tmp"  # a save in progress (maybe another instance's)
    fresh.write_bytes(b"")
    others = [tmp_path / n for n in ("notes.tmp", ".hidden.tmp", ".x.ABCDEFGH.tmp", "settings.json", ".x.abcdefgh.tmpx")]
    for other in others:
        other.write_bytes(b"keep")
        _aged(other, 3600)
    (tmp_path / ".dir.abcdefgh.tmp").mkdir()
    _aged(tmp_path / ".dir.abcdefgh.tmp", 3600)
    assert clean_stale_temp_files(tmp_path) == 1
    assert not stale.exists() and fresh.exists() and all(o.exists() for o in others)
    assert (tmp_path / ".dir.abcdefgh.tmp").is_dir()
    assert clean_stale_temp_files(tmp_path / "missing") == 0


def test_temp_names_made_by_atomic_writes_match_the_cleaning_pattern(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", spy)
    write_bytes_atomic(tmp_path / "settings.json", b"{}")
    assert seen and all(atomic.is_temp_file_name(n) for n in seen)


def test_startup_cleanup_covers_data_presets_inputs_and_output_day_folders(studio_home):
    from studio.core.storage.paths import outputs_dir, startup_cleanup

    folders = [studio_home, studio_home / "presets", studio_home / "inputs", outputs_dir() / "2026-01-01"]
    leftovers = []
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        leftover = folder / ".file.png.k2j4h5g6.tmp"
        leftover.write_bytes(b"")
        leftovers.append(_aged(leftover, 3600))
    keep = outputs_dir() / "2026-01-01" / "00001-1.png"
    keep.write_bytes(b"png")
    _aged(keep, 3600)
    assert startup_cleanup() == 4
    assert not any(p.exists() for p in leftovers) and keep.exists()
