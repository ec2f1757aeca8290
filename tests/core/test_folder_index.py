"""The embedding folders' listing is kept while the folders are unchanged: a folder of 20,000
embeddings is listed once, not at every job, and a file added or removed is still seen at once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from studio.core.models import folder_index, model_library
from studio.core.models.folder_index import indexed_safetensors_files
from studio.core.models.model_library import safetensors_files


def _age(*folders: Path) -> None:
    """Date the folders a minute back: as a folder nobody touched since the last job."""
    past = time.time() - 60
    for folder in folders:
        os.utime(folder, (past, past))


@pytest.fixture
def listings(monkeypatch):
    """Counts the folder listings (os.scandir calls) the index makes."""
    calls: list[str] = []
    real = os.scandir

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(model_library.os, "scandir", counting)
    monkeypatch.setattr(folder_index, "_listings", {})
    return calls


def test_an_unchanged_folder_is_listed_once(tmp_path, listings):
    sub = tmp_path / "style"
    sub.mkdir()
    for name in ("a", "b"):
        (tmp_path / f"{name}.safetensors").write_bytes(b"")
    (sub / "c.safetensors").write_bytes(b"")
    _age(tmp_path, sub)
    first = indexed_safetensors_files(tmp_path)
    assert first == list(safetensors_files(tmp_path)) and len(first) == 3
    listings.clear()
    for _ in range(5):
        assert indexed_safetensors_files(tmp_path) == first
    assert listings == []  # five jobs, no listing


def test_a_file_added_removed_or_added_in_a_subfolder_is_seen_at_once(tmp_path, listings):
    sub = tmp_path / "style"
    sub.mkdir()
    (tmp_path / "a.safetensors").write_bytes(b"")
    _age(tmp_path, sub)
    assert [p.name for p in indexed_safetensors_files(tmp_path)] == ["a.safetensors"]
    (sub / "new.safetensors").write_bytes(b"")  # an empty subfolder's time changes, not the root's
    assert [p.name for p in indexed_safetensors_files(tmp_path)] == ["a.safetensors", "new.safetensors"]
    (tmp_path / "a.safetensors").unlink()
    assert [p.name for p in indexed_safetensors_files(tmp_path)] == ["new.safetensors"]


def test_a_folder_changed_within_the_clock_tick_is_listed_again(tmp_path, listings):
    (tmp_path / "a.safetensors").write_bytes(b"")  # its folder's time is now: not trusted yet
    indexed_safetensors_files(tmp_path)
    listings.clear()
    indexed_safetensors_files(tmp_path)
    assert listings  # a file added in the same tick would otherwise go unseen


def test_thousands_of_embeddings_cost_a_job_nothing_after_the_first(tmp_path, listings):
    for i in range(5_000):
        (tmp_path / f"emb{i:05}.safetensors").write_bytes(b"")
    _age(tmp_path)
    started = time.perf_counter()
    assert len(indexed_safetensors_files(tmp_path)) == 5_000
    first = time.perf_counter() - started
    started = time.perf_counter()
    assert len(indexed_safetensors_files(tmp_path)) == 5_000
    again = time.perf_counter() - started
    assert again < 0.05 and again < first / 5, (first, again)
