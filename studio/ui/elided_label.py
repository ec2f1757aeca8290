"""A one-line label that never grows its panel: a text too long for the room ends in "…" and
shows whole in its tooltip (a status line or a note under a field must not push buttons away
or cut a sentence off silently)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QLabel, QSizePolicy


class ElidedLabel(QLabel):
    def __init__(self, text: str = "", parent=None, hide_when_empty: bool = False):
        super().__init__(parent)
        self._full = ""
        self._hide_when_empty = hide_when_empty
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def text(self) -> str:  # the whole text, whatever fits on screen
        return self._full

    def setText(self, text: str) -> None:
        self._full = text
        if self._hide_when_empty:
            self.setVisible(bool(text))
        self._elide()

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        return QSize(self.fontMetrics().horizontalAdvance(self._full) + 4, super().sizeHint().height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        one_line = " ".join(self._full.split())
        shown = self.fontMetrics().elidedText(one_line, Qt.TextElideMode.ElideRight, max(self.width(), 1))
        super().setText(shown)
        self.setToolTip(self._full if shown != one_line else "")

    @property
    def elided(self) -> bool:
        return super().text() != " ".join(self._full.split())
