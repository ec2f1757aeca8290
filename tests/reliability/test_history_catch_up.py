"""A kill between an image's write and its history line: at the next start the image is added
to History from its own metadata (it used to stay unlisted for good, the index being rebuilt
only when missing or damaged)."""

from __future__ import annotations

import os
import time

import numpy as np
from PIL import Image

from studio.application.controller import StudioController
from studio.application.history_service import HistoryService
from studio.core.generation.request import GenerationRequest
from studio.core.storage.history import History
from studio.core.storage.job_queue import JobQueue
from studio.core.storage.outputs import OutputWriter
from tests.fakes import FakeBackend


def _save(outputs: OutputWriter, prompt: str):
    request = GenerationRequest(prompt=prompt, width=64, height=64, seed=len(prompt))
    path, _ = outputs.save(Image.fromarray(np.zeros((8, 8, 3), np.uint8)), request)
    return path, request


def _killed_before_the_index_line(tmp_path):
    """An index listing one image, and a second image written after it, never indexed."""
    outputs = OutputWriter(tmp_path / "outputs")
    history = History(tmp_path / "history.jsonl")
    indexed, request = _save(outputs, "indexed")
    history.add(indexed, request)
    lost, _ = _save(outputs, "written, then the kill")
    return outputs, indexed, lost


def test_the_next_start_lists_an_image_the_kill_kept_out_of_the_index(qtbot, tmp_path):
    outputs, indexed, lost = _killed_before_the_index_line(tmp_path)
    old, _ = _save(outputs, "copied in from an old backup")
    past = time.time() - 3600
    os.utime(old, (past, past))  # older than the index's last line: not looked at (start stays cheap)

    controller = StudioController(FakeBackend(), JobQueue(tmp_path / "queue.json"), outputs)
    try:
        service = HistoryService(controller, History(tmp_path / "history.jsonl"))
        with qtbot.waitSignal(service.changed, timeout=5000):
            assert service.load(tmp_path / "outputs") == []
        service.close()
        listed = {entry.path: entry for entry in service.history.entries()}
        assert set(listed) == {str(indexed), str(lost)}
        assert listed[str(lost)].prompt == "written, then the kill"  # from the image's own metadata
    finally:
        controller.close(10)

    again = History(tmp_path / "history.jsonl")  # written to the index, not only shown
    assert again.load() == [] and {e.path for e in again.entries()} == {str(indexed), str(lost)}


def test_catching_up_twice_adds_nothing_twice(tmp_path):
    _outputs, _indexed, lost = _killed_before_the_index_line(tmp_path)
    from studio.core.storage.history import images_missing_from_index

    history = History(tmp_path / "history.jsonl")
    history.load()
    found = images_missing_from_index(tmp_path / "outputs", *history.catch_up_point())
    assert [entry.path for entry in found] == [str(lost)]
    assert history.add_entries(found) == 1 and history.add_entries(found) == 0
    assert images_missing_from_index(tmp_path / "outputs", *history.catch_up_point()) == []
