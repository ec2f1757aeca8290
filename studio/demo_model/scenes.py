"""Procedural scenes for the bundled demo model: grammar, drawing, captions and read-back.

A scene is one flat-coloured shape on a flat background, described by the grammar

    "a {size} {color} {shape} on the {position}, {background} background"

`draw(scene)` renders it with Pillow (4x supersampled, so edges are anti-aliased),
`caption(scene, rng)` writes a full or partial caption for training, and `analyze(image)`
reads the attributes back from any image (a drawing or a model output), which is what the
checker uses to score the model.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 70, 220),
    "yellow": (240, 210, 40),
    "white": (240, 240, 240),
    "black": (20, 20, 20),
    "purple": (140, 50, 170),
    "orange": (245, 140, 30),
}
COLORS = tuple(PALETTE)
SIZES = ("small", "large")
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("left", "right", "top", "bottom", "center")
GLUE = ("a", "on", "the", ",", "background")
VOCAB = tuple(sorted(set(COLORS + SIZES + SHAPES + POSITIONS + GLUE)))

NATIVE = 64  # native resolution (square)

# Object centres as fractions of the image size, and the half-extent of each size.
ANCHORS: dict[str, tuple[float, float]] = {
    "left": (0.28, 0.5),
    "right": (0.72, 0.5),
    "top": (0.5, 0.28),
    "bottom": (0.5, 0.72),
    "center": (0.5, 0.5),
}
HALF_EXTENT = {"small": 0.125, "large": 0.2}
JITTER = 0.03  # uniform jitter of the centre, fraction of the image size

# (color, shape, background) combinations never shown in training, to test generalisation.
HELD_OUT: tuple[tuple[str, str, str], ...] = (
    ("red", "circle", "blue"),
    ("green", "square", "white"),
    ("blue", "triangle", "yellow"),
    ("yellow", "circle", "black"),
    ("white", "triangle", "purple"),
    ("black", "square", "orange"),
    ("purple", "circle", "green"),
    ("orange", "triangle", "red"),
    ("red", "square", "black"),
    ("blue", "circle", "orange"),
    ("yellow", "square", "green"),
    ("white", "circle", "red"),
)

# Out-of-vocabulary words mixed into training captions so the model learns to ignore them.
JUNK_WORDS = (
    "photo", "of", "picture", "image", "with", "and", "very", "nice", "shape", "big", "tiny",
    "beautiful", "drawing", "simple", "scene", "in", "at", "is", "bright", "dark", "object",
    "colorful", "painting", "hd", "4k", "best", "quality", "art", "style", "flat", "minimal",
    "centered", "cat", "dog", "house", "tree", "sky", "light", "pink", "grey", "cyan", "ball",
    "box", "star", "corner", "middle", "up", "down", "small-ish", "!", ".", "-", "the_", "x",
)


@dataclass(frozen=True)
class Scene:
    size: str
    color: str
    shape: str
    position: str
    background: str
    dx: float = 0.0  # centre jitter, fraction of the image size
    dy: float = 0.0

    def full_caption(self) -> str:
        return (
            f"a {self.size} {self.color} {self.shape} on the {self.position}, "
            f"{self.background} background"
        )

    def triple(self) -> tuple[str, str, str]:
        return (self.color, self.shape, self.background)


def random_scene(rng: random.Random, *, allow_held_out: bool = True, jitter: bool = True,
                 **fixed: str) -> Scene:
    """A uniformly random scene; keyword arguments pin attributes (e.g. color="red")."""
    while True:
        color = fixed.get("color") or rng.choice(COLORS)
        background = fixed.get("background") or rng.choice(COLORS)
        if background == color:
            if "color" in fixed and "background" in fixed:
                raise ValueError("color and background must differ")
            continue
        scene = Scene(
            size=fixed.get("size") or rng.choice(SIZES),
            color=color,
            shape=fixed.get("shape") or rng.choice(SHAPES),
            position=fixed.get("position") or rng.choice(POSITIONS),
            background=background,
            dx=rng.uniform(-JITTER, JITTER) if jitter else 0.0,
            dy=rng.uniform(-JITTER, JITTER) if jitter else 0.0,
        )
        if not allow_held_out and scene.triple() in HELD_OUT:
            if all(k in fixed for k in ("color", "shape", "background")):
                raise ValueError("the pinned combination is held out")
            continue
        return scene


def parse_caption(text: str) -> dict[str, str]:
    """Attributes named in a caption (full or partial grammar); unknown words are ignored."""
    words = text.lower().replace(",", " , ").split()
    out: dict[str, str] = {}
    for i, w in enumerate(words):
        if w in SIZES:
            out["size"] = w
        elif w in SHAPES:
            out["shape"] = w
        elif w in POSITIONS:
            out["position"] = w
        elif w in COLORS:
            # The next known word decides: "<color> [junk ...] background" is the background.
            nxt = next((v for v in words[i + 1:] if v in VOCAB), "")
            out["background" if nxt == "background" else "color"] = w
    return out


def caption(scene: Scene, rng: random.Random, *, p_full: float = 0.35, p_junk: float = 0.25) -> str:
    """A training caption for `scene`: the full sentence or a random subset of its parts,
    sometimes with out-of-vocabulary words mixed in. Empty prompts are handled by the trainer."""
    if rng.random() < p_full:
        parts = {"size": True, "color": True, "shape": True, "position": True, "background": True}
    else:
        parts = {k: rng.random() < 0.5 for k in ("size", "color", "shape", "position", "background")}
        if not any(parts.values()):
            parts[rng.choice(list(parts))] = True
    noun = []
    if parts["size"]:
        noun.append(scene.size)
    if parts["color"]:
        noun.append(scene.color)
    if parts["shape"]:
        noun.append(scene.shape)
    elif noun and rng.random() < 0.5:
        noun.append(rng.choice(("shape", "object", "thing")))  # "a red shape": junk noun
    words: list[str] = []
    if noun:
        words += ["a", *noun]
    if parts["position"]:
        if words or rng.random() < 0.5:
            words += ["on", "the", scene.position]
        else:
            words += [scene.position] if rng.random() < 0.5 else ["on", "the", scene.position]
    if parts["background"]:
        if words:
            words.append(",")
        words += [scene.background, "background"]
    if rng.random() < p_junk:
        for _ in range(rng.randint(1, 3)):
            junk = rng.choice(JUNK_WORDS) if rng.random() < 0.7 else "".join(
                rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 7)))
            words.insert(rng.randint(0, len(words)), junk)
    text = " ".join(words).replace(" ,", ",")
    return text


def _triangle(cx: float, cy: float, h: float) -> list[tuple[float, float]]:
    # Isosceles, apex up, as wide as it is tall (2h x 2h box).
    return [(cx, cy - h), (cx + h, cy + h), (cx - h, cy + h)]


def draw(scene: Scene, size: int = NATIVE, supersample: int = 4) -> Image.Image:
    """Render `scene` as an RGB image of `size` x `size` pixels."""
    big = size * supersample
    img = Image.new("RGB", (big, big), PALETTE[scene.background])
    d = ImageDraw.Draw(img)
    ax, ay = ANCHORS[scene.position]
    cx, cy = (ax + scene.dx) * big, (ay + scene.dy) * big
    h = HALF_EXTENT[scene.size] * big
    fill = PALETTE[scene.color]
    if scene.shape == "circle":
        d.ellipse([cx - h, cy - h, cx + h, cy + h], fill=fill)
    elif scene.shape == "square":
        s = h * 0.9  # same visual weight as the circle
        d.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    else:
        d.polygon(_triangle(cx, cy, h * 1.05), fill=fill)
    if supersample > 1:
        img = img.resize((size, size), Image.Resampling.BOX)
    return img


# ----------------------------------------------------------------------------- read-back

_PAL = np.array([PALETTE[c] for c in COLORS], dtype=np.float32)


def _nearest(pixels: np.ndarray) -> np.ndarray:
    d = ((pixels[..., None, :] - _PAL) ** 2).sum(-1)
    return d.argmin(-1)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    try:
        from scipy import ndimage
    except ImportError:  # pragma: no cover - scipy ships with the app's environment
        return mask
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    return labels == counts.argmax()


def _template_masks(x0: int, y0: int, x1: int, y1: int, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Each shape drawn into the bounding box [x0, x1) x [y0, y1)."""
    out = {}
    for name in SHAPES:
        ss = 4
        img = Image.new("L", (shape[1] * ss, shape[0] * ss), 0)
        d = ImageDraw.Draw(img)
        box = [x0 * ss, y0 * ss, x1 * ss - 1, y1 * ss - 1]
        if name == "circle":
            d.ellipse(box, fill=255)
        elif name == "square":
            d.rectangle(box, fill=255)
        else:
            d.polygon([((box[0] + box[2]) / 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=255)
        out[name] = np.asarray(img.resize((shape[1], shape[0]), Image.Resampling.BOX)) >= 128
    return out


def analyze(image: Image.Image) -> dict:
    """Read a scene back from an image.

    Returns background, color (object colour), shape, position, size (None where there is
    no object), plus diagnostics: area (fraction of the image), centroid (fractions) and the
    template-match scores per shape.
    """
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    h, w, _ = arr.shape
    idx = _nearest(arr)
    border = np.concatenate([idx[0], idx[-1], idx[1:-1, 0], idx[1:-1, -1]])
    bg = int(np.bincount(border, minlength=len(COLORS)).argmax())
    bg_rgb = _PAL[bg]
    result: dict = {"background": COLORS[bg], "color": None, "shape": None, "position": None,
                    "size": None, "area": 0.0, "centroid": None, "scores": {}}

    # Object colour: the most common palette colour among pixels clearly off the background
    # (blended edge pixels can sit near a third palette colour, the interior dominates).
    dist_bg = np.sqrt(((arr - bg_rgb) ** 2).sum(-1))
    off = (dist_bg > 60) & (idx != bg)
    if off.sum() < max(4, h * w // 400):
        return result
    obj = int(np.bincount(idx[off], minlength=len(COLORS)).argmax())
    obj_rgb = _PAL[obj]
    dist_obj = np.sqrt(((arr - obj_rgb) ** 2).sum(-1))
    mask = _largest_component(dist_obj < dist_bg)
    if mask.sum() < 4:
        return result
    result["color"] = COLORS[obj]

    ys, xs = np.nonzero(mask)
    cx, cy = (xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h
    result["centroid"] = (float(cx), float(cy))
    result["area"] = float(mask.mean())
    # Triangles' centroids sit below their box centre; use the box centre for position.
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    bx, by = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h
    result["position"] = min(ANCHORS, key=lambda k: (ANCHORS[k][0] - bx) ** 2 + (ANCHORS[k][1] - by) ** 2)

    scores = {}
    for name, tmpl in _template_masks(x0, y0, x1, y1, (h, w)).items():
        inter = (tmpl & mask).sum()
        union = (tmpl | mask).sum()
        scores[name] = float(inter / max(union, 1))
    result["scores"] = scores
    result["shape"] = max(scores, key=scores.get)
    extent = max(x1 - x0, y1 - y0) / max(w, h) / 2
    result["size"] = "large" if extent > (HALF_EXTENT["small"] + HALF_EXTENT["large"]) / 2 * 0.95 else "small"
    return result


def score(scene_or_attrs, result: dict) -> dict[str, bool]:
    """Per-attribute correctness of an `analyze` result against a scene or attribute dict."""
    attrs = asdict(scene_or_attrs) if isinstance(scene_or_attrs, Scene) else dict(scene_or_attrs)
    return {k: result.get(k) == attrs[k] for k in ("background", "color", "shape", "position", "size")
            if k in attrs}
