"""A1111's model hash: the first 10 hex digits of the file's SHA-256 (`Model hash:` in infotext).

Hashing a 6 GB checkpoint takes seconds, so results are cached by path, size and mtime in the
studio's cache folder, and callers run `file_sha256` off the GUI thread (hashlib releases the
GIL while it hashes large blocks).
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from studio.core.storage.atomic import write_text_atomic
from studio.core.storage.paths import data_home

_LOCK = threading.Lock()
_BLOCK = 8 * 1024 * 1024


def _cache_file() -> Path:
    return data_home() / "cache" / "hashes.json"


def _load_cache() -> dict:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, RecursionError):
        return {}


def _key(path: Path) -> tuple[str, str]:
    stat = path.stat()
    return str(path.resolve()), f"{stat.st_size}:{stat.st_mtime_ns}"


def cached_sha256(path: str | Path) -> str | None:
    """The cached full SHA-256 of a file, if this exact version (size, mtime) was hashed before."""
    try:
        name, version = _key(Path(path))
    except OSError:
        return None
    with _LOCK:
        entry = _load_cache().get(name)
    if isinstance(entry, dict) and entry.get("version") == version and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    return None


def file_sha256(path: str | Path) -> str:
    """The file's full SHA-256 (hex), from the cache when the file is unchanged. Raises OSError."""
    path = Path(path)
    known = cached_sha256(path)
    if known:
        return known
    name, version = _key(path)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    value = digest.hexdigest()
    with _LOCK:
        cache = _load_cache()
        cache[name] = {"version": version, "sha256": value}
        try:
            write_text_atomic(_cache_file(), json.dumps(cache, indent=1))
        except OSError:
            pass  # a read-only data folder only costs a re-hash next time
    return value


def short_hash(sha256: str) -> str:
    """What A1111 writes as `Model hash` (and matches dropped images by)."""
    return sha256[:10]
