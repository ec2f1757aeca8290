"""The canvas: shows the image being denoised, then the result. Zoom and pan."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsTextItem, QGraphicsView

from studio.ui.images import qimage_from_rgb

ZOOM_STEP = 1.25


class CanvasView(QGraphicsView):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("canvasView")
        self.setAccessibleName("Canvas")
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setBackgroundBrush(QColor(38, 38, 42))
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._item)
        self._message = QGraphicsTextItem()
        self._message.setDefaultTextColor(QColor(200, 200, 205))
        self.scene().addItem(self._message)
        self._fit = True  # follow the window size until the user zooms
        self.image_size: tuple[int, int] | None = None

    # -- content --------------------------------------------------------------------------
    def show_message(self, text: str) -> None:
        self._item.setPixmap(QPixmap())
        self.image_size = None
        self._message.setTextWidth(360)
        self._message.setPlainText(text)
        self._message.setVisible(True)
        self.scene().setSceneRect(self._message.boundingRect())
        self.resetTransform()
        self.centerOn(self._message)

    def show_pixels(self, pixels: np.ndarray, size: tuple[int, int] | None = None) -> None:
        """Show an RGB array; a preview at latent resolution is stretched to `size` (w, h)."""
        height, width = pixels.shape[:2]
        target_w, target_h = size or (width, height)
        self._message.setVisible(False)
        self._item.setPixmap(QPixmap.fromImage(qimage_from_rgb(pixels)))
        self._item.setScale(target_w / width)
        new_size = (target_w, target_h)
        if new_size != self.image_size:
            self.image_size = new_size
            self.scene().setSceneRect(QRectF(0, 0, target_w, target_h))
            if self._fit:
                self.fit()

    def current_pixmap(self) -> QPixmap:
        return self._item.pixmap()

    # -- view -----------------------------------------------------------------------------
    def fit(self) -> None:
        self._fit = True
        if self.image_size:
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def actual_size(self) -> None:
        self._fit = False
        self.resetTransform()

    def wheelEvent(self, event) -> None:
        if not self.image_size:
            return
        self._fit = False
        factor = ZOOM_STEP if event.angleDelta().y() > 0 else 1 / ZOOM_STEP
        self.scale(factor, factor)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit:
            self.fit()
