"""Atomic file writes: a crash mid-write never leaves a half-written file behind.

Data goes to a temporary file beside the target (".NAME.XXXXXXXX.tmp"), is fsynced, and only
then takes the final name, so a final name always holds a complete file. A process killed
mid-write leaves only the temporary file, which `clean_stale_temp_files` removes at the next start.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import time
from pathlib import Path

STALE_TEMP_SECONDS = 10 * 60  # older than any save in progress; younger ones may be another instance's
# mkstemp's names: our prefix ".NAME.", 8 random characters from [a-z0-9_], our suffix ".tmp".
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def _write_temp(path: Path, data: bytes) -> str:
    """A fsynced temporary file holding `data` in `path`'s folder; its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, all or nothing."""
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_new(path: Path, data: bytes) -> None:
    """Create `path` holding `data`, all or nothing; FileExistsError if it already exists (even
    when another process takes the name meanwhile), so a file is never overwritten."""
    tmp = _write_temp(path, data)
    try:
        try:
            os.link(tmp, path)  # atomic, and refuses an existing name (FileExistsError)
        except OSError as exc:
            # No hard links here (FAT/exFAT, some network shares): check, then rename. Only a
            # racing writer picking this same new name in between could be overwritten.
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EACCES, errno.EMLINK,
                                 errno.ENOSYS):
                raise
            if os.path.lexists(path):
                raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def is_temp_file_name(name: str) -> bool:
    """True for the names of our temporary files (and only those)."""
    return bool(_TEMP_NAME.match(name))


def clean_stale_temp_files(folder: Path, older_than: float = STALE_TEMP_SECONDS) -> int:
    """Remove our temporary files in `folder` (not below it) that are older than `older_than`
    seconds: what saves killed mid-write left behind. Other files, links and folders are never
    touched. Returns how many were removed; never raises."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not is_temp_file_name(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > older_than:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed


def set_aside(path: Path, aside_name: str) -> Path:
    """Rename a damaged file to `aside_name` beside it (numbered -2, -3 … if taken), so the
    artist can still find it and the next save starts fresh. Raises OSError."""
    base, ext = (aside_name[:-5], ".json") if aside_name.endswith(".json") else (aside_name, "")
    target, number = path.with_name(aside_name), 1
    while target.exists():
        number += 1
        target = path.with_name(f"{base}-{number}{ext}")
    os.replace(path, target)
    return target
