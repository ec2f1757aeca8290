"""The look: a dark theme by default (as Krita, InvokeAI, ComfyUI and Draw Things are: pictures
read better on a dark surround), a light one in the View menu.

Both use Qt's Fusion style, which follows the palette everywhere on every platform (native
styles ignore parts of it). The palette carries the colours; a short stylesheet only covers
what a palette cannot say: tooltips, dock titles, the history list's selection, the seed hint
(the error banner keeps its own dark red in both).
Colours were checked for contrast under Xvfb screenshots: normal text ≥ 7:1, disabled text
≥ 3:1 against its background, the selection ≥ 4.5:1.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

THEMES = ("dark", "light")
_original: dict[int, tuple[str, QPalette, str]] = {}  # per application: style, palette, stylesheet

# name: (window, base, alternate base, text, disabled text, button, highlight, highlighted text,
#        link, tooltip base, mid, dark, shadow, placeholder)
_DARK = {
    "window": "#2b2b2e", "base": "#1e1e21", "alternate": "#26262a", "text": "#e6e6e6", "disabled": "#7d7d84",
    "button": "#35353a", "highlight": "#2e66c4", "highlighted_text": "#ffffff", "link": "#7fb2ff",
    "tooltip": "#3a3a40", "light": "#4a4a50", "midlight": "#404046", "mid": "#2f2f33", "dark": "#1a1a1d",
    "shadow": "#0e0e10", "placeholder": "#8a8a92", "bright_text": "#ff6b6b",
}
_LIGHT = {
    "window": "#efeff1", "base": "#ffffff", "alternate": "#f5f5f7", "text": "#1d1d1f", "disabled": "#7c7c82",
    "button": "#e4e4e8", "highlight": "#2f6fd0", "highlighted_text": "#ffffff", "link": "#1f5fbf",
    "tooltip": "#ffffe6", "light": "#ffffff", "midlight": "#e9e9ec", "mid": "#b8b8bf", "dark": "#9a9aa1",
    "shadow": "#6a6a70", "placeholder": "#7a7a80", "bright_text": "#c62828",
}

_STYLESHEET = {
    "dark": """
QToolTip { color: #e6e6e6; background: #3a3a40; border: 1px solid #55555c; }
QDockWidget::title { background: #323237; padding: 4px; }
QListView#historyView { background: #1e1e21; }
QListView#historyView::item:selected { background: #2e66c4; color: #ffffff; }
QLabel#seedHint { color: #f0c36a; }
""",
    "light": """
QDockWidget::title { background: #e0e0e4; padding: 4px; }
QListView#historyView::item:selected { background: #2f6fd0; color: #ffffff; }
QLabel#seedHint { color: #8a5a00; }
""",
}


def palette_for(name: str) -> QPalette:
    colours = _LIGHT if name == "light" else _DARK
    palette = QPalette()
    role = QPalette.ColorRole
    group = QPalette.ColorGroup
    pairs = {
        role.Window: "window", role.WindowText: "text", role.Base: "base", role.AlternateBase: "alternate",
        role.ToolTipBase: "tooltip", role.ToolTipText: "text", role.Text: "text", role.Button: "button",
        role.ButtonText: "text", role.BrightText: "bright_text", role.Highlight: "highlight",
        role.HighlightedText: "highlighted_text", role.Link: "link", role.LinkVisited: "link",
        role.Light: "light", role.Midlight: "midlight", role.Mid: "mid", role.Dark: "dark", role.Shadow: "shadow",
        role.PlaceholderText: "placeholder",
    }
    for colour_role, key in pairs.items():
        palette.setColor(colour_role, QColor(colours[key]))
    for colour_role in (role.WindowText, role.Text, role.ButtonText, role.HighlightedText):
        palette.setColor(group.Disabled, colour_role, QColor(colours["disabled"]))
    palette.setColor(group.Disabled, role.Highlight, QColor(colours["mid"]))
    palette.setColor(group.Disabled, role.Base, QColor(colours["window"]))
    palette.setColor(group.Disabled, role.Button, QColor(colours["window"]))
    return palette


def apply_theme(name: str, app: QApplication | None = None) -> str:
    """Fusion with the named palette ("dark" or "light"; anything else is dark). Returns the
    name applied. The first call remembers the application's own look for `restore_native`."""
    app = app or QApplication.instance()
    name = name if name in THEMES else "dark"
    if id(app) not in _original:
        _original[id(app)] = (app.style().name(), QPalette(app.palette()), app.styleSheet())
    fusion = QStyleFactory.create("Fusion")
    if fusion is not None:
        app.setStyle(fusion)
    app.setPalette(palette_for(name))
    app.setStyleSheet(_STYLESHEET[name])
    app.setProperty("studioTheme", name)
    return name


def current_theme(app: QApplication | None = None) -> str:
    """The theme applied to the application ("" when none was)."""
    app = app or QApplication.instance()
    return app.property("studioTheme") or ""


def restore_native(app: QApplication | None = None) -> None:
    """Back to the look the application had before apply_theme (tests share one QApplication)."""
    app = app or QApplication.instance()
    saved = _original.pop(id(app), None)
    if saved is None:
        return
    style, palette, sheet = saved
    native = QStyleFactory.create(style)
    if native is not None:
        app.setStyle(native)
    app.setPalette(palette)
    app.setStyleSheet(sheet)
    app.setProperty("studioTheme", "")


def canvas_background(name: str) -> QColor:
    """Behind the image: a neutral dark grey in both themes (pictures are judged on a dark
    surround, as in Krita and Photoshop), darker than the window so the picture's edge shows."""
    return QColor("#1b1b1e") if name != "light" else QColor("#4a4a50")  # the canvas message stays light on it
