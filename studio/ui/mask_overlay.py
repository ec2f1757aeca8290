"""The mask drawn over the image, updated one dirty rectangle at a time.

A plain red tint vanished over red objects, so the mask is drawn three ways at once: diagonal
stripes of the mask colour alternating with a contrasting dark (or light) colour, so one of the
two shows on any image, and a black-and-white dashed outline ("marching ants") along the edge
the denoiser will see (the mask binarised at half). Small images are drawn at a finer
resolution than their pixels, so stripes and outline stay thin when zoomed to fit.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QGraphicsItem

from studio.core.canvas.mask_ops import Rect, mask_edges

DEFAULT_COLOR = "#ff3060"  # a warm red; the stripes and outline carry it over red images
TINT_ALPHA = 0.55
CONTRAST_ALPHA = 0.45
TARGET_SIDE = 512  # draw the overlay at least this fine (in overlay pixels) on the shorter side
MAX_FACTOR = 8


def _contrast_for(color: QColor) -> tuple[int, int, int]:
    """Near-black beside a light or saturated colour, white beside a dark one."""
    luminance = 0.299 * color.red() + 0.587 * color.green() + 0.114 * color.blue()
    return (16, 16, 24) if luminance >= 80 else (240, 240, 245)


def _premultiplied(alpha: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    red, green, blue = ((alpha * c) // 255 for c in rgb)
    return (alpha << 24) | (red << 16) | (green << 8) | blue


class MaskOverlayItem(QGraphicsItem):
    def __init__(self):
        super().__init__()
        self._image = QImage()
        self._pixels: np.ndarray | None = None  # uint32 view of _image's premultiplied ARGB
        self._mask: np.ndarray | None = None
        self.factor = 1  # overlay pixels per image pixel
        self.period = 1  # stripe width, in overlay pixels
        self.color = QColor(DEFAULT_COLOR)
        self.setZValue(1)

    def set_color(self, color: QColor | str) -> None:
        self.color = QColor(color)
        if self._mask is not None:
            self.refresh(self._mask, Rect(0, 0, self._mask.shape[1], self._mask.shape[0]))

    def reset(self, mask: np.ndarray) -> None:
        height, width = mask.shape
        self.factor = int(min(MAX_FACTOR, max(1, -(-TARGET_SIDE // max(1, min(width, height))))))
        side = min(width, height) * self.factor
        self.period = max(2, round(side / 64))
        self.prepareGeometryChange()
        self.setScale(1 / self.factor)
        self._image = QImage(width * self.factor, height * self.factor, QImage.Format.Format_ARGB32_Premultiplied)
        stride = self._image.bytesPerLine() // 4
        words = np.frombuffer(self._image.bits(), np.uint32).reshape(height * self.factor, stride)
        self._pixels = words[:, : width * self.factor]
        self._mask = mask
        self.refresh(mask, Rect(0, 0, width, height))

    def refresh(self, mask: np.ndarray, rect: Rect) -> None:
        """Redraw `rect` (and the one-pixel ring around it, whose outline may have changed)."""
        if self._pixels is None or rect.empty:
            return
        self._mask = mask
        height, width = mask.shape
        x0, y0 = max(rect.x - 1, 0), max(rect.y - 1, 0)
        x1, y1 = min(rect.x + rect.w + 1, width), min(rect.y + rect.h + 1, height)
        f = self.factor
        self._pixels[y0 * f : y1 * f, x0 * f : x1 * f] = 0
        # Only the part holding mask pixels (and its ring) needs colouring: a full refresh of a
        # 2048 px canvas with a small mask stays cheap.
        rows = np.flatnonzero(mask[y0:y1, x0:x1].any(axis=1))
        if rows.size:
            cols = np.flatnonzero(mask[y0 + rows[0] : y0 + rows[-1] + 1, x0:x1].any(axis=0))
            self._paint(mask, max(x0, x0 + cols[0] - 1), max(y0, y0 + rows[0] - 1),
                        min(x1, x0 + cols[-1] + 2), min(y1, y0 + rows[-1] + 2))
        self.update(QRectF(x0 * f, y0 * f, (x1 - x0) * f, (y1 - y0) * f))

    def _paint(self, mask: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
        height, width = mask.shape
        f = self.factor
        rx0, ry0, rx1, ry1 = max(x0 - 1, 0), max(y0 - 1, 0), min(x1 + 1, width), min(y1 + 1, height)
        window = mask[ry0:ry1, rx0:rx1]
        if f > 1:
            window = np.repeat(np.repeat(window, f, axis=0), f, axis=1)
        inner = (slice((y0 - ry0) * f, (y1 - ry0) * f), slice((x0 - rx0) * f, (x1 - rx0) * f))
        edges = mask_edges(window)[inner]
        values = window[inner]
        ys = np.arange(y0 * f, y1 * f, dtype=np.int32)[:, None]
        xs = np.arange(x0 * f, x1 * f, dtype=np.int32)[None, :]
        stripe = (xs + ys) % (2 * self.period) < self.period
        tint, contrast = self._luts()
        out = np.where(stripe, tint[values], contrast[values])
        ant = max(2, self.period)
        black = (xs - ys) % (2 * ant) < ant
        out[edges & black] = 0xFF000000
        out[edges & ~black] = 0xFFFFFFFF
        self._pixels[y0 * f : y1 * f, x0 * f : x1 * f] = out

    def _luts(self) -> tuple[np.ndarray, np.ndarray]:
        """Premultiplied ARGB for each mask value (0..255), for the stripes of each colour."""
        key = self.color.rgb()
        if getattr(self, "_lut_key", None) != key:
            values = np.arange(256, dtype=np.uint32)
            color = (self.color.red(), self.color.green(), self.color.blue())
            self._lut = (_premultiplied((values * int(TINT_ALPHA * 256)) >> 8, color),
                         _premultiplied((values * int(CONTRAST_ALPHA * 256)) >> 8, _contrast_for(self.color)))
            self._lut_key = key
        return self._lut

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self._image.width(), self._image.height())

    def paint(self, painter, option, widget=None) -> None:
        exposed = option.exposedRect.toAlignedRect().intersected(self._image.rect())
        if not exposed.isEmpty():
            painter.drawImage(exposed, self._image, exposed)
