"""Mask painting and mask geometry on numpy arrays (uint8, 255 = repaint). No Qt, no torch.

The canvas calls these on every mouse move, so a stroke segment only touches the pixels under
the brush: each function returns the dirty rectangle it changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)

    def united(self, other: Rect | None) -> Rect:
        if other is None or other.w == 0 or other.h == 0:
            return self
        if self.w == 0 or self.h == 0:
            return other
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1 = max(self.x + self.w, other.x + other.w)
        y1 = max(self.y + self.h, other.y + other.h)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    @property
    def empty(self) -> bool:
        return self.w <= 0 or self.h <= 0


EMPTY = Rect(0, 0, 0, 0)


@dataclass(frozen=True)
class Brush:
    size: int = 48  # diameter in image pixels
    hardness: float = 0.8  # 1 = hard edge, 0 = soft all the way from the centre
    opacity: float = 1.0  # the most one stroke can add (or remove)


@lru_cache(maxsize=32)
def dab(size: int, hardness: float) -> np.ndarray:
    """A round brush tip, float32 in [0, 1], (size, size). Cached: strokes reuse it."""
    size = max(1, int(size))
    radius = size / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5 - radius
    distance = np.sqrt(xx * xx + yy * yy) / radius
    hard = min(max(hardness, 0.0), 0.999)
    tip = np.clip((1.0 - distance) / (1.0 - hard), 0.0, 1.0)
    tip.setflags(write=False)
    return tip


def stroke_segment(stroke: np.ndarray, start: tuple[float, float], end: tuple[float, float], brush: Brush) -> Rect:
    """Stamp dabs from start to end into `stroke` (float32 coverage of the current stroke, kept
    as a max so overlapping dabs never exceed the brush opacity). Returns the dirty rect."""
    tip = dab(brush.size, brush.hardness)
    spacing = max(1.0, brush.size / 6)
    (x0, y0), (x1, y1) = start, end
    count = max(1, int(np.hypot(x1 - x0, y1 - y0) / spacing) + 1)
    dirty = EMPTY
    for t in np.linspace(0.0, 1.0, count):
        cx, cy = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
        dirty = _stamp(stroke, tip, cx, cy, brush.opacity).united(dirty)
    return dirty


def _stamp(stroke: np.ndarray, tip: np.ndarray, cx: float, cy: float, opacity: float) -> Rect:
    height, width = stroke.shape
    size = tip.shape[0]
    left, top = int(round(cx - size / 2)), int(round(cy - size / 2))
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + size, width), min(top + size, height)
    if x0 >= x1 or y0 >= y1:
        return EMPTY
    region = stroke[y0:y1, x0:x1]
    np.maximum(region, tip[y0 - top : y1 - top, x0 - left : x1 - left] * opacity, out=region)
    return Rect(x0, y0, x1 - x0, y1 - y0)


def apply_stroke(mask: np.ndarray, before: np.ndarray, stroke: np.ndarray, rect: Rect, erase: bool) -> None:
    """mask[rect] = `before` (the mask when the stroke began) combined with the stroke coverage."""
    if rect.empty:
        return
    sl = rect.slices()
    base = before[sl].astype(np.float32)
    cover = stroke[sl]
    if erase:
        result = base * (1.0 - cover)
    else:
        result = base + (255.0 - base) * cover
    mask[sl] = np.clip(result + 0.5, 0, 255).astype(np.uint8)


def bounding_box(mask: np.ndarray, threshold: int = 0) -> Rect:
    """The smallest rect holding every pixel above threshold; EMPTY for an empty mask."""
    rows = np.flatnonzero((mask > threshold).any(axis=1))
    cols = np.flatnonzero((mask > threshold).any(axis=0))
    if rows.size == 0:
        return EMPTY
    return Rect(int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def crop_for_mask(mask: np.ndarray, padding: int, aspect: float) -> Rect:
    """A1111's "only masked" region: the mask's box grown by `padding`, widened to the target
    aspect ratio (width / height), shifted to stay inside the image where possible."""
    height, width = mask.shape
    box = bounding_box(mask)
    if box.empty:
        return Rect(0, 0, width, height)
    x0, y0 = box.x - padding, box.y - padding
    x1, y1 = box.x + box.w + padding, box.y + box.h + padding
    w, h = x1 - x0, y1 - y0
    if w / h < aspect:  # too tall: widen
        grow = int(round(h * aspect)) - w
        x0, x1 = x0 - grow // 2, x1 + grow - grow // 2
    else:  # too wide: heighten
        grow = int(round(w / aspect)) - h
        y0, y1 = y0 - grow // 2, y1 + grow - grow // 2
    x0, x1 = _shift_inside(x0, x1, width)
    y0, y1 = _shift_inside(y0, y1, height)
    return Rect(x0, y0, x1 - x0, y1 - y0)


def _shift_inside(lo: int, hi: int, limit: int) -> tuple[int, int]:
    if hi - lo >= limit:
        return 0, limit
    if lo < 0:
        return 0, hi - lo
    if hi > limit:
        return lo - (hi - limit), limit
    return lo, hi
