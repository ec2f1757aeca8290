"""The canvas: the document image with its inpainting mask, step previews and results.

What it shows is either the document (the input for img2img/inpaint, with the mask drawn over
it) or a preview/result of a generation. Strokes, mask operations, new input images, canvas
extensions (outpainting) and each result shown all go through one bounded undo stack, one step
each, in the order they happened: undo after inpainting first takes the result away, then the
stroke, and redo brings both back. Previews are never undo steps.
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
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsTextItem,
    QGraphicsView,
)

from studio.core.canvas.mask_ops import (
    Brush,
    Extension,
    Rect,
    apply_stroke,
    default_brush_size,
    extend_image,
    snap_extension,
    stroke_segment,
)
from studio.core.canvas.undo import Command, GroupCommand, PatchCommand, SwapCommand, UndoStack
from studio.ui.images import qimage_from_rgb
from studio.ui.mask_overlay import DEFAULT_COLOR, MaskOverlayItem

ZOOM_STEP = 1.25
MIN_BRUSH, MAX_BRUSH = 1, 1024
SLIDER_MAX_BRUSH = 256  # the toolbar slider's top; the default brush stays within it
HANDLE_PX = 10  # how far outside the image (in screen pixels) a border can be grabbed to extend it
EMPTY_TEXT = "No image. Open one (Ctrl+O), paste (Ctrl+V) or drop it here."


def _same_view(a: tuple, b: tuple) -> bool:
    # Arrays compare by identity: a view state holds the very result array it shows.
    return all(x is y or (isinstance(x, str) and x == y) for x, y in zip(a, b, strict=False))


class CanvasView(QGraphicsView):
    documentChanged = Signal()
    brushChanged = Signal()
    imagesDropped = Signal(list)  # local file paths
    maskColorChanged = Signal(str)  # "#rrggbb", chosen by the artist
    extended = Signal()  # the canvas grew for outpainting: the window switches to Inpaint

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
        self._extend_preview = QGraphicsRectItem()  # the outline while a border is dragged
        dashed = QPen(QColor(255, 255, 255, 220), 1.5, Qt.PenStyle.DashLine)
        dashed.setCosmetic(True)
        self._extend_preview.setPen(dashed)
        self._extend_preview.setZValue(3)
        self._extend_preview.hide()
        self.scene().addItem(self._extend_preview)

        self.undo_stack = UndoStack()
        self.undo_stack.listeners.append(self._record_view)
        self.document: np.ndarray | None = None  # RGB uint8, the input image
        self.mask: np.ndarray | None = None  # uint8, 255 = repaint
        self.result: np.ndarray | None = None  # the result on the canvas (None: the input is)
        self.result_path: Path | None = None
        self.view = "none"  # what the canvas shows between previews: none, document or result
        self.showing = "none"  # what is on screen now: none, document, preview or result
        self._message_text = EMPTY_TEXT
        self._recorded_view = self._view_state()  # the view as the undo stack last left it
        self.brush = Brush()
        self._brush_image_size: tuple[int, int] | None = None  # the image size the brush suits
        self._brush_chosen = False  # the artist set a size before any image arrived
        self.outpaint_fill = "stretch"  # what border drags fill the new area with
        self.outpaint_overlap = 8  # pixels of the old image repainted along the seam
        self._handle: str | None = None  # the border being dragged: left, top, right or bottom
        self._handle_from: QPointF | None = None
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
        self._message_text = text
        self.view = "none"
        self._display_message(text)

    def _display_message(self, text: str) -> None:
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
        """Show an RGB array; a preview at latent resolution is stretched to `size` (w, h).
        A preview is never an undo step: when the job ends, show_current() puts back the view."""
        height, width = pixels.shape[:2]
        target_w, target_h = size or (width, height)
        self._message.setVisible(False)
        self._item.setPixmap(QPixmap.fromImage(qimage_from_rgb(pixels)))
        self._item.setScale(target_w / width)
        self.showing = what
        self._overlay.setVisible(what == "document" and self.mask_visible)
        self._set_scene_size(target_w, target_h)

    def show_result(self, pixels: np.ndarray, path: Path | None = None, label: str = "Show result") -> None:
        """Put a finished (or reopened) image on the canvas: one undo step, so Undo takes it
        away again and Redo brings it back."""
        before, after = self._recorded_view, ("result", pixels, path)
        self._set_view(after)
        if not _same_view(before, after):
            self.undo_stack.push(SwapCommand(self._set_view, before, after, pixels.nbytes, label))

    def show_document(self) -> None:
        if self.document is not None:
            self.view = "document"
            self.show_pixels(self.document, what="document")

    def show_current(self) -> None:
        """Back to the canvas's own view after previews (a cancelled or failed job)."""
        self._set_view(self._view_state())

    def _view_state(self) -> tuple:
        return (self.view, self.result, self.result_path)

    def _set_view(self, state: tuple) -> None:
        self.view, self.result, self.result_path = state
        if self.view == "result" and self.result is not None:
            self.show_pixels(self.result, what="result")
            self._image_arrived(self.result)
        elif self.view == "document" and self.document is not None:
            self.show_document()
        else:
            self.show_message(self._message_text)

    def _record_view(self) -> None:
        self._recorded_view = self._view_state()

    def _push(self, command: Command) -> None:
        """Record a change already made; if it also changed what the canvas shows (a stroke
        that brought the input back over a result), the view change is part of the same step."""
        now = self._view_state()
        if not _same_view(self._recorded_view, now):
            command = GroupCommand([SwapCommand(self._set_view, self._recorded_view, now, 0), command], command.label)
        self.undo_stack.push(command)

    def undo(self) -> bool:
        self._cancel_stroke()
        return self.undo_stack.undo()

    def redo(self) -> bool:
        self._cancel_stroke()
        return self.undo_stack.redo()

    def _cancel_stroke(self) -> None:
        if self._last_point is not None:  # Ctrl+Z with the button still down: finish it first
            self._end_stroke()

    def _set_scene_size(self, width: int, height: int) -> None:
        if (width, height) != self.image_size:
            self.image_size = (width, height)
            self.scene().setSceneRect(self._framed(width, height))
            if self._fit:
                self.fit()

    @staticmethod
    def _framed(width: int, height: int) -> QRectF:
        """The image with a margin around it: room to grab a border and drag it outwards."""
        margin = max(8.0, 0.04 * max(width, height))
        return QRectF(-margin, -margin, width + 2 * margin, height + 2 * margin)

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
        self.result, self.result_path = None, None  # the input is what the canvas now shows
        self._push(SwapCommand(self._restore, before, after, pixels.nbytes * 2 + mask.nbytes, label))

    def use_result_as_input(self) -> bool:
        if self.result is None:
            return False
        self.set_document(self.result, "Use result as input")
        return True

    def shown_image(self) -> np.ndarray | None:
        """What the artist sees between previews: the result on the canvas, else the input."""
        return self.result if self.view == "result" and self.result is not None else self.document

    # -- outpainting ----------------------------------------------------------------------
    def extend(self, ext: Extension, fill: str | None = None, overlap: int | None = None) -> bool:
        """Grow the shown image by `ext` (sides snapped so the size stays a multiple of 8), fill
        the new area, and mask it plus a feathered seam: one undo step. The window then switches
        to Inpaint (`extended`), so Generate outpaints."""
        pixels = self.shown_image()
        if pixels is None:
            return False
        height, width = pixels.shape[:2]
        ext = snap_extension(width, height, ext)
        if ext.empty:
            return False
        fill = fill or self.outpaint_fill
        overlap = self.outpaint_overlap if overlap is None else overlap
        # An inpainting mask belongs to the input; on a result being extended it starts empty.
        keep = self.mask if pixels is self.document else None
        grown, mask = extend_image(pixels, keep, ext, fill, overlap, seed=width * 7919 + height)
        self.set_document(grown, f"Extend canvas ({_describe(ext)})", mask)
        self.extended.emit()
        return True


    def _snapshot(self):
        return None if self.document is None else (self.document, self.mask.copy())

    def _restore(self, state) -> None:
        if state is None:
            self.document, self.mask = None, None
            self.show_message(EMPTY_TEXT)
        else:
            self.document, mask = state
            self.mask = mask.copy()
            self._overlay.reset(self.mask)
            self._image_arrived(self.document)
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
        self._mask_changed(full)
        self._push(PatchCommand(lambda: self.mask, full, before, self.mask.copy(), self._mask_changed, label))

    def _mask_changed(self, rect: Rect) -> None:
        self._overlay.refresh(self.mask, rect)
        if self.showing != "document":
            self.show_document()

    def set_mask_visible(self, visible: bool) -> None:
        self.mask_visible = visible
        self._overlay.setVisible(visible and self.showing == "document")

    @property
    def mask_color(self) -> str:
        return self._overlay.color.name()

    def set_mask_color(self, color: str, chosen: bool = False) -> None:
        """The colour of the mask's stripes ("#rrggbb"); `chosen` when the artist picked it,
        so the window saves it."""
        qcolor = QColor(color)
        if not qcolor.isValid():
            qcolor = QColor(DEFAULT_COLOR)
        self._overlay.set_color(qcolor)
        if chosen:
            self.maskColorChanged.emit(qcolor.name())

    # -- brush ----------------------------------------------------------------------------
    def set_brush(self, **changes) -> None:
        """The artist's change; a size chosen here is kept for every image of this size."""
        if "size" in changes and self._brush_image_size is None:
            self._brush_chosen = True
        self._apply_brush(**changes)

    def _apply_brush(self, **changes) -> None:
        size = int(min(MAX_BRUSH, max(MIN_BRUSH, changes.pop("size", self.brush.size))))
        self.brush = replace(self.brush, size=size, **changes)
        self._move_cursor(None)
        self.brushChanged.emit()

    def _image_arrived(self, pixels: np.ndarray) -> None:
        """An image of a new size scales the brush to it (a tenth of the shorter side), unless
        the artist set the size before any image arrived."""
        size = (pixels.shape[1], pixels.shape[0])
        if size == self._brush_image_size:
            return
        first = self._brush_image_size is None
        self._brush_image_size = size
        if not (first and self._brush_chosen):
            self._apply_brush(size=default_brush_size(*size, MIN_BRUSH, SLIDER_MAX_BRUSH))

    def grow_brush(self, factor: float) -> None:
        size = max(self.brush.size + 1, round(self.brush.size * factor)) if factor > 1 else round(self.brush.size * factor)
        self.set_brush(size=size)

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
            self._push(command)
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
            self.fitInView(self._framed(*self.image_size), Qt.AspectRatioMode.KeepAspectRatio)

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
        if event.button() == Qt.MouseButton.LeftButton:
            side = self._border_at(self.mapToScene(event.position().toPoint()))
            if side is not None:
                self._handle, self._handle_from = side, self.mapToScene(event.position().toPoint())
                self._drag_extension(self._handle_from)
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
        scene_pos = self.mapToScene(event.position().toPoint())
        if self._handle is not None:
            self._drag_extension(scene_pos)
            return
        self._move_cursor(scene_pos)
        if self._last_point is not None:
            self._paint_to(self._scene_point(event))
        else:
            side = self._border_at(scene_pos)
            if side is None:
                self.viewport().unsetCursor()
            else:
                horizontal = side in ("left", "right")
                self.viewport().setCursor(Qt.CursorShape.SizeHorCursor if horizontal else Qt.CursorShape.SizeVerCursor)

    def mouseReleaseEvent(self, event) -> None:
        if self._pan_from is not None:
            self._pan_from = None
            self.viewport().unsetCursor()
            return
        if self._handle is not None and event.button() == Qt.MouseButton.LeftButton:
            ext = self._drag_extension(self.mapToScene(event.position().toPoint()))
            self._handle = None
            self._extend_preview.hide()
            self.viewport().unsetCursor()
            if not ext.empty:
                self.extend(ext)
            return
        if self._last_point is not None and event.button() == Qt.MouseButton.LeftButton:
            self._end_stroke()
            return
        super().mouseReleaseEvent(event)

    # -- border handles (outpainting by dragging) --------------------------------------------
    def _border_at(self, pos: QPointF) -> str | None:
        """The image border just outside which `pos` lies (within HANDLE_PX screen pixels)."""
        if self.showing not in ("document", "result") or self.image_size is None:
            return None
        width, height = self.image_size
        reach = HANDLE_PX / max(self.transform().m11(), 1e-6)
        x, y = pos.x(), pos.y()
        if 0 <= y <= height:
            if -reach <= x < 0:
                return "left"
            if width < x <= width + reach:
                return "right"
        if 0 <= x <= width:
            if -reach <= y < 0:
                return "top"
            if height < y <= height + reach:
                return "bottom"
        return None

    def _drag_extension(self, pos: QPointF) -> Extension:
        """The extension the border drag asks for (whole multiples of 8), outlined on the canvas."""
        width, height = self.image_size
        distance = {"left": -pos.x(), "right": pos.x() - width, "top": -pos.y(), "bottom": pos.y() - height}[self._handle]
        amount = int(max(0.0, distance) / 8 + 0.5) * 8
        ext = Extension(**{self._handle: amount})
        self._extend_preview.setRect(QRectF(-ext.left, -ext.top, width + ext.left + ext.right, height + ext.top + ext.bottom))
        self._extend_preview.setVisible(not ext.empty)
        return ext

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


def _describe(ext: Extension) -> str:
    return ", ".join(f"{side} {getattr(ext, side)} px" for side in ("left", "top", "right", "bottom") if getattr(ext, side))


def _local_files(mime) -> list[str]:
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []
