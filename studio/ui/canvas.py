"""The canvas: the document image with its inpainting mask, step previews and results.

What it shows is either the document (the input for img2img/inpaint, with the mask tinted over
it) or a preview/result of a generation. Mask strokes, mask operations and applying a result
all go through one bounded undo stack.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsTextItem,
    QGraphicsView,
)

from studio.core.mask_ops import Brush, Rect, apply_stroke, stroke_segment
from studio.core.undo import PatchCommand, SwapCommand, UndoStack
from studio.ui.images import qimage_from_rgb
from studio.ui.mask_overlay import MaskOverlayItem

ZOOM_STEP = 1.25
MIN_BRUSH, MAX_BRUSH = 1, 1024


class CanvasView(QGraphicsView):
    documentChanged = Signal()
    brushChanged = Signal()
    imagesDropped = Signal(list)  # local file paths

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("canvasView")
        self.setAccessibleName("Canvas")
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setBackgroundBrush(QColor(38, 38, 42))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setMouseTracking(True)
        self.setAcceptDrops(True)
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._item)
        self._overlay = MaskOverlayItem()
        self.scene().addItem(self._overlay)
        self._cursor = QGraphicsEllipseItem()
        pen = QPen(QColor(255, 255, 255, 200))
        pen.setCosmetic(True)
        self._cursor.setPen(pen)
        self._cursor.setZValue(2)
        self._cursor.hide()
        self.scene().addItem(self._cursor)
        self._message = QGraphicsTextItem()
        self._message.setDefaultTextColor(QColor(200, 200, 205))
        self.scene().addItem(self._message)

        self.undo_stack = UndoStack()
        self.document: np.ndarray | None = None  # RGB uint8, the input image
        self.mask: np.ndarray | None = None  # uint8, 255 = repaint
        self.result: np.ndarray | None = None  # the last finished image
        self.result_path: Path | None = None
        self.showing = "none"  # none, document, preview, result
        self.brush = Brush()
        self.erasing = False
        self.mask_visible = True
        self.image_size: tuple[int, int] | None = None
        self._fit = True  # follow the window size until the user zooms
        self._stroke: np.ndarray | None = None  # float coverage of the stroke in progress
        self._stroke_before: np.ndarray | None = None
        self._stroke_rect = Rect(0, 0, 0, 0)
        self._last_point: tuple[float, float] | None = None
        self._pan_from: QPointF | None = None
        self._cursor_pos: QPointF | None = None
        self._space_down = False

    # -- what is shown --------------------------------------------------------------------
    def show_message(self, text: str) -> None:
        self._item.setPixmap(QPixmap())
        self._overlay.hide()
        self.image_size = None
        self.showing = "none"
        self._message.setTextWidth(360)
        self._message.setPlainText(text)
        self._message.setVisible(True)
        self.scene().setSceneRect(self._message.boundingRect())
        self.resetTransform()
        self.centerOn(self._message)

    def show_pixels(self, pixels: np.ndarray, size: tuple[int, int] | None = None, what: str = "preview") -> None:
        """Show an RGB array; a preview at latent resolution is stretched to `size` (w, h)."""
        height, width = pixels.shape[:2]
        target_w, target_h = size or (width, height)
        self._message.setVisible(False)
        self._item.setPixmap(QPixmap.fromImage(qimage_from_rgb(pixels)))
        self._item.setScale(target_w / width)
        self.showing = what
        self._overlay.setVisible(what == "document" and self.mask_visible)
        self._set_scene_size(target_w, target_h)

    def show_result(self, pixels: np.ndarray, path: Path | None = None) -> None:
        self.result = pixels
        self.result_path = path
        self.show_pixels(pixels, what="result")

    def show_document(self) -> None:
        if self.document is not None:
            self.show_pixels(self.document, what="document")

    def _set_scene_size(self, width: int, height: int) -> None:
        if (width, height) != self.image_size:
            self.image_size = (width, height)
            self.scene().setSceneRect(QRectF(0, 0, width, height))
            if self._fit:
                self.fit()

    def current_pixmap(self) -> QPixmap:
        return self._item.pixmap()

    # -- the document and its mask ---------------------------------------------------------
    def set_document(self, pixels: np.ndarray, label: str = "Open image", mask: np.ndarray | None = None) -> None:
        """Make `pixels` the input image (undoable). Without a new mask, the current one
        survives if the size matches."""
        pixels = np.ascontiguousarray(pixels[..., :3], dtype=np.uint8)
        before = self._snapshot()
        if mask is None or mask.shape != pixels.shape[:2]:
            same_size = self.mask is not None and self.mask.shape == pixels.shape[:2]
            mask = self.mask if same_size else np.zeros(pixels.shape[:2], np.uint8)
        after = (pixels, mask.copy())
        self._restore(after)
        self.undo_stack.push(SwapCommand(self._restore, before, after, pixels.nbytes * 2 + mask.nbytes, label))

    def use_result_as_input(self) -> bool:
        if self.result is None:
            return False
        self.set_document(self.result, "Use result as input")
        return True

    def _snapshot(self):
        return None if self.document is None else (self.document, self.mask.copy())

    def _restore(self, state) -> None:
        if state is None:
            self.document, self.mask = None, None
            self.show_message("No image. Open one (Ctrl+O), paste (Ctrl+V) or drop it here.")
        else:
            self.document, mask = state
            self.mask = mask.copy()
            self._overlay.reset(self.mask)
            self.show_document()
        self.documentChanged.emit()

    def clear_mask(self) -> None:
        self._mask_operation(lambda m: np.zeros_like(m), "Clear mask")

    def invert_mask(self) -> None:
        self._mask_operation(lambda m: 255 - m, "Invert mask")

    def fill_mask(self) -> None:
        self._mask_operation(lambda m: np.full_like(m, 255), "Fill mask")

    def _mask_operation(self, operation, label: str) -> None:
        if self.mask is None:
            return
        before = self.mask.copy()
        self.mask[...] = operation(self.mask)
        full = Rect(0, 0, self.mask.shape[1], self.mask.shape[0])
        self.undo_stack.push(PatchCommand(lambda: self.mask, full, before, self.mask.copy(), self._mask_changed, label))
        self._mask_changed(full)

    def _mask_changed(self, rect: Rect) -> None:
        self._overlay.refresh(self.mask, rect)
        if self.showing != "document":
            self.show_document()

    def set_mask_visible(self, visible: bool) -> None:
        self.mask_visible = visible
        self._overlay.setVisible(visible and self.showing == "document")

    # -- brush ----------------------------------------------------------------------------
    def set_brush(self, **changes) -> None:
        size = int(min(MAX_BRUSH, max(MIN_BRUSH, changes.pop("size", self.brush.size))))
        self.brush = replace(self.brush, size=size, **changes)
        self._move_cursor(None)
        self.brushChanged.emit()

    def grow_brush(self, factor: float) -> None:
        self.set_brush(size=max(self.brush.size + 1, round(self.brush.size * factor)) if factor > 1 else round(self.brush.size * factor))

    def set_erasing(self, erasing: bool) -> None:
        self.erasing = erasing
        self.brushChanged.emit()

    def _begin_stroke(self, point: tuple[float, float]) -> None:
        if self._stroke is None or self._stroke.shape != self.mask.shape:
            self._stroke = np.zeros(self.mask.shape, np.float32)
        self._stroke_before = self.mask.copy()
        self._stroke_rect = Rect(0, 0, 0, 0)
        self._last_point = point
        if self.showing != "document":
            self.show_document()
        self._paint_to(point)

    def _paint_to(self, point: tuple[float, float]) -> None:
        rect = stroke_segment(self._stroke, self._last_point, point, self.brush)
        self._last_point = point
        if rect.empty:
            return
        apply_stroke(self.mask, self._stroke_before, self._stroke, rect, self.erasing)
        self._overlay.refresh(self.mask, rect)
        self._stroke_rect = rect.united(self._stroke_rect)

    def _end_stroke(self) -> None:
        rect = self._stroke_rect
        if not rect.empty:
            sl = rect.slices()
            command = PatchCommand(lambda: self.mask, rect, self._stroke_before[sl].copy(), self.mask[sl].copy(),
                                   self._mask_changed, "Erase" if self.erasing else "Stroke")
            self.undo_stack.push(command)
            self._stroke[sl] = 0.0  # reuse the buffer: clear only what this stroke touched
        self._stroke_before = None
        self._last_point = None

    def _move_cursor(self, scene_pos: QPointF | None) -> None:
        if scene_pos is not None:
            self._cursor_pos = scene_pos
        pos = self._cursor_pos
        if pos is None or self.document is None:
            self._cursor.hide()
            return
        radius = self.brush.size / 2
        self._cursor.setRect(QRectF(pos.x() - radius, pos.y() - radius, 2 * radius, 2 * radius))
        self._cursor.show()

    # -- view -----------------------------------------------------------------------------
    def fit(self) -> None:
        self._fit = True
        if self.image_size:
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def actual_size(self) -> None:
        self._fit = False
        self.resetTransform()

    def zoom(self, factor: float) -> None:
        self._fit = False
        self.scale(factor, factor)

    # -- events ---------------------------------------------------------------------------
    def wheelEvent(self, event) -> None:
        if self.image_size:
            self.zoom(ZOOM_STEP if event.angleDelta().y() > 0 else 1 / ZOOM_STEP)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit:
            self.fit()

    def _scene_point(self, event) -> tuple[float, float]:
        point = self.mapToScene(event.position().toPoint())
        return point.x(), point.y()

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton and self._space_down
        ):
            self._pan_from = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        if event.button() == Qt.MouseButton.LeftButton and self.mask is not None:
            self._begin_stroke(self._scene_point(event))
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._pan_from is not None:
            delta = event.position() - self._pan_from
            self._pan_from = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
            return
        self._move_cursor(self.mapToScene(event.position().toPoint()))
        if self._last_point is not None:
            self._paint_to(self._scene_point(event))

    def mouseReleaseEvent(self, event) -> None:
        if self._pan_from is not None:
            self._pan_from = None
            self.viewport().unsetCursor()
            return
        if self._last_point is not None and event.button() == Qt.MouseButton.LeftButton:
            self._end_stroke()
            return
        super().mouseReleaseEvent(event)

    def leaveEvent(self, event) -> None:
        self._cursor.hide()
        super().leaveEvent(event)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self.viewport().unsetCursor()
            return
        super().keyReleaseEvent(event)

    def dragEnterEvent(self, event) -> None:
        if _local_files(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if _local_files(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = _local_files(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.imagesDropped.emit(paths)


def _local_files(mime) -> list[str]:
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []
