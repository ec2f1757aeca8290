"""Hostile .safetensors headers and file names: each is refused in one clear sentence, quickly,
before anything large is parsed or allocated, and without holding the GIL long enough to
freeze the window."""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from pathlib import Path

import pytest

from studio.core.errors import ErrorKind, StudioError
from studio.core.generation.lora_tags import find_lora, missing_loras
from studio.core.models.model_detect import inspect_model
from studio.core.models.model_library import scan_models
from studio.core.models.safetensors_header import MAX_HEADER_BYTES, read_header
from tests.checkpoint_files import UNET_PREFIX, safetensors_bytes


def _refusal(path: Path) -> StudioError:
    with pytest.raises(StudioError) as raised:
        read_header(path)
    return raised.value


def _longest_gil_stall(work) -> float:
    """The longest the main thread waited to run while `work` ran in another thread."""
    done = threading.Event()
    worker = threading.Thread(target=lambda: (work(), done.set()))
    longest, last = 0.0, time.perf_counter()
    worker.start()
    while not done.is_set():
        time.sleep(0.001)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    worker.join()
    return longest


def test_a_header_of_a_quarter_million_empty_entries_is_refused_without_parsing_it(tmp_path):
    entries = ",".join(f'"t{i}":{{}}' for i in range(250_000))  # the campaign's: 1.3 million in 90 MB
    path = tmp_path / "bomb.safetensors"
    path.write_bytes(safetensors_bytes(json.loads("{" + entries + "}"), b""))
    started = time.perf_counter()
    error = _refusal(path)
    assert time.perf_counter() - started < 0.5
    assert error.kind is ErrorKind.BAD_MODEL and "more than 50,000 tensors" in error.message
    # A background scan of its folder never stalls the GUI thread: json.loads of it held the GIL ~0.3 s.
    stall = _longest_gil_stall(lambda: scan_models([tmp_path]))
    assert stall < 0.1, f"the GUI thread waited {stall * 1000:.0f} ms"


def _checkpoint_with(shape: list[int], offsets: list[int], data: bytes = b"") -> bytes:
    header = {
        UNET_PREFIX + "input_blocks.0.0.weight": {"dtype": "F16", "shape": shape, "data_offsets": offsets},
        UNET_PREFIX + "out.2.bias": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
    }
    return safetensors_bytes(header, bytes(16) + data)


def test_an_empty_tensor_declaring_a_huge_shape_is_a_damaged_file_before_anything_is_allocated(tmp_path):
    path = tmp_path / "liar.safetensors"
    path.write_bytes(_checkpoint_with([10_000_000, 4, 3, 0], [16, 16]))  # 0 bytes: consistent, but not real
    error = _refusal(path)
    assert error.kind is ErrorKind.BAD_MODEL
    assert "declares the shape [10000000, 4, 3, 0] but holds no data" in error.message
    assert "damaged" in error.hint
    with pytest.raises(StudioError, match="holds no data"):  # the model picker and the loader read it so
        inspect_model(path)


def test_an_empty_vector_stays_readable(tmp_path):
    path = tmp_path / "fine.safetensors"
    path.write_bytes(_checkpoint_with([0], [16, 16]))
    assert read_header(path).shape(UNET_PREFIX + "input_blocks.0.0.weight") == (0,)


def test_a_header_over_the_formats_100_mb_says_so(tmp_path):
    path = tmp_path / "big.safetensors"
    length = 102_000_000  # between safetensors' 100,000,000 and 100 MiB: it passed here, failed there
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", length))
        handle.truncate(8 + length + 64)  # sparse: no disk used
    error = _refusal(path)
    assert MAX_HEADER_BYTES == 100_000_000
    assert "its header is 102.0 MB, more than the 100 MB the safetensors format allows" in error.message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_is_said_to_be_one_and_never_opened_for_reading(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    result: list[BaseException] = []
    reader = threading.Thread(target=lambda: result.append(_refusal(fifo)), daemon=True)
    reader.start()
    reader.join(5)
    assert result, "reading the pipe's header blocked"
    assert result[0].kind is ErrorKind.BAD_MODEL
    assert result[0].message == "model.safetensors is a named pipe (FIFO), not a model file."
    with pytest.raises(StudioError, match="named pipe"):
        inspect_model(fifo)


def test_a_lora_name_longer_than_a_file_name_can_be_is_simply_not_found(tmp_path):
    name = "x" * 300  # ENAMETOOLONG used to fail the job
    assert find_lora(name, [tmp_path]) is None
    assert missing_loras(f"a cat <lora:{name}:0.8>", [tmp_path]) == [name]
    assert find_lora("a\x00b", [tmp_path]) is None
