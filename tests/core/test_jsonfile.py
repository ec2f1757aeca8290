import json

import pytest

from studio.core.storage.jsonfile import read_json_object


def test_reads_an_object(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"name": "x", "n": 3}), encoding="utf-8")
    assert read_json_object(path) == {"name": "x", "n": 3}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"[1, 2]",
        b'"text"',
        b"null",
        b"\xff\xfe{}",  # not UTF-8
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": [1e400]}',
        b'{"a": -1e999}',
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError in the json module
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
)
def test_damaged_files_give_none_never_an_exception(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    assert read_json_object(path) is None


def test_missing_file_and_folder_give_none(tmp_path):
    assert read_json_object(tmp_path / "missing.json") is None
    assert read_json_object(tmp_path) is None  # a folder: OSError (IsADirectoryError)
    assert read_json_object(str(tmp_path / "a\0b.json")) is None  # ValueError from the OS layer


def test_oversize_file_is_not_read(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"a": "x" * 2000}), encoding="utf-8")
    assert read_json_object(path, max_bytes=1000) is None
    assert read_json_object(path, max_bytes=10_000) == {"a": "x" * 2000}


def test_a_fifo_is_not_waited_on(tmp_path):
    import os

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    path = tmp_path / "fifo.json"
    os.mkfifo(path)
    assert read_json_object(path) is None  # would block forever if opened for reading


def test_bom_is_tolerated(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"a": 1}).encode())
    assert read_json_object(path) == {"a": 1}
