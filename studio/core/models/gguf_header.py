"""Reading a GGUF file's header (metadata and tensor table) without torch and without the data.

A GGUF file is: "GGUF", a version (2 or 3), the tensor count, the metadata count, the metadata
(key, type, value) entries, the tensor table (name, dims, ggml type, offset into the data), then
the data from the next multiple of `general.alignment` (32 unless said). Dims are stored
innermost first (ggml's order); `GGUFTensor.shape` gives them in torch's order.

Bounded on purpose: counts, string lengths and the bytes read are capped, array values
(an LLM's vocabulary) are skipped rather than kept, and every tensor's bytes must lie in the file,
so a damaged or hostile file is one clear message, read in one linear pass.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from studio.core.errors import ErrorKind, StudioError

MAGIC = b"GGUF"
MAX_TENSORS = 200_000
MAX_KV = 100_000
MAX_STRING_BYTES = 1 << 20
MAX_HEADER_BYTES = 256 << 20  # an LLM's header with its vocabulary is a few MB; Flux's a few hundred KB

# ggml type id -> (name, elements per block, bytes per block); ggml/include/ggml.h and
# gguf-py's GGML_QUANT_SIZES.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2),
}  # fmt: skip

# metadata value type -> struct format of a scalar (8 string, 9 array are read apart)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    shape: tuple[int, ...]  # torch order (outermost first)
    type_name: str  # "Q8_0", "Q4_K", "F16", ...


@dataclass(frozen=True)
class GGUFHeader:
    path: Path
    file_size: int
    version: int
    tensors: dict[str, GGUFTensor]
    metadata: dict[str, object] = field(default_factory=dict)  # scalars and strings only

    def shape(self, name: str) -> tuple[int, ...] | None:
        info = self.tensors.get(name)
        return info.shape if info else None


def is_gguf(path: str | Path) -> bool:
    """True when the file starts with GGUF's magic (whatever its name)."""
    try:
        with Path(path).open("rb") as handle:
            return handle.read(4) == MAGIC
    except OSError:
        return False


def _bad(path: Path, why: str) -> StudioError:
    return StudioError(
        ErrorKind.BAD_MODEL,
        f"{path.name} is not a valid GGUF file: {why}.",
        "The file may be incomplete (an interrupted download) or damaged; download it again.",
    )


class _Reader:
    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self.handle, self.path, self.read_bytes = handle, path, 0

    def take(self, n: int) -> bytes:
        self.read_bytes += n
        if self.read_bytes > MAX_HEADER_BYTES:
            raise _bad(self.path, "its header is larger than any model's")
        data = self.handle.read(n)
        if len(data) != n:
            raise _bad(self.path, "it ends inside its header (truncated?)")
        return data

    def unpack(self, fmt: str) -> int | float | bool:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]  # type: ignore[no-any-return]

    def string(self) -> str:
        length = int(self.unpack("<Q"))
        if length > MAX_STRING_BYTES:
            raise _bad(self.path, "it holds a string longer than a header string can be")
        return self.take(length).decode("utf-8", errors="replace")

    def value(self, kind: int) -> object:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = int(self.unpack("<I")), int(self.unpack("<Q"))
            if item_kind in _SCALARS:  # skipped in one read, never kept
                self.take(struct.calcsize(_SCALARS[item_kind]) * count)
            else:
                for _ in range(count):
                    self.value(item_kind)
            return None
        raise _bad(self.path, f"its metadata has an unknown value type {kind}")


def read_gguf_header(path: str | Path) -> GGUFHeader:
    """The checked header of a GGUF file, or a StudioError (BAD_MODEL) saying what is wrong."""
    path = Path(path)
    try:
        file_size = path.stat().st_size
        with path.open("rb") as handle:
            reader = _Reader(handle, path)
            if reader.take(4) != MAGIC:
                raise _bad(path, "it does not start with GGUF's signature")
            version = int(reader.unpack("<I"))
            if version not in (2, 3):
                raise _bad(path, f"it is GGUF version {version}; versions 2 and 3 are read")
            n_tensors, n_kv = int(reader.unpack("<Q")), int(reader.unpack("<Q"))
            if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
                raise _bad(path, "its header claims more entries than any model has")
            metadata: dict[str, object] = {}
            for _ in range(n_kv):
                key = reader.string()
                value = reader.value(int(reader.unpack("<I")))
                if value is not None:
                    metadata[key] = value
            table: list[tuple[str, tuple[int, ...], int, int]] = []
            for _ in range(n_tensors):
                name = reader.string()
                n_dims = int(reader.unpack("<I"))
                if n_dims > 8:
                    raise _bad(path, f"tensor {name[:80]!r} has {n_dims} dimensions")
                dims = tuple(int(reader.unpack("<Q")) for _ in range(n_dims))
                table.append((name, dims, int(reader.unpack("<I")), int(reader.unpack("<Q"))))
            header_end = reader.read_bytes
    except OSError as exc:
        raise StudioError(ErrorKind.BAD_MODEL, f"Could not read {path.name}: {exc.strerror or exc}.") from exc
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or not 1 <= alignment <= 1 << 20:
        raise _bad(path, "its data alignment is malformed")
    data_start = header_end + (-header_end % alignment)
    tensors: dict[str, GGUFTensor] = {}
    for name, dims, type_id, offset in table:
        if type_id not in GGML_TYPES:
            raise _bad(path, f"tensor {name[:80]!r} has an unknown ggml type {type_id}")
        type_name, block, block_bytes = GGML_TYPES[type_id]
        count = math.prod(dims)
        if dims and dims[0] % block:
            raise _bad(path, f"tensor {name[:80]!r} does not fill whole {type_name} blocks")
        if data_start + offset + count // block * block_bytes > file_size:
            raise _bad(path, f"tensor {name[:80]!r} lies outside the file (truncated?)")
        tensors[name] = GGUFTensor(name, tuple(reversed(dims)), type_name)
    if not tensors:
        raise _bad(path, "it holds no tensors")
    return GGUFHeader(path, file_size, version, tensors, metadata)
