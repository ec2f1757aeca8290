"""The writer thread (issue 12 item 7): images written in order, off the caller's thread; a
failed write reports the error with the pixels, and the writes after it still happen."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from studio.core.events import ImageSaved, ImageSaveFailed
from studio.core.generation.request import GenerationRequest
from studio.core.storage.image_writer import ImageWriter
from studio.core.storage.outputs import OutputWriter, read_request


def pixels(shade: int) -> np.ndarray:
    return np.full((16, 16, 3), shade, np.uint8)


def req(seed: int) -> GenerationRequest:
    return GenerationRequest(prompt="a red circle", seed=seed, width=16, height=16)


def test_writes_in_order_on_its_own_thread(tmp_path):
    results, threads = [], set()

    def heard(result):
        results.append(result)
        threads.add(threading.get_ident())

    writer = ImageWriter(OutputWriter(tmp_path), heard)
    for n in range(3):
        writer.submit("job", n, pixels(10 * n), req(n))
    assert writer.flush(10)
    assert writer.pending == 0
    assert [type(r) for r in results] == [ImageSaved] * 3
    assert [r.image_index for r in results] == [0, 1, 2]
    names = [r.path.name for r in results]
    assert names == sorted(names), "numbered in the order the images were made"
    for n, result in enumerate(results):
        assert np.array_equal(np.asarray(Image.open(result.path)), pixels(10 * n))
        assert read_request(result.path) == req(n)
    assert threads and threading.get_ident() not in threads
    assert writer.close(5)


def test_a_failed_write_carries_the_pixels_and_the_next_one_still_happens(tmp_path):
    class Flaky(OutputWriter):
        calls = 0

        def save(self, image, request):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise OSError(28, "No space left on device")
            return super().save(image, request)

    results = []
    writer = ImageWriter(Flaky(tmp_path), results.append)
    writer.submit("job", 0, pixels(1), req(0))
    writer.submit("job", 1, pixels(2), req(1))
    assert writer.close(10)
    failed, saved = results
    assert isinstance(failed, ImageSaveFailed) and isinstance(saved, ImageSaved)
    assert np.array_equal(failed.image, pixels(1)) and failed.request == req(0)
    assert "No space left on device" in failed.error.message
    assert "Save as" in failed.error.hint
    assert saved.path.is_file()


def test_a_listener_that_raises_does_not_stop_the_writer(tmp_path):
    seen = []

    def broken(result):
        seen.append(result)
        raise RuntimeError("listener bug")

    writer = ImageWriter(OutputWriter(tmp_path), broken)
    writer.submit("job", 0, pixels(1), req(0))
    writer.submit("job", 1, pixels(2), req(1))
    assert writer.close(10)
    assert len(seen) == 2


def test_no_thread_until_the_first_image_and_none_after_close(tmp_path):
    writer = ImageWriter(OutputWriter(tmp_path), lambda result: None)
    assert writer._thread is None and writer.flush(0) and writer.close(1)
    with pytest.raises(RuntimeError):
        writer.submit("job", 0, pixels(1), req(0))
