"""The history of everything made: an index of output images that survives restarts.

The index is JSON lines (data_home()/history.jsonl), oldest first. Adding an image appends one
line and fsyncs it: a crash can tear at most that last line, which loading skips (and the next
append starts on a fresh line). Deleting rewrites the whole file atomically. The images hold
their own metadata, so `rebuild()` can always recreate a lost or damaged index from them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.core.atomic import write_text_atomic
from studio.core.metadata import read_metadata
from studio.core.paths import data_home
from studio.core.request import GenerationRequest, Mode

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def history_file() -> Path:
    return data_home() / "history.jsonl"


@dataclass(frozen=True)
class HistoryEntry:
    path: str
    prompt: str = ""
    negative_prompt: str = ""
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    time: float = 0.0  # seconds since the epoch
    fields: dict[str, Any] = field(default_factory=dict, hash=False)  # restorable settings
    request: dict[str, Any] | None = field(default=None, hash=False)  # GenerationRequest.to_dict()

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> HistoryEntry:
        """ValueError/TypeError for anything that is not an entry we wrote."""
        data = json.loads(line)
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise ValueError("not a history entry")
        entry = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        if not isinstance(entry.prompt, str) or not isinstance(entry.fields, dict):
            raise ValueError("bad history entry")
        return entry

    def generation_request(self) -> GenerationRequest | None:
        try:
            return GenerationRequest.from_dict(self.request) if self.request else None
        except (ValueError, TypeError):
            return None


def entry_for(path: Path, request: GenerationRequest, when: float | None = None) -> HistoryEntry:
    data = request.to_dict()
    fields = {k: data[k] for k in ("prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height", "sampler")}
    if request.mode is not Mode.TXT2IMG:
        fields["strength"] = request.strength  # img2img/inpaint: restoring it matters
    return HistoryEntry(str(path), request.prompt, request.negative_prompt, request.seed, request.width,
                        request.height, time.time() if when is None else when, fields, data)


def entry_from_file(path: Path) -> HistoryEntry | None:
    """An entry built from the image's own metadata, or None when it carries none."""
    meta = read_metadata(path)
    try:
        when = path.stat().st_mtime
    except OSError:
        return None
    if meta.request is not None:
        return entry_for(path, meta.request, when)
    if not meta.ok:
        return None
    f = meta.fields
    return HistoryEntry(str(path), f.get("prompt", ""), f.get("negative_prompt", ""), f.get("seed"),
                        f.get("width"), f.get("height"), when, dict(f), None)


class History:
    """Newest entries first through `entries()`; one entry per path."""

    def __init__(self, index_path: Path | None = None):
        self.index_path = Path(index_path) if index_path is not None else history_file()
        self._entries: dict[str, HistoryEntry] = {}  # insertion order = oldest first
        self.damaged = False

    def load(self) -> list[str]:
        """Read the index; damaged lines are skipped and reported. Returns warnings."""
        self._entries = {}
        self.damaged = False
        try:
            text = self.index_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.damaged = True
            return [f"The history index could not be read ({exc})."]
        bad = 0
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                entry = HistoryEntry.from_json(line)
            except (ValueError, TypeError, RecursionError):
                bad += 1
                continue
            self._entries.pop(entry.path, None)
            self._entries[entry.path] = entry
        if bad:
            self.damaged = True
            return [f"{bad} damaged line(s) in the history index were skipped; rebuild it from the outputs folder to recover them."]
        return []

    def load_or_rebuild(self, outputs_dir: Path) -> list[str]:
        """Load the index; rebuild it from the images when it is missing or damaged."""
        warnings = self.load()
        if not self.index_path.exists() or self.damaged:
            count = self.rebuild(outputs_dir)
            if warnings:
                warnings = [f"The history index was damaged and has been rebuilt from {count} image(s)."]
        return warnings

    def entries(self) -> list[HistoryEntry]:
        return list(reversed(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: Path | str) -> HistoryEntry | None:
        return self._entries.get(str(path))

    def add(self, path: Path | str, request: GenerationRequest) -> HistoryEntry:
        entry = entry_for(Path(path), request)
        self._entries.pop(entry.path, None)
        self._entries[entry.path] = entry
        self._append(entry)
        return entry

    def search(self, text: str) -> list[HistoryEntry]:
        """Entries whose prompt holds every word of `text` (case-insensitive); newest first."""
        words = text.casefold().split()
        return [e for e in self.entries() if all(w in e.prompt.casefold() for w in words)]

    def delete(self, path: Path | str, delete_file: bool = True) -> bool:
        """Forget the entry and (by default) delete its image; a missing file is fine.
        Returns whether an entry was removed."""
        key = str(path)
        removed = self._entries.pop(key, None) is not None
        if delete_file:
            Path(key).unlink(missing_ok=True)
        if removed:
            self._write_all()
        return removed

    def rebuild(self, outputs_dir: Path) -> int:
        """Recreate the index from the images' own metadata. Returns the number of entries."""
        found: list[HistoryEntry] = []
        root = Path(outputs_dir)
        if root.is_dir():
            for path in root.rglob("*"):
                if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                    entry = entry_from_file(path)
                    if entry is not None:
                        found.append(entry)
        found.sort(key=lambda e: (e.time, e.path))
        self._entries = {e.path: e for e in found}
        self.damaged = False
        self._write_all()
        return len(found)

    # files
    def _append(self, entry: HistoryEntry) -> None:
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.index_path, "a+b") as handle:
            # After a torn write the file may not end in a newline: start a fresh line.
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
            handle.write(entry.to_json().encode("utf-8") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _write_all(self) -> None:
        write_text_atomic(self.index_path, "".join(e.to_json() + "\n" for e in self._entries.values()))
