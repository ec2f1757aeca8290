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


# -- the default brush ------------------------------------------------------------------------
def default_brush_size(width: int, height: int, low: int = 1, high: int = 256) -> int:
    """A brush a tenth of the image's shorter side: 48 px covered three quarters of a 64 px
    image, and is a pin-prick on a 2048 px one."""
    return int(min(high, max(low, round(min(width, height) / 10))))


# -- inpaint previews ---------------------------------------------------------------------------
def feathered_alpha(mask: np.ndarray, blur: int) -> np.ndarray:
    """The mask blurred exactly as the engine blurs it for its final composite (Pillow's
    GaussianBlur, engine/image_inputs.feather), as float32 alpha in [0, 1]."""
    from PIL import Image, ImageFilter

    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8))
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(image, np.float32) / 255.0


class PreviewCompositor:
    """Puts each step preview of an inpaint job onto the part that is kept, as the engine puts
    the finished image: the input where the (blurred) mask is 0, the preview where it is 1.

    Built once per job (the blur is the slow part); each call costs a resize and a blend."""

    def __init__(self, source: np.ndarray, mask: np.ndarray, blur: int, size: tuple[int, int],
                 only_masked: bool = False, padding: int = 0):
        from PIL import Image

        width, height = size
        source = np.ascontiguousarray(source[..., :3], dtype=np.uint8)
        if not only_masked and source.shape[:2] != (height, width):  # the engine's "just resize"
            source = np.asarray(Image.fromarray(source).resize((width, height), Image.Resampling.LANCZOS))
            mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.BILINEAR))
        self.source = source
        self.box = crop_for_mask(mask, padding, width / height) if only_masked else Rect(0, 0, width, height)
        alpha = feathered_alpha(mask, blur)[self.box.slices()]
        # Blend only where the alpha is not 0: beyond it every pixel is the input's.
        touched = bounding_box(alpha > 0)
        self.blend = Rect(touched.x, touched.y, touched.w, touched.h)
        self.alpha = alpha[self.blend.slices()][..., None]
        self.base = source[self.box.slices()][self.blend.slices()].astype(np.float32)

    def __call__(self, preview: np.ndarray) -> np.ndarray:
        from PIL import Image

        box = self.box
        if preview.shape[:2] != (box.h, box.w):
            small = Image.fromarray(np.ascontiguousarray(preview[..., :3]))
            preview = np.asarray(small.resize((box.w, box.h), Image.Resampling.BILINEAR))
        out = self.source.copy()
        if self.blend.empty:
            return out
        blended = self.base + (preview[self.blend.slices()].astype(np.float32) - self.base) * self.alpha
        out[box.slices()][self.blend.slices()] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out


# -- outpainting --------------------------------------------------------------------------------
OUTPAINT_FILLS = ("stretch", "noise")


@dataclass(frozen=True)
class Extension:
    """How many pixels to add on each side of the image."""

    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0

    @property
    def empty(self) -> bool:
        return not (self.left or self.top or self.right or self.bottom)


def snap_extension(width: int, height: int, ext: Extension, multiple: int = 8) -> Extension:
    """Grow the extended sides so that the new width and height are multiples of 8 (what the
    models take); an axis that is not extended is left alone."""

    def snap(size: int, lo: int, hi: int) -> tuple[int, int]:
        lo, hi = max(0, int(lo)), max(0, int(hi))
        if lo == 0 and hi == 0:
            return 0, 0
        extra = -(size + lo + hi) % multiple
        return (lo, hi + extra) if hi else (lo + extra, hi)

    left, right = snap(width, ext.left, ext.right)
    top, bottom = snap(height, ext.top, ext.bottom)
    return Extension(left, top, right, bottom)


def extend_image(pixels: np.ndarray, mask: np.ndarray | None, ext: Extension, fill: str = "stretch",
                 overlap: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Outpainting's set-up (A1111's "outpainting mk2", simplified): the image grown by `ext`,
    the new area filled, and a mask that repaints the new area plus `overlap` pixels of the old
    image, ramping down inside it so the seam is feathered. An existing mask is kept.

    fill: "stretch" repeats the edge pixels outwards; "noise" adds strong noise to them, so the
    model invents more and copies less."""
    if fill not in OUTPAINT_FILLS:
        raise ValueError(f"Unknown outpainting fill {fill!r}: choose one of {', '.join(OUTPAINT_FILLS)}.")
    height, width = pixels.shape[:2]
    pad = ((ext.top, ext.bottom), (ext.left, ext.right))
    grown = np.pad(np.ascontiguousarray(pixels[..., :3], dtype=np.uint8), pad + ((0, 0),), mode="edge")
    new = np.ones(grown.shape[:2], bool)
    new[ext.top : ext.top + height, ext.left : ext.left + width] = False
    if fill == "noise":
        rng = np.random.default_rng(seed)
        noise = rng.normal(0.0, 64.0, (int(new.sum()), 3))
        grown[new] = np.clip(grown[new].astype(np.float32) + noise, 0, 255).astype(np.uint8)
    out_mask = np.zeros(grown.shape[:2], np.uint8)
    if mask is not None:
        out_mask[ext.top : ext.top + height, ext.left : ext.left + width] = mask
    # Distance (in pixels) from each old pixel to the nearest extended side: 0 at the border.
    ys, xs = np.arange(height)[:, None], np.arange(width)[None, :]
    far = np.full((height, width), np.inf, np.float32)
    for amount, distance in ((ext.left, xs), (ext.right, width - 1 - xs), (ext.top, ys), (ext.bottom, height - 1 - ys)):
        if amount:
            far = np.minimum(far, np.broadcast_to(distance, (height, width)))
    ramp = np.clip(1.0 - far / max(overlap, 1), 0.0, 1.0) if overlap > 0 else np.zeros_like(far)
    inner = out_mask[ext.top : ext.top + height, ext.left : ext.left + width]
    np.maximum(inner, np.round(ramp * 255).astype(np.uint8), out=inner)
    out_mask[new] = 255
    return grown, out_mask


def mask_edges(mask: np.ndarray, threshold: int = 127) -> np.ndarray:
    """Pixels on either side of the mask's edge (4-neighbours differ), bool: where the outline
    ("marching ants") is drawn, so the mask reads over any colour, its own tint included."""
    inside = mask > threshold
    edge = np.zeros_like(inside)
    horizontal = inside[:, 1:] != inside[:, :-1]
    vertical = inside[1:, :] != inside[:-1, :]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    return edge
