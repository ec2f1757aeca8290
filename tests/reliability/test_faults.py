"""Engine and window faults through the fake engine and the real window: an exception or
MemoryError at step k, a NaN image, out of memory, a read-only or full output folder. Each ends
the job with a message, leaves no file half-written under a final name, and the next job works.
(Closing mid-step: test_close_mid_step.py.)"""

from __future__ import annotations

import errno
import os
import sys

import pytest

import studio.core.storage.atomic as atomic
from studio.core.errors import ErrorKind
from studio.core.events import JobFailed
from studio.core.storage.atomic import is_temp_file_name
from studio.core.storage.paths import unsaved_dir


def _run(qtbot, window, expect: str) -> None:
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=10000) as ended:
        window.job_view.generate()
    assert ended.args == [expect]
    assert not window.job_view.running and window.panel.generate_button.isEnabled()


def _files(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _next_job_works(qtbot, window, script) -> None:
    script.raise_at_step = script.fail_at_step = None
    script.nan_image = False
    _run(qtbot, window, "finished")
    assert window.job_view.last_image_path is not None and window.job_view.last_image_path.stat().st_size > 0


@pytest.mark.parametrize("exception", [RuntimeError("CUDA error: an illegal memory access"), MemoryError(),
                                       ValueError("bad tensor")], ids=["runtime", "memory", "value"])
def test_an_exception_at_step_k_is_reported_and_the_next_job_works(qtbot, make_window, script, tmp_path, exception):
    script.raise_at_step, script.exception = 2, exception
    window = make_window()
    _run(qtbot, window, "failed")
    assert window.banner.isVisible() and window.status_label.text().startswith("Generation failed: ")
    assert not _files(tmp_path / "outputs")
    _next_job_works(qtbot, window, script)


def test_a_nan_image_is_reported_not_saved(qtbot, make_window, script, tmp_path):
    script.nan_image = True
    window = make_window()
    _run(qtbot, window, "failed")
    assert "NaN" in window.banner.label.text() and not _files(tmp_path / "outputs")
    _next_job_works(qtbot, window, script)


def test_out_of_memory_says_so(qtbot, make_window, script):
    script.fail_at_step = 1
    window = make_window()
    errors = []

    def failed(event) -> None:
        if isinstance(event, JobFailed):
            errors.append(event.error.kind)

    window.controller.backendEvent.connect(failed)
    _run(qtbot, window, "failed")
    assert errors == [ErrorKind.OUT_OF_MEMORY] and "out of memory" in window.banner.label.text()
    _next_job_works(qtbot, window, script)


def test_a_read_only_output_folder_is_reported(qtbot, make_window, script, tmp_path):
    outputs = tmp_path / "outputs"
    as_root = sys.platform == "win32" or os.geteuid() == 0
    if as_root:  # root writes anywhere: a file where the folder should be is as unwritable
        outputs.write_bytes(b"")
    else:
        outputs.mkdir()
        outputs.chmod(0o500)
    try:
        window = make_window()
        _run(qtbot, window, "failed")
        assert ("Not a directory" if as_root else "Permission denied") in window.banner.label.text()
    finally:
        if as_root:
            outputs.unlink()
        else:
            outputs.chmod(0o700)
    assert not _files(outputs)
    # Every later image would fail the same way: the queue pauses and says why, and the image
    # waits in the data folder's fallback until the artist saves it elsewhere.
    assert window.controller.paused
    qtbot.waitUntil(lambda: len(_files(unsaved_dir())) == 1, timeout=5000)
    assert window.controller.queue.jobs[-1].status.value == "failed"
    window.controller.resume()
    _next_job_works(qtbot, window, script)


def test_a_full_output_folder_leaves_no_partial_file(qtbot, make_window, script, tmp_path, monkeypatch):
    """ENOSPC while the PNG is flushed (the real atomic writer runs; only fsync fails)."""
    outputs = tmp_path / "outputs"
    real_fsync = os.fsync

    def full_disk_fsync(fd):
        if str(outputs) in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    if not os.path.exists("/proc/self/fd"):
        pytest.skip("needs /proc to tell which file is flushed")
    monkeypatch.setattr(atomic.os, "fsync", full_disk_fsync)
    window = make_window()
    _run(qtbot, window, "failed")
    assert "No space left" in window.banner.label.text()
    left = _files(outputs)
    assert not [p for p in left if p.suffix == ".png" or is_temp_file_name(p.name)], left
    qtbot.waitUntil(lambda: len(_files(unsaved_dir())) == 1, timeout=5000)  # kept in the fallback folder
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    assert window.controller.paused  # until the artist says the disk has room again
    window.controller.resume()
    _next_job_works(qtbot, window, script)
