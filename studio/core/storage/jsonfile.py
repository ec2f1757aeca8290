"""One tolerant reader for the small JSON files the studio reads (settings, session, a model's
studio.json, model_index.json, configs): a damaged, hostile or odd file gives None, never an
exception, so one bad optional file cannot stop a launch or make a model unusable.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

DEFAULT_MAX_BYTES = 4_000_000  # these files are a few KB; anything larger is not one of ours


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity/-Infinity, which no other JSON reader does and which
    # no setting can hold; treat a file containing them as damaged.
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)  # "1e400" is inf: the same trap as Infinity, spelled as a number
    if number in (math.inf, -math.inf):
        raise ValueError(f"{text[:20]} is too large a number")
    return number


def read_json_object(path: Path | str, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when the file is missing, unreadable, not a regular
    file (a FIFO would block forever), larger than `max_bytes`, not UTF-8, not valid JSON,
    nested too deeply for the parser, holds NaN/Infinity (or a number so large it would be
    infinity, like 1e400), or is not an object at the top level.
    Numbers too large for a widget are returned as they are: range checks belong to the
    caller, which knows each field's range."""
    text = read_text_limited(path, max_bytes)
    if text is None:
        return None
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError, MemoryError):
        return None
    return data if isinstance(data, dict) else None


def read_text_limited(path: Path | str, max_bytes: int = DEFAULT_MAX_BYTES) -> str | None:
    """A regular file's UTF-8 text (a leading BOM dropped), or None when it is missing,
    unreadable, not a regular file, over `max_bytes` or not UTF-8."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        # O_NONBLOCK: if the path was swapped for a FIFO after the stat, open() still returns.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            raw = handle.read(max_bytes + 1)  # the file may have grown since the stat
    except (OSError, ValueError):  # ValueError: a path with a NUL byte
        return None
    if len(raw) > max_bytes:
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
