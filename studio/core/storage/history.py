"""The history of everything made: an index of output images that survives restarts.

The index is JSON lines (data_home()/history.jsonl), oldest first. Adding an image appends one
line and fsyncs it: a crash can tear at most that last line. Loading heals it: the torn bytes
are cut off the file and the image the line named is re-added from its own metadata (the image
was on disk before its line was written), so a kill mid-append loses nothing and needs no
rebuild. Deleting rewrites the whole file atomically. The images hold their own metadata, so
`rebuild()` can always recreate a lost or damaged index from them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.core.formats.metadata import read_metadata
from studio.core.generation.request import GenerationRequest, Mode
from studio.core.generation.settings import (
    clamp_number,
    extra_settings_from_request,
    request_in_range,
)
from studio.core.storage.atomic import write_text_atomic
from studio.core.storage.paths import data_home

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# How far before the newest entry an image may be dated and still be missing from the index:
# the writer thread can finish the next image before the GUI thread appends the previous one.
CATCH_UP_MARGIN_SECONDS = 120.0
# An entry is a few KB (two prompts of at most 20,000 characters, escaped, plus the request);
# a longer line is damage, and is skipped without ever being held in memory whole.
MAX_LINE_BYTES = 1_000_000
_READ_BLOCK = 64 * 1024
# How every line we write begins (asdict keeps the field order): enough of a torn line to name its image.
_PATH_KEY = re.compile(r'\s*\{\s*"path"\s*:\s*')

try:  # POSIX: appends and the healing of a torn tail never interleave, even across two studios
    import fcntl
except ImportError:  # pragma: no cover - Windows: the size check in _heal_torn_tail remains
    fcntl = None  # type: ignore[assignment]


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
        return cls(**_valid_entry_fields(data))

    def restorable_fields(self) -> dict[str, Any]:
        """What "Restore all settings" applies (metadata.apply_fields): the entry's fields plus
        clip skip, hires fix and variation read from its stored request (entries written before
        those fields were recorded hold them only there)."""
        fields = dict(self.fields)
        request = self.generation_request()
        if request is not None:
            fields.update(extra_settings_from_request(request))
        return fields

    def generation_request(self) -> GenerationRequest | None:
        """The stored request, numbers clamped into range; None when it cannot be read."""
        try:
            return request_in_range(GenerationRequest.from_dict(self.request)) if self.request else None
        except (ValueError, TypeError):
            return None


def _valid_entry_fields(data: dict[str, Any]) -> dict[str, Any]:
    """An index line's values, validated: ValueError when the texts are not texts; numbers
    clamped into range (or dropped), so a damaged or hand-edited line cannot overflow a widget."""
    for key in ("prompt", "negative_prompt"):
        if not isinstance(data.get(key, ""), str):
            raise ValueError("bad history entry")
    if not isinstance(data.get("fields", {}), dict):
        raise ValueError("bad history entry")
    values: dict[str, Any] = {k: data[k] for k in HistoryEntry.__dataclass_fields__ if k in data}
    for key in ("seed", "width", "height"):
        if key in values:
            values[key] = clamp_number(key, values[key])
    when = values.get("time", 0.0)
    values["time"] = float(when) if type(when) in (int, float) and abs(when) < 1e12 else 0.0
    fields = {}
    for key, value in values.get("fields", {}).items():
        clamped = clamp_number(key, value)
        if clamped is not None:
            fields[key] = clamped
    values["fields"] = fields
    if not isinstance(values.get("request"), dict):
        values["request"] = None
    return values


def entry_for(path: Path, request: GenerationRequest, when: float | None = None) -> HistoryEntry:
    data = request.to_dict()
    fields = {k: data[k] for k in ("prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height", "sampler")}
    if request.mode is not Mode.TXT2IMG:
        fields["strength"] = request.strength  # img2img/inpaint: restoring it matters
    fields.update(extra_settings_from_request(request))  # clip skip, hires fix, variation
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


def images_missing_from_index(outputs_dir: Path, since: float | None = None,
                              known: frozenset[str] = frozenset()) -> list[HistoryEntry]:
    """Entries, from their own metadata, for the images under `outputs_dir` that are not in
    `known` and were written at or after `since` (every image when None). A kill between an
    image's write and its index line leaves it out of the index; this finds it at the next
    start. Reads every image it returns: run it off the GUI thread."""
    found: list[HistoryEntry] = []
    root = Path(outputs_dir)
    if not root.is_dir():
        return found
    for path in root.rglob("*"):
        if path.suffix.lower() not in IMAGE_SUFFIXES or str(path) in known:
            continue
        try:
            info = path.stat()
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or (since is not None and info.st_mtime < since):
            continue
        entry = entry_from_file(path)
        if entry is not None:
            found.append(entry)
    return found


class History:
    """Newest entries first through `entries()`; one entry per path."""

    def __init__(self, index_path: Path | None = None):
        self.index_path = Path(index_path) if index_path is not None else history_file()
        self._entries: dict[str, HistoryEntry] = {}  # insertion order = oldest first
        self.damaged = False

    def load(self) -> list[str]:
        """Read the index; damaged lines are skipped and reported, a torn last line is healed
        (see `_heal_torn_tail`). Returns warnings."""
        self._entries = {}
        self.damaged = False
        try:
            index = self._read_index()
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.damaged = True
            return [f"The history index could not be read ({exc})."]
        lines = index.lines[:-1] if index.torn else index.lines
        bad = 0
        for line in lines:
            if line is None:  # over MAX_LINE_BYTES
                bad += 1
                continue
            if not line.strip():
                continue
            try:
                entry = HistoryEntry.from_json(line)
            except (ValueError, TypeError, RecursionError):
                bad += 1
                continue
            self._entries.pop(entry.path, None)
            self._entries[entry.path] = entry
        if index.torn and not self._heal_torn_tail(index):
            bad += 1  # its image could not be named: a rebuild may still find it
        if bad:
            self.damaged = True
            return [f"{bad} damaged line(s) in the history index were skipped; "
                    "rebuild it from the outputs folder to recover them."]
        return []

    def load_or_rebuild(self, outputs_dir: Path) -> list[str]:
        """Load the index; rebuild it from the images when it is missing or damaged."""
        warnings = self.load()
        if not self.index_path.exists() or self.damaged:
            count = self.rebuild(outputs_dir)
            if warnings:
                warnings = [f"The history index was damaged and has been rebuilt from {count} image(s)."]
        return warnings

    def catch_up_point(self) -> tuple[float, frozenset[str]]:
        """(the time from which images on disk may be missing from the index, the paths it
        holds): what `images_missing_from_index` needs, taken where the index is changed."""
        newest = max((entry.time for entry in self._entries.values()), default=0.0)
        return newest - CATCH_UP_MARGIN_SECONDS, frozenset(self._entries)

    def add_entries(self, entries: list[HistoryEntry]) -> int:
        """Append entries built elsewhere (an image's own metadata) that the index lacks.
        Returns how many were added."""
        added = 0
        for entry in sorted(entries, key=lambda e: (e.time, e.path)):
            if entry.path not in self._entries:
                self._entries[entry.path] = entry
                self._append(entry)
                added += 1
        return added

    def entries(self) -> list[HistoryEntry]:
        """Newest first by the time each image was made (the index may hold entries out of
        order: a rebuild appends what finished meanwhile, images copied in keep their time)."""
        newest_first = list(reversed(self._entries.values()))
        return sorted(newest_first, key=lambda e: e.time, reverse=True)  # stable: ties stay newest-added first

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
        found = images_missing_from_index(outputs_dir)
        found.sort(key=lambda e: (e.time, e.path))
        self._entries = {e.path: e for e in found}
        self.damaged = False
        self._write_all()
        return len(found)

    # files
    def _read_index(self) -> _IndexText:
        """The index's lines as text; None for a line over MAX_LINE_BYTES, which is skipped in
        blocks and never held whole. A FIFO or other non-file is refused (it could block)."""
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        fd = os.open(self.index_path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise OSError("the history index is not a regular file")
            index = _IndexText()
            while True:
                line = handle.readline(MAX_LINE_BYTES + 1)
                if not line:
                    return index
                index.size += len(line)
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    while not line.endswith(b"\n"):  # skip the rest of the overlong line
                        line = handle.readline(_READ_BLOCK)
                        if not line:
                            break
                        index.size += len(line)
                    index.lines.append(None)
                else:
                    index.lines.append(line.decode("utf-8", errors="replace").rstrip("\r\n"))
                if line.endswith(b"\n"):
                    index.complete_end = index.size

    def _heal_torn_tail(self, index: _IndexText) -> bool:
        """A kill mid-append left a last line without its newline. Cut it off the file (so
        nothing can glue onto it) and re-add its image: from the line itself when it is whole,
        else from the image's own metadata (rebuild's reader). False when the line does not
        even name its image: it is then only ended with a newline, and reported as damage (a
        rebuild may still find the image). True when nothing was lost, or the image is gone or
        carries no metadata (a rebuild could not add it either)."""
        torn = index.lines[-1]
        entry = None
        named = torn is not None  # an overlong torn line (None) was never read: no name
        if torn is not None and torn.strip():
            try:
                entry = HistoryEntry.from_json(torn)
            except (ValueError, TypeError, RecursionError):
                path = _torn_line_path(torn)
                named = path is not None
                if path is not None and Path(path).suffix.lower() in IMAGE_SUFFIXES:
                    try:
                        entry = entry_from_file(Path(path))
                    except ValueError:  # a name the file system cannot encode (a lone surrogate)
                        entry = None
        if entry is not None:
            try:
                entry.to_json().encode("utf-8")
            except UnicodeEncodeError:  # a name with a lone surrogate: not recorded, never a crash
                entry = None
        if entry is not None:
            self._entries.pop(entry.path, None)
            self._entries[entry.path] = entry
        try:
            with open(self.index_path, "r+b") as handle, _exclusive(handle):
                # Another studio appended since we read: the torn line is no longer the last one.
                if os.fstat(handle.fileno()).st_size == index.size:
                    if named:
                        handle.truncate(index.complete_end)
                    handle.seek(0, os.SEEK_END)
                    # Unnamed, the line stays as (terminated) damage: the next start still sees it and
                    # rebuilds, if this one is closed before its rebuild has rewritten the index.
                    handle.write(entry.to_json().encode("utf-8") + b"\n" if entry is not None
                                 else b"" if named else b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError:
            pass  # a read-only index: the entry is shown, and _append still starts a fresh line
        return named

    def _append(self, entry: HistoryEntry) -> None:
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.index_path, "a+b") as handle, _exclusive(handle):
            # After a torn write the file may not end in a newline: start a fresh line.
            if handle.seek(0, os.SEEK_END) > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
            handle.write(entry.to_json().encode("utf-8") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _write_all(self) -> None:
        write_text_atomic(self.index_path, "".join(e.to_json() + "\n" for e in self._entries.values()))


@dataclass
class _IndexText:
    lines: list[str | None] = field(default_factory=list)  # None: a line over MAX_LINE_BYTES
    size: int = 0  # bytes read
    complete_end: int = 0  # where the last line that ends in a newline ends

    @property
    def torn(self) -> bool:
        return self.complete_end < self.size


def _torn_line_path(line: str) -> str | None:
    """The image path at the start of a torn index line, when the cut came after it."""
    match = _PATH_KEY.match(line)
    if match is None:
        return None
    try:
        path, _ = json.JSONDecoder().raw_decode(line, match.end())
    except ValueError:
        return None
    return path if isinstance(path, str) and path and "\0" not in path else None


@contextlib.contextmanager
def _exclusive(handle):
    """An advisory lock on the index for one append or one heal (released when closed)."""
    if fcntl is not None:
        with contextlib.suppress(OSError):  # a file system without locks (some network shares)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    yield handle
