"""History thumbnails are read off the GUI thread (issue 12): a FIFO, a device or a file on a
hung disk in the history can never freeze the window. Only what the view paints is read, the
most recently asked first, and what was read is cached."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer

from studio.core.generation.request import GenerationRequest
from studio.core.storage.history import History, HistoryEntry
from studio.core.storage.outputs import png_bytes
from studio.ui import history_panel
from studio.ui.history_panel import HistoryPanel, ThumbnailReader

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


class Reads:
    """Wraps the safe reader the panel uses: records the thread of every read, and can make
    reading one path block until released (as QImageReader on a FIFO did, in the GUI thread)."""

    def __init__(self, monkeypatch, real=history_panel.read_session_image):
        self.real = real
        self.threads: list[int] = []
        self.paths: list[str] = []
        self.blocking: str | None = None
        self.blocked = threading.Event()
        monkeypatch.setattr(history_panel, "read_session_image", self)

    def __call__(self, path, mode):
        self.threads.append(threading.get_ident())
        self.paths.append(str(path))
        if str(path) == self.blocking:
            self.blocked.set()
            with open(path, "rb"):  # a FIFO opened like any file: waits for a writer
                pass
        return self.real(path, mode)


def _release(fifo: Path) -> None:
    """A writer opens and closes the FIFO: a reader blocked in open() goes on (and reads EOF).
    ENXIO until the reader is really in open(): try for a while."""
    deadline = time.monotonic() + 5
    while True:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _entry_line(path: Path, seed: int, when: float) -> str:
    return HistoryEntry(str(path), f"picture {seed}", seed=seed, width=64, height=64, time=when).to_json() + "\n"


def _panel(qtbot, tmp_path, paths: list[Path]) -> HistoryPanel:
    index = tmp_path / "history.jsonl"
    now = time.time()
    index.write_text("".join(_entry_line(p, n, now - n) for n, p in enumerate(paths)), encoding="utf-8")
    history = History(index)
    assert history.load() == []
    panel = HistoryPanel(history)
    qtbot.addWidget(panel)
    panel.resize(400, 400)
    panel.show()
    return panel


def _red_image(folder: Path, name: str = "red.png") -> Path:
    path = folder / name
    request = GenerationRequest(prompt="red", seed=1, width=128, height=96)
    path.write_bytes(png_bytes(Image.new("RGB", (128, 96), (200, 30, 30)), request))
    return path


def _icon(panel: HistoryPanel, path: Path):
    row = next(r for r, e in enumerate(panel.model.entries) if e.path == str(path))
    return panel.model.index(row).data(Qt.ItemDataRole.DecorationRole)


class Ticks:
    """A 10 ms timer on the GUI thread: it fires only while the event loop turns."""

    def __init__(self):
        self.times: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    def tick(self) -> None:
        self.times.append(time.monotonic())

    def stop(self) -> None:
        self.timer.stop()


@needs_fifo
def test_a_fifo_in_the_history_shows_a_placeholder_and_a_normal_image_its_thumbnail(qtbot, tmp_path, monkeypatch):
    reads = Reads(monkeypatch)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    red = _red_image(tmp_path)
    panel = _panel(qtbot, tmp_path, [red, fifo])
    qtbot.waitUntil(lambda: panel.model.has_thumbnail(str(red)) and panel.model.is_unreadable(str(fifo)), timeout=5000)
    assert panel.model.is_placeholder(_icon(panel, fifo))
    icon = _icon(panel, red)
    assert not panel.model.is_placeholder(icon)
    image = icon.pixmap(96, 96).toImage()
    assert (image.width(), image.height()) == (96, 96), "one tile size for every shape"
    color = image.pixelColor(48, 48)
    assert (color.red(), color.green(), color.blue()) == (200, 30, 30)
    assert image.pixelColor(48, 5).alpha() == 0 and image.pixelColor(48, 13).red() == 200, "96x72 centred, aspect kept"
    assert sorted(reads.paths) == sorted([str(red), str(fifo)])
    assert threading.get_ident() not in reads.threads, "the GUI thread never opens a history file"
    assert panel.close_thumbnails(5)


@needs_fifo
def test_a_read_that_blocks_forever_leaves_the_window_responsive(qtbot, tmp_path, monkeypatch):
    reads = Reads(monkeypatch)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    reads.blocking = str(fifo)
    red = _red_image(tmp_path)
    ticks = Ticks()
    panel = _panel(qtbot, tmp_path, [fifo, red])  # the FIFO is the newest: read first
    try:
        qtbot.waitUntil(reads.blocked.is_set, timeout=5000)  # the reader is stuck in the FIFO
        start = len(ticks.times)
        qtbot.wait(300)
        assert len(ticks.times) - start >= 5, "the event loop kept turning"
        panel.search.setText("picture 1")  # the panel still answers
        assert panel.model.rowCount() == 1
        panel.search.clear()
        assert panel.model.is_placeholder(_icon(panel, fifo))
    finally:
        ticks.stop()
        _release(fifo)
    qtbot.waitUntil(lambda: panel.model.is_unreadable(str(fifo)) and panel.model.has_thumbnail(str(red)), timeout=5000)
    assert threading.get_ident() not in reads.threads
    assert panel.close_thumbnails(5)


def test_thousands_of_entries_open_at_once_and_only_what_is_shown_is_read(qtbot, tmp_path, monkeypatch):
    reads = Reads(monkeypatch, real=lambda path, mode: np.full((64, 64, 3), 90, np.uint8))
    paths = [tmp_path / f"{n:05d}.png" for n in range(3000)]
    started = time.perf_counter()
    panel = _panel(qtbot, tmp_path, paths)
    qtbot.waitUntil(lambda: panel.model.has_thumbnail(str(paths[0])), timeout=5000)
    opened = time.perf_counter() - started
    assert opened < 3.0, opened  # ~0.1 s here; reading all 3000 would be the old stall
    qtbot.wait(100)
    shown = len(reads.paths)
    assert 1 <= shown <= 60, shown
    # The top rows, which are on screen (QListView also asks for the last item once, laying out).
    assert set(reads.paths) - {str(paths[-1])} <= {str(p) for p in paths[:60]}, reads.paths
    # Cached: a refresh (a new entry, a search cleared) repaints without reading again.
    panel.refresh()
    qtbot.wait(100)
    assert len(reads.paths) == shown
    # Scrolled to the end: the last rows are read.
    panel.view.scrollToBottom()
    qtbot.waitUntil(lambda: panel.model.has_thumbnail(str(paths[-2])), timeout=5000)
    assert len(reads.paths) <= 2 * shown + 10
    assert panel.close_thumbnails(5)


def test_the_reader_thread_ends_when_the_panel_is_deleted_without_close(qtbot, tmp_path):
    from shiboken6 import Shiboken

    red = _red_image(tmp_path)
    panel = _panel(qtbot, tmp_path, [red])
    qtbot.waitUntil(lambda: panel.model.has_thumbnail(str(red)), timeout=5000)
    thread = panel.model.reader.thread
    assert thread is not None and thread.is_alive() and thread.daemon
    Shiboken.delete(panel)
    thread.join(5)
    assert not thread.is_alive()


# -- the reader on its own (no Qt) --------------------------------------------------------------
def _gated_reader(monkeypatch, max_waiting=3):
    """A reader whose first read waits for `gate`, so asks pile up behind it."""
    gate, order, results = threading.Event(), [], []

    def read(path, mode):
        order.append(path)
        if len(order) == 1:
            gate.wait(5)
        return np.zeros((8, 8, 3), np.uint8)

    monkeypatch.setattr(history_panel, "read_session_image", read)
    done = threading.Event()

    def deliver(path, pixels):
        results.append((path, pixels))
        done.set()

    return ThumbnailReader(deliver, size=4, max_waiting=max_waiting), gate, order, results


def test_the_newest_asks_are_read_first_and_old_ones_dropped(monkeypatch):
    reader, gate, order, results = _gated_reader(monkeypatch)
    assert reader.want("first") == []
    deadline = time.monotonic() + 5
    while not order and time.monotonic() < deadline:
        time.sleep(0.005)
    dropped = [p for n in range(6) for p in reader.want(f"p{n}")]
    assert dropped == ["p0", "p1", "p2"], "the asks made longest ago go"
    gate.set()
    deadline = time.monotonic() + 5
    while len(results) < 4 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert order == ["first", "p5", "p4", "p3"], "newest first: what the view painted last is on screen"
    assert all(pixels.shape == (4, 4, 3) for _, pixels in results)
    assert reader.close(5)


def test_a_listener_that_raises_does_not_stop_the_reader(monkeypatch):
    monkeypatch.setattr(history_panel, "read_session_image", lambda path, mode: np.zeros((8, 8, 3), np.uint8))
    heard = []

    def deliver(path, pixels):
        heard.append(path)
        raise RuntimeError("Internal C++ object already deleted")

    reader = ThumbnailReader(deliver)
    reader.want("a")
    deadline = time.monotonic() + 5
    while not heard and time.monotonic() < deadline:
        time.sleep(0.005)
    reader.want("b")
    while len(heard) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert heard == ["a", "b"]
    assert reader.close(5) and reader.want("c") == ["c"], "closed: nothing more is read"


def test_read_thumbnail_refuses_what_is_not_a_regular_image(tmp_path):
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "text.png").write_text(json.dumps({"not": "an image"}))
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("folder.png", "text.png", "empty.png", "gone.png"):
        assert history_panel.read_thumbnail(str(tmp_path / name)) is None, name
    assert history_panel.read_thumbnail(str(_red_image(tmp_path)), 32).shape == (24, 32, 3)
