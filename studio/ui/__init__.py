"""PySide6 only: worker thread, main window, canvas, panels."""
