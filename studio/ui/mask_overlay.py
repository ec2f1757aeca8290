"""The mask drawn over the image as a translucent tint, updated one dirty rectangle at a time."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QGraphicsItem

from studio.core.mask_ops import Rect

TINT = (255, 64, 96)  # a warm red that reads on most images
TINT_ALPHA = 0.55


class MaskOverlayItem(QGraphicsItem):
    def __init__(self):
        super().__init__()
        self._image = QImage()
        self._pixels: np.ndarray | None = None  # uint32 view of _image's premultiplied ARGB
        self.setZValue(1)

    def reset(self, mask: np.ndarray) -> None:
        height, width = mask.shape
        self.prepareGeometryChange()
        self._image = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)
        stride = self._image.bytesPerLine() // 4
        self._pixels = np.frombuffer(self._image.bits(), np.uint32).reshape(height, stride)[:, :width]
        self.refresh(mask, Rect(0, 0, width, height))

    def refresh(self, mask: np.ndarray, rect: Rect) -> None:
        """Recolour `rect` from the mask (premultiplied tint scaled by mask * TINT_ALPHA)."""
        if self._pixels is None or rect.empty:
            return
        alpha = mask[rect.slices()].astype(np.uint32) * int(TINT_ALPHA * 256) >> 8
        red, green, blue = ((alpha * c) // 255 for c in TINT)
        self._pixels[rect.slices()] = (alpha << 24) | (red << 16) | (green << 8) | blue
        self.update(QRectF(rect.x, rect.y, rect.w, rect.h))

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self._image.width(), self._image.height())

    def paint(self, painter, option, widget=None) -> None:
        exposed = option.exposedRect.toAlignedRect().intersected(self._image.rect())
        if not exposed.isEmpty():
            painter.drawImage(exposed, self._image, exposed)
