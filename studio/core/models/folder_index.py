"""The .safetensors files of a folder tree, listed again only when the tree changed.

A folder of 20,000 embeddings took over a second to list, and it was listed for every job.
Adding, removing or renaming a file changes its folder's modification time, so a listing stays
good while every folder it walked keeps its time. A folder changed in the last couple of
seconds is listed again anyway: file systems keep times coarsely, and a file added in the same
tick as the listing would otherwise go unseen ("racy git" has the same guard).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from studio.core.models.model_library import safetensors_files

RACY_NS = 2_000_000_000  # a folder changed this recently (2 s) is listed again
MAX_TREES_KEPT = 64  # listings kept: one per extra-network folder the artist has, a handful

_lock = threading.Lock()
_listings: dict[str, tuple[dict[str, int], list[Path]]] = {}  # root -> ({folder walked: mtime_ns}, files)


def _times(folders: list[Path]) -> dict[str, int] | None:
    """{folder: mtime_ns}, or None when one cannot be read or changed too recently to trust."""
    times: dict[str, int] = {}
    now = time.time_ns()
    for folder in folders:
        try:
            mtime = os.stat(folder).st_mtime_ns
        except OSError:
            return None
        if now - mtime < RACY_NS:
            return None
        times[str(folder)] = mtime
    return times


def _unchanged(times: dict[str, int]) -> bool:
    return _times([Path(folder) for folder in times]) == times


def indexed_safetensors_files(folder: str | Path) -> list[Path]:
    """safetensors_files(folder), from the last listing while no folder of the tree changed.
    A root that does not exist (or cannot be listed) is looked at again every time."""
    root = Path(folder)
    key = str(root)
    with _lock:
        kept = _listings.get(key)
    if kept is not None and _unchanged(kept[0]):
        return list(kept[1])
    walked: list[Path] = []
    files = list(safetensors_files(root, walked))
    times = _times(walked) if walked else None
    with _lock:
        _listings.pop(key, None)
        if times is not None:
            if len(_listings) >= MAX_TREES_KEPT:
                _listings.pop(next(iter(_listings)))
            _listings[key] = (times, files)
    return list(files)
