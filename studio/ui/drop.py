"""Drag and drop: which local image files a drop carries (the window reads their metadata)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData

DROP_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def dropped_image_paths(mime: QMimeData | None) -> list[Path]:
    """Existing local image files in the drop, in order, without duplicates. Remote URLs,
    folders and other file types are ignored (never fetched, never opened)."""
    if mime is None or not mime.hasUrls():
        return []
    paths: list[Path] = []
    for url in mime.urls():
        if not url.isLocalFile():
            continue
        path = Path(url.toLocalFile())
        if path.suffix.lower() in DROP_SUFFIXES and path.is_file() and path not in paths:
            paths.append(path)
    return paths


def has_dropped_images(mime: QMimeData | None) -> bool:
    """For dragEnterEvent: accept the drag only when it carries an image we can read."""
    return bool(dropped_image_paths(mime))
