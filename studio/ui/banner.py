"""The error banner above the canvas: a calm, dismissable message with actions beside it
("Save as…", "Choose output folder…"); never a blocking dialog."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton

from studio.core.errors import StudioError


class ErrorBanner(QFrame):
    """A calm, dismissable message above the canvas; never a blocking dialog."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setStyleSheet("#errorBanner { background: #5a2020; border-radius: 4px; } QLabel { color: #fbeaea; }")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("Dismiss")
        close.clicked.connect(self.hide)
        self._layout = layout = QHBoxLayout(self)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.action_buttons: list[QPushButton] = []
        self.hide()

    def show_error(self, error: StudioError, actions: tuple = ()) -> None:
        """`actions`: (button text, callable) pairs offered beside the message, e.g. "Save as…"."""
        hint = f"<br>{html.escape(error.hint)}" if error.hint else ""
        self.label.setText(f"<b>{html.escape(error.message)}</b>{hint}")
        for button in self.action_buttons:
            button.deleteLater()
        self.action_buttons = []
        for position, (text, slot) in enumerate(actions, start=1):
            button = QPushButton(text)
            button.clicked.connect(slot)
            self._layout.insertWidget(position, button)
            self.action_buttons.append(button)
        self.show()

    def button(self, text: str) -> QPushButton | None:
        return next((b for b in self.action_buttons if b.text() == text), None)
