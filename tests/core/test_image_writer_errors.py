"""A failed save is the artist's disk, not a studio bug (issue 12): OSErrors get ErrorKind.DISK,
classified by errno into words a person understands and a hint that says what to do; only a
non-OS failure (a bug in encoding) stays INTERNAL."""

from __future__ import annotations

import errno
import os
import sys
import threading

import numpy as np
import pytest

from studio.core.errors import ErrorKind, StudioError
from studio.core.events import ImageSaveFailed
from studio.core.generation.request import GenerationRequest
from studio.core.storage.image_writer import WRITER_NICENESS, ImageWriter, save_error
from studio.core.storage.output_folder import KeepingWriter, UnsavedImage
from studio.core.storage.outputs import OutputWriter

FOLDER = "/home/artist/outputs"


@pytest.mark.parametrize(
    ("code", "opening", "hint_words"),
    [
        (errno.ENOSPC, "The disk is full", "free some space"),
        (errno.EDQUOT, "The disk is full", "free some space"),
        (errno.EROFS, "The output folder can't be written to", "output folder you can write to"),
        (errno.EACCES, "The output folder can't be written to", "output folder you can write to"),
        (errno.EPERM, "The output folder can't be written to", "output folder you can write to"),
    ],
)
def test_each_errno_says_what_happened_and_what_to_do(code, opening, hint_words):
    error = save_error(OSError(code, os.strerror(code)), FOLDER)
    assert error.kind is ErrorKind.DISK
    assert error.message.startswith(opening + ":")
    assert FOLDER in error.message and os.strerror(code) in error.message, "the system's words stay, for searching"
    assert "could not be saved" in error.message
    assert "Save as" in error.hint and hint_words in error.hint


def test_another_os_error_says_the_systems_words():
    error = save_error(OSError(errno.EIO, "Input/output error"), FOLDER)
    assert error.kind is ErrorKind.DISK
    assert error.message == f"The image could not be saved to {FOLDER}: Input/output error."
    assert "Save as" in error.hint and "connected" in error.hint
    assert "full" not in error.message and "can't be written" not in error.message


def test_an_os_error_without_errno_still_reads_well():
    error = save_error(FileNotFoundError("the drive went away"), FOLDER)
    assert error.kind is ErrorKind.DISK and "the drive went away" in error.message


def test_a_failure_that_is_not_the_disk_stays_internal():
    error = save_error(ValueError("cannot encode mode P;4"), FOLDER)
    assert error.kind is ErrorKind.INTERNAL
    assert "cannot encode" in error.message and "Save as" in error.hint and "report" in error.hint


def test_a_studio_error_raised_from_an_os_error_is_classified_by_its_cause(tmp_path):
    """KeepingWriter wraps the OSError in UnsavedImage (kind BAD_INPUT); the writer thread
    still reports the disk's errno."""
    try:
        raise UnsavedImage("The image could not be saved", "hint", np.zeros((1, 1, 3), np.uint8),
                           GenerationRequest(prompt="x")) from OSError(errno.ENOSPC, "No space left on device")
    except StudioError as exc:
        error = save_error(exc, FOLDER)
    assert error.kind is ErrorKind.DISK and error.message.startswith("The disk is full")


def test_a_real_unwritable_folder_through_the_writer_thread(tmp_path):
    """No mocks: the writer thread meets the real errno. Root writes anywhere, so there a
    file where the folder should be stands in (ENOTDIR, or EEXIST from mkdir)."""
    outputs = tmp_path / "outputs"
    as_root = os.name == "nt" or os.geteuid() == 0
    if as_root:
        outputs.write_bytes(b"")
    else:
        outputs.mkdir()
        outputs.chmod(0o500)
    results = []
    writer = ImageWriter(KeepingWriter(outputs), results.append)
    try:
        writer.submit("job", 0, np.zeros((8, 8, 3), np.uint8), GenerationRequest(prompt="a red circle", width=8, height=8))
        assert writer.close(10)
    finally:
        if not as_root:
            outputs.chmod(0o700)
    [failed] = results
    assert isinstance(failed, ImageSaveFailed)
    assert failed.error.kind is ErrorKind.DISK, failed.error
    assert "could not be saved" in failed.error.message and "Save as" in failed.error.hint
    if not as_root:
        assert failed.error.message.startswith("The output folder can't be written to")


def test_a_full_disk_through_the_writer_thread(tmp_path):
    class FullDisk(OutputWriter):
        def save(self, image, request):
            raise OSError(errno.ENOSPC, "No space left on device")

    results = []
    writer = ImageWriter(FullDisk(tmp_path), results.append)
    writer.submit("job", 0, np.zeros((8, 8, 3), np.uint8), GenerationRequest(prompt="a red circle", width=8, height=8))
    assert writer.close(10)
    [failed] = results
    assert failed.error.kind is ErrorKind.DISK and failed.error.message.startswith("The disk is full")
    assert str(tmp_path) in failed.error.message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_the_writer_thread_runs_below_the_engine(tmp_path):
    """Where the writer and the denoising share a core, the next image goes first."""
    seen: list[int] = []

    class Probe(OutputWriter):
        def save(self, image, request):
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return super().save(image, request)

    writer = ImageWriter(Probe(tmp_path), lambda result: None)
    writer.submit("job", 0, np.zeros((8, 8, 3), np.uint8), GenerationRequest(prompt="x"))
    assert writer.close(10)
    assert seen == [min(19, os.getpriority(os.PRIO_PROCESS, 0) + WRITER_NICENESS)]
