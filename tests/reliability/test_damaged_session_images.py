"""A damaged session canvas or mask (truncated, empty, not an image, a FIFO, a mask of the wrong
size) never stops the studio: it is set aside with a message and the rest of the session comes back."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from studio.core.generation.settings import Settings
from studio.core.storage.session import Session, SessionImageError, read_session_image, save_session, session_images_dir


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD_CANVAS = _png(np.full((64, 64, 3), 90, np.uint8))
DAMAGES = {
    "truncated": GOOD_CANVAS[: len(GOOD_CANVAS) // 2],
    "empty": b"",
    "not an image": b"hello, this is text, not a PNG\n" * 10,
    "header only": GOOD_CANVAS[:33],
    "bad checksum": GOOD_CANVAS[:40] + bytes([GOOD_CANVAS[40] ^ 0xFF]) + GOOD_CANVAS[41:],
}


def _save(canvas: bytes | None, mask: bytes | None) -> None:
    folder = session_images_dir()
    folder.mkdir(parents=True, exist_ok=True)
    canvas_path, mask_path = folder / "canvas.png", folder / "mask.png"
    if canvas is not None:
        canvas_path.write_bytes(canvas)
    if mask is not None:
        mask_path.write_bytes(mask)
    save_session(Session(Settings(prompt="kept prompt"), str(canvas_path), str(mask_path)))


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_canvas_is_set_aside_and_the_studio_starts(qtbot, make_window, damage):
    _save(DAMAGES[damage], _png(np.full((64, 64), 255, np.uint8)))
    window = make_window()  # would abort (SIGABRT in Qt) or raise in start() before the fix
    assert window.panel.prompt.toPlainText() == "kept prompt"
    assert window.canvas.document is None
    assert window.banner.isVisible() and "canvas image could not be restored" in window.banner.label.text()
    assert not (session_images_dir() / "canvas.png").exists()
    assert list(session_images_dir().glob("canvas.png.unreadable-*"))


def test_a_damaged_mask_keeps_the_canvas(qtbot, make_window):
    _save(GOOD_CANVAS, DAMAGES["truncated"])
    window = make_window()
    assert window.canvas.document is not None and window.canvas.document[0, 0, 0] == 90
    assert window.canvas.mask.max() == 0
    assert "mask could not be restored" in window.banner.label.text()


def test_a_mask_of_another_size_is_dropped(qtbot, make_window):
    _save(GOOD_CANVAS, _png(np.full((32, 48), 255, np.uint8)))
    window = make_window()
    assert window.canvas.document is not None and window.canvas.mask.max() == 0
    assert "does not fit" in window.banner.label.text()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "canvas.png"
    os.mkfifo(fifo)
    with pytest.raises(SessionImageError, match="not a regular file"):
        read_session_image(fifo, "RGB")


def test_an_image_too_large_is_refused_before_decoding(tmp_path, monkeypatch):
    import studio.core.storage.session as session_module

    monkeypatch.setattr(session_module, "MAX_SESSION_IMAGE_SIDE", 32)
    path = tmp_path / "canvas.png"
    path.write_bytes(GOOD_CANVAS)
    with pytest.raises(SessionImageError, match="out of range"):
        read_session_image(path, "RGB")


def test_a_session_pointing_outside_its_folder_is_not_renamed(qtbot, make_window, tmp_path):
    foreign = tmp_path / "someone-elses.png"
    foreign.write_bytes(b"not mine to move")
    save_session(Session(Settings(prompt="p"), str(foreign), None))
    window = make_window()
    assert window.canvas.document is None and foreign.exists()
