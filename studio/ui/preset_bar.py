"""The preset bar: pick a preset and apply it; save, rename, delete, import and export presets.

The bar never edits Settings itself: it emits `applyRequested(Preset)` and the window applies
it (PresetStore.apply) and reloads the panel. A preset's prompt and negative prompt are its
style: `styleApplied(Style)` puts it on the chip beside the prompt box (StyleChip), and the
window wraps the prompts with it when it builds a request. Dialogs can be bypassed by passing the answer,
which is how tests (and scripts) drive it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.generation.settings import Settings
from studio.core.storage.presets import (
    PRESET_FIELDS,
    STYLE_FIELDS,
    PreparedImport,
    Preset,
    PresetError,
    PresetStore,
    Style,
    style_of,
    summarize_warnings,
)

# What "Save preset" ticks by default: the look, not this picture's prompt or seed.
DEFAULT_SAVE_FIELDS = ("negative_prompt", "guidance", "steps", "sampler", "width", "height")
MAX_MESSAGE_CHARS = 500  # a status-bar line; an error message is never the size of the file it is about
FIELD_LABELS = {
    "prompt": "Prompt ({prompt} = the prompt typed when applying)",
    "negative_prompt": "Negative prompt",
    "guidance": "Guidance",
    "steps": "Steps",
    "sampler": "Sampler",
    "width": "Width",
    "height": "Height",
    "seed_mode": "Seed mode (random/fixed)",
    "seed": "Seed",
    "strength": "Strength",
    "model": "Model",
}


def _named(widget, object_name: str, accessible: str):
    widget.setObjectName(object_name)
    widget.setAccessibleName(accessible)
    widget.setToolTip(accessible)
    return widget


class SavePresetDialog(QDialog):
    """Name plus which fields to keep."""

    def __init__(self, fields: Iterable[str], chosen: Iterable[str], name: str = "", parent=None):
        super().__init__(parent)
        self.setWindowTitle("Save preset")
        self.name_edit = _named(QLineEdit(name), "presetNameEdit", "Preset name")
        self.checks: dict[str, QCheckBox] = {}
        grid = QGridLayout()
        chosen = set(chosen)
        for index, key in enumerate(fields):
            check = _named(QCheckBox(FIELD_LABELS.get(key, key)), f"presetField_{key}", FIELD_LABELS.get(key, key))
            check.setChecked(key in chosen)
            self.checks[key] = check
            grid.addWidget(check, index // 2, index % 2)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(grid)
        layout.addWidget(buttons)

    def chosen_fields(self) -> list[str]:
        return [key for key, check in self.checks.items() if check.isChecked()]


class _ImportRelay(QObject):
    """Carries an import's progress and outcome from its thread to the GUI thread. Bound
    methods of this GUI-thread object, so the connections are queued (a lambda would run in
    the import thread and touch the dialog from there)."""

    progressed = Signal(int, int)
    done = Signal(object)  # PreparedImport, or the exception that stopped it

    def __init__(self, dialog: QProgressDialog, loop: QEventLoop):
        super().__init__()
        self.dialog, self.loop = dialog, loop
        self.outcome: list = []
        self.progressed.connect(self._show_progress)
        self.done.connect(self._finish)

    def _show_progress(self, done: int, total: int) -> None:
        self.dialog.setMaximum(max(total, 1))
        self.dialog.setValue(min(done, total))

    def _finish(self, result) -> None:
        self.outcome.append(result)
        self.loop.quit()


class StyleChip(QWidget):
    """The style in use, as a small removable label near the prompt box: the prompt box holds
    only the artist's own words; the style wraps them when Generate builds the request."""

    styleChanged = Signal(object)  # Style or None

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("styleChip")
        self.setAccessibleName("Style")
        self.style: Style | None = None
        self.setStyleSheet("#styleChip { background: palette(midlight); border-radius: 9px; }")
        self.label = QLabel()
        self.label.setObjectName("styleChipLabel")
        self.remove_button = _named(QToolButton(), "styleChipRemove", "Remove the style")
        self.remove_button.setText("✕")
        self.remove_button.setAutoRaise(True)
        self.remove_button.clicked.connect(lambda: self.set_style(None))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 0, 2, 0)
        layout.setSpacing(2)
        layout.addWidget(self.label)
        layout.addWidget(self.remove_button)
        self.hide()

    def set_style(self, style: Style | None) -> None:
        self.style = style
        if style is not None:
            self.label.setText(f"Style: {style.name}")
            parts = [
                f"Prompt: {style.prompt}" if style.prompt else "",
                f"Negative: {style.negative_prompt}" if style.negative_prompt else "",
            ]
            self.setToolTip("\n".join(p for p in parts if p) + "\n({prompt} is your prompt; applied when you generate)")
        self.setVisible(style is not None)
        self.styleChanged.emit(style)


class PresetBar(QWidget):
    applyRequested = Signal(object)  # Preset
    styleApplied = Signal(object)  # the preset's Style, for the chip (presets without one leave it)
    presetsChanged = Signal()
    message = Signal(str)  # a sentence for the status bar (warnings, errors, confirmations)

    def __init__(self, store: PresetStore, current_settings: Callable[[], Settings] | None = None, parent=None):
        super().__init__(parent)
        self.store = store
        # The window passes a function returning the panel's current Settings (panel.store).
        self.current_settings = current_settings or Settings
        self.combo = _named(QComboBox(), "presetCombo", "Preset")
        self.combo.setMinimumContentsLength(12)
        self.combo.setPlaceholderText("Presets…")
        self.apply_button = _named(QPushButton("Apply"), "applyPresetButton", "Apply preset")
        self.save_button = _named(QPushButton("Save…"), "savePresetButton", "Save preset")
        self.more_button = _named(QToolButton(), "presetMenuButton", "More preset actions")
        self.more_button.setText("⋯")
        self.more_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.more_button)
        self.rename_action = menu.addAction("Rename…", lambda: self.rename_preset())
        self.delete_action = menu.addAction("Delete", lambda: self.delete_preset())
        menu.addSeparator()
        self.import_action = menu.addAction("Import…", lambda: self.import_presets())
        self.export_action = menu.addAction("Export…", lambda: self.export_preset())
        self.more_button.setMenu(menu)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.apply_button)
        layout.addWidget(self.save_button)
        layout.addWidget(self.more_button)

        self.apply_button.clicked.connect(self.apply_current)
        self.save_button.clicked.connect(lambda: self.save_preset())
        self.combo.currentIndexChanged.connect(self._update_actions)
        self.refresh()

    # -- state --------------------------------------------------------------------------
    def reload(self) -> list[str]:
        """Re-read the preset folders; warnings (set-aside files) go out through `message`."""
        warnings = self.store.load()
        for warning in warnings:
            self.message.emit(warning)
        self.refresh()
        return warnings

    def refresh(self, select: str | None = None) -> None:
        select = select if select is not None else self.current_name()
        self.combo.blockSignals(True)
        self.combo.clear()
        for preset in self.store.list():
            self.combo.addItem(preset.name + (" (built-in)" if preset.builtin else ""), preset.name)
        # Nothing picked yet shows the placeholder: a preset's name there read as "in use".
        self.combo.setCurrentIndex(self.combo.findData(select) if select else -1)
        self.combo.blockSignals(False)
        self._update_actions()

    def current_name(self) -> str | None:
        return self.combo.currentData()

    def current_preset(self) -> Preset | None:
        name = self.current_name()
        return self.store.get(name) if name else None

    def select(self, name: str) -> None:
        self.combo.setCurrentIndex(self.combo.findData(name))

    def _update_actions(self) -> None:
        preset = self.current_preset()
        user = preset is not None and not preset.builtin
        self.apply_button.setEnabled(preset is not None)
        self.rename_action.setEnabled(user)
        self.delete_action.setEnabled(user)
        self.export_action.setEnabled(preset is not None)

    # -- actions ------------------------------------------------------------------------
    def apply_current(self) -> None:
        preset = self.current_preset()
        if preset is not None:
            style = style_of(preset)
            if style is not None:
                self.styleApplied.emit(style)
            self.applyRequested.emit(preset)

    def save_preset(self, name: str | None = None, fields: Iterable[str] | None = None) -> Preset | None:
        if name is None:
            current = self.current_preset()
            settings = self.current_settings()
            # An empty prompt is never offered ticked: saved, it would be an empty style.
            offered = [key for key in (fields or DEFAULT_SAVE_FIELDS)
                       if key not in STYLE_FIELDS or getattr(settings, key, "")]
            dialog = SavePresetDialog(PRESET_FIELDS, offered,
                                      current.name if current and not current.builtin else "", self)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return None
            name, fields = dialog.name_edit.text(), dialog.chosen_fields()
        fields = list(fields) if fields is not None else list(DEFAULT_SAVE_FIELDS)
        try:
            preset = self.store.save(name, self.current_settings(), fields)
        except (PresetError, OSError) as exc:
            self._error("The preset could not be saved", exc)
            return None
        self.refresh(select=preset.name)
        self.presetsChanged.emit()
        self.message.emit(f"Saved preset “{preset.name}”.")
        return preset

    def rename_preset(self, new_name: str | None = None) -> Preset | None:
        old = self.current_name()
        if old is None:
            return None
        if new_name is None:
            new_name, ok = QInputDialog.getText(self, "Rename preset", "New name:", text=old)
            if not ok:
                return None
        try:
            preset = self.store.rename(old, new_name)
        except (PresetError, OSError) as exc:
            self._error("The preset could not be renamed", exc)
            return None
        self.refresh(select=preset.name)
        self.presetsChanged.emit()
        return preset

    def delete_preset(self, confirm: bool = True) -> bool:
        name = self.current_name()
        if name is None:
            return False
        if confirm:
            answer = QMessageBox.question(self, "Delete preset", f"Delete the preset “{name}”?")
            if answer != QMessageBox.StandardButton.Yes:
                return False
        try:
            self.store.delete(name)
        except (PresetError, OSError) as exc:
            self._error("The preset could not be deleted", exc)
            return False
        self.refresh()
        self.presetsChanged.emit()
        self.message.emit(f"Deleted preset “{name}”.")
        return True

    def import_presets(self, path: str | Path | None = None) -> list[Preset]:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Import presets", str(Path.home()),
                "Presets and styles (*.json *.csv);;Studio preset (*.json);;A1111 styles (*.csv)")
            if not path:
                return []
        path = Path(path)
        prepared = self._prepare_import(path)
        if isinstance(prepared, Exception):
            self._error("Nothing was imported", prepared)
            return []
        try:
            imported = self.store.finish_import(prepared)
        except (PresetError, OSError) as exc:
            self._error("Nothing was imported", exc)
            return []
        self.refresh(select=imported[0].name)
        self.presetsChanged.emit()
        # One sentence with its reasons: a message before it would be replaced unread.
        skipped = f"; {prepared.skipped:,} skipped" if prepared.skipped else ""
        why = f" {summarize_warnings(prepared.warnings)}" if prepared.warnings else ""
        text = f"Imported {len(imported):,} preset(s) from {path.name[:100]}{skipped}.{why}"
        self.message.emit(text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "…")
        return imported

    def _prepare_import(self, path: Path) -> PreparedImport | Exception:
        """Read, check and write the import on a worker thread while a progress dialog shows;
        the window keeps repainting (a local event loop waits; the dialog is window-modal, so
        nothing else can change the presets meanwhile)."""
        loop = QEventLoop()
        dialog = QProgressDialog(f"Importing presets from {path.name[:100]}…", None, 0, 0, self.window())
        dialog.setObjectName("importProgressDialog")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)  # a small file never flashes a dialog
        relay = _ImportRelay(dialog, loop)

        def work() -> None:
            try:
                result = self.store.prepare_import(path, relay.progressed.emit)
            except (PresetError, OSError, MemoryError, RecursionError) as exc:
                result = exc
            except Exception as exc:  # noqa: BLE001 - an import must never take the window down
                result = PresetError(f"{path.name[:100]} could not be imported ({type(exc).__name__}: {str(exc)[:200]}).")
            relay.done.emit(result)

        worker = threading.Thread(target=work, name="preset-import", daemon=True)
        worker.start()
        loop.exec()  # until relay._finish: the outcome arrives queued, so never before this runs
        worker.join()
        dialog.reset()
        dialog.deleteLater()
        return relay.outcome[0]

    def export_preset(self, path: str | Path | None = None) -> Path | None:
        name = self.current_name()
        if name is None:
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export preset", str(Path.home() / f"{name}.json"),
                                                  "Studio preset (*.json)")
            if not path:
                return None
        try:
            written = self.store.export_file(name, Path(path))
        except (PresetError, OSError) as exc:
            self._error("The preset could not be exported", exc)
            return None
        self.message.emit(f"Exported “{name}” to {written}.")
        return written

    def _error(self, what: str, exc: Exception) -> None:
        # Errors are data, shown calmly in the status bar; never a crash.
        text = f"{what}: {exc}"
        self.message.emit(text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "…")
