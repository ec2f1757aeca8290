"""Canvas and mode-switch measurements for `studio bench` (issue: canvas, img2img, inpaint).

- brush: GUI time of each mouse-move event of a stroke on a 2048x2048 canvas, including a
  synchronous repaint of the region it dirtied;
- mode switch: time to get the img2img and inpaint pipelines from a loaded txt2img model, and
  whether their weights are the very same tensors (no reload, no copy).
"""

from __future__ import annotations

import statistics
import time

import numpy as np


def measure_brush(size: int = 2048, moves: int = 200, brush: int = 96) -> dict:
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    from studio.ui.canvas import CanvasView

    app = QApplication.instance() or QApplication([])
    view = CanvasView()
    view.resize(1200, 900)
    view.show()
    app.processEvents()
    rng = np.random.default_rng(0)
    view.set_document(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    view.set_brush(size=brush, hardness=0.5, opacity=1.0)
    view.fit()
    app.processEvents()

    def send(kind, x, y) -> None:
        pos = QPointF(view.mapFromScene(QPointF(x, y)))
        buttons = Qt.MouseButton.LeftButton if kind != QMouseEvent.Type.MouseButtonRelease else Qt.MouseButton.NoButton
        event = QMouseEvent(kind, pos, view.viewport().mapToGlobal(pos), Qt.MouseButton.LeftButton, buttons,
                            Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(view.viewport(), event)

    times = []
    x, y = size / 2 + size * 0.35, size / 2
    send(QMouseEvent.Type.MouseButtonPress, x, y)
    for i in range(1, moves):
        angle = i / moves * 6.28
        last = (x, y)
        x, y = size / 2 + np.cos(angle) * size * 0.35, size / 2 + np.sin(angle * 2) * size * 0.35
        started = time.perf_counter()
        send(QMouseEvent.Type.MouseMove, x, y)
        # Paint the segment's region now, inside the clock (offscreen Qt may defer or skip it).
        r = brush / 2 + 2
        dirty = QRectF(QPointF(min(last[0], x) - r, min(last[1], y) - r), QPointF(max(last[0], x) + r, max(last[1], y) + r))
        view.viewport().repaint(view.mapFromScene(dirty).boundingRect())
        app.processEvents()
        times.append((time.perf_counter() - started) * 1000)
    send(QMouseEvent.Type.MouseButtonRelease, x, y)
    painted = int((view.mask > 0).sum())
    view.close()
    return {
        "brush_canvas": f"{size}x{size}",
        "brush_px": brush,
        "brush_move_ms_median": statistics.median(times),
        "brush_move_ms_p99": sorted(times)[int(0.99 * (len(times) - 1))],
        "brush_move_ms_max": max(times),
        "brush_painted_px": painted,
    }


def measure_mode_switch(pipe, family) -> dict:
    from studio.core.generation.request import Mode
    from studio.engine.loader import pipeline_for_mode

    base = {name: p.data_ptr() for name, p in pipe.unet.named_parameters()}
    times, shared = {}, True
    for mode in (Mode.IMG2IMG, Mode.INPAINT):
        started = time.perf_counter()
        view = pipeline_for_mode(pipe, family, mode)
        times[mode.value] = (time.perf_counter() - started) * 1000
        shared &= {n: p.data_ptr() for n, p in view.unet.named_parameters()} == base
        shared &= view.vae is pipe.vae and view.text_encoder is pipe.text_encoder
    return {"mode_switch_ms": max(times.values()), "mode_switch_each_ms": times, "mode_switch_shares_weights": shared}
