"""Reading and checking a .safetensors header without torch and without reading the tensors.

A .safetensors file is: an 8-byte little-endian header length N, N bytes of JSON
({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}), then the data.
Checking the header first turns a truncated, zero-filled or lying multi-GB file into one clear
message, instead of diffusers' fallback reading the whole file into memory before it fails.
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.errors import ErrorKind, StudioError

MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit (decimal: it refuses anything larger)
# Real files hold a few thousand tensors (SDXL with both text encoders: about 2,600; a full
# LyCORIS: under 10,000). Counted before the JSON is parsed: parsing is one call that holds the
# GIL, so a header of a million empty entries froze the window for seconds at every scan.
MAX_TENSORS = 50_000
DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class SafetensorsHeader:
    path: Path
    file_size: int
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)

    def shape(self, name: str) -> tuple[int, ...] | None:
        info = self.tensors.get(name)
        return info.shape if info else None

    def has_prefix(self, prefix: str) -> bool:
        return any(name.startswith(prefix) for name in self.tensors)


def _bad(path: Path, why: str) -> StudioError:
    return StudioError(
        ErrorKind.BAD_MODEL,
        f"{path.name} is not a valid .safetensors file: {why}.",
        "The file may be incomplete (an interrupted download) or damaged; download it again.",
    )


def _not_a_file(path: Path, kind: str) -> StudioError:
    return StudioError(
        ErrorKind.BAD_MODEL,
        f"{path.name} is {kind}, not a model file.",
        "Choose the .safetensors file itself.",
    )


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def read_header(path: str | Path) -> SafetensorsHeader:
    """The checked header of a .safetensors file, or a StudioError (BAD_MODEL) saying what is wrong.

    Checks: the length fits the file, the JSON is an object of well-formed entries, and every
    tensor's bytes lie inside the file and match its dtype and shape."""
    path = Path(path)
    try:
        # O_NONBLOCK: a named pipe given as a model opens at once instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as exc:
        raise StudioError(ErrorKind.MODEL_NOT_FOUND, f"No file at {path}.") from exc
    except IsADirectoryError as exc:
        raise _not_a_file(path, "a folder") from exc
    except (OSError, ValueError) as exc:
        raise StudioError(ErrorKind.BAD_MODEL, f"Could not read {path.name}: {getattr(exc, 'strerror', None) or exc}.") from exc
    try:
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _not_a_file(path, _file_kind(info.st_mode))
            file_size = info.st_size
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise _bad(path, "it is too short to hold a header")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES and 8 + length <= file_size:
                raise _bad(path, f"its header is {length / 1e6:.1f} MB, more than the {MAX_HEADER_BYTES // 10**6} MB "
                                 "the safetensors format allows")
            if length == 0 or length > MAX_HEADER_BYTES or 8 + length > file_size:
                raise _bad(path, "its header length does not fit the file")
            raw = handle.read(length)
    except OSError as exc:
        raise StudioError(ErrorKind.BAD_MODEL, f"Could not read {path.name}: {exc.strerror or exc}.") from exc
    if raw.count(b"{") > MAX_TENSORS + 2:  # an object per entry, the whole and the metadata: a quick upper bound
        raise _bad(path, f"its header lists more than {MAX_TENSORS:,} tensors, far more than any real model")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(path, "its header is not readable JSON") from exc
    if not isinstance(data, dict):
        raise _bad(path, "its header is not a JSON object")
    data_size = file_size - 8 - length
    metadata = data.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise _bad(path, "its metadata is not a JSON object")
    tensors: dict[str, TensorInfo] = {}
    for name, entry in data.items():
        tensors[name] = _check_entry(path, name, entry, data_size)
    if not tensors:
        raise _bad(path, "it holds no tensors")
    return SafetensorsHeader(path, file_size, tensors, {str(k): str(v) for k, v in metadata.items()})


def _check_entry(path: Path, name: str, entry: object, data_size: int) -> TensorInfo:
    if not isinstance(entry, dict):
        raise _bad(path, f"the entry for {name[:80]!r} is malformed")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise _bad(path, f"tensor {name[:80]!r} has an unknown type {str(dtype)[:20]!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise _bad(path, f"tensor {name[:80]!r} has a malformed shape")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= data_size
    ):
        raise _bad(path, f"tensor {name[:80]!r} lies outside the file (truncated?)")
    if offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[dtype]:
        raise _bad(path, f"tensor {name[:80]!r} has the wrong number of bytes for its shape")
    if 0 in shape and any(d > 1 for d in shape):
        # An empty tensor that still declares sizes: its byte count (0) says nothing about them,
        # and a model built from them (a 10-million-channel UNet) asks for terabytes.
        raise _bad(path, f"tensor {name[:80]!r} declares the shape {_shape_text(shape)} but holds no data")
    return TensorInfo(dtype, tuple(shape))


def _shape_text(shape: list[int]) -> str:
    text = "[" + ", ".join(str(d) for d in shape[:8]) + (", …]" if len(shape) > 8 else "]")
    return text if len(text) <= 80 else text[:78] + "…]"
