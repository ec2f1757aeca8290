"""The generation view-model: the Settings the panel edits, and where they are saved.

One object holds them so that nothing else does: the panel writes its widgets into it (through
the `collect` hook the window sets), and whoever replaces the fields wholesale (a preset, a
recalled history entry, a dropped image, the restored session, a model's own defaults) calls
`replace`, whose `replaced` signal puts them back into the widgets. No widget here; the services
and the controller reach the state, never the window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from studio.core.generation import model_fields
from studio.core.generation.settings import Settings, effective_model, save_settings
from studio.core.models.family import PanelFacts


class GenerationState(QObject):
    replaced = Signal(object)  # Settings: new fields for the widgets
    seedRestored = Signal()  # a replace turned Random off to keep a restored seed: say so in the panel
    saveFailed = Signal(str)  # settings.json could not be written (a sentence for the status line)
    factsChanged = Signal(object)  # PanelFacts of the chosen model: which fields the panel shows

    def __init__(self, settings: Settings, path: Path | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.settings = settings
        self.path = path  # settings.json; None: never saved (tests, scripts)
        # What settings.json says about the model: only a model that loaded is remembered, so a
        # wrong folder or `studio --model /nope` cannot break every later start.
        self.remembered_model = settings.model
        self.collect: Callable[[Settings], None] | None = None  # the panel's store(): widgets -> settings
        # Which fields the chosen model reads, and the model they were read from (set by
        # whoever read its header off the GUI thread: studio.application.model_facts).
        self.panel_facts = PanelFacts()
        self.facts_model = ""

    def current(self) -> Settings:
        """The settings as the widgets show them right now."""
        if self.collect is not None:
            self.collect(self.settings)
        return self.settings

    def model_path(self) -> str:
        """The model to load: the chosen one, or the demo model."""
        return effective_model(self.settings)

    def set_panel_facts(self, model: str, facts: PanelFacts) -> None:
        """`facts` were read from `model`'s files; the panel follows when it is the chosen model."""
        self.facts_model, self.panel_facts = model, facts
        if model == self.model_path():
            self.factsChanged.emit(facts)

    def facts_for(self, model: str) -> PanelFacts:
        """The panel facts of `model`: the ones read ahead, else read now (a header: a few ms)."""
        if model != self.facts_model:
            self.set_panel_facts(model, model_fields.model_panel_facts(model))
        return self.panel_facts

    def replace(self, settings: Settings) -> bool:
        """New fields for the panel, saved. True when a restored seed turned Random off, which
        must be visible (or every later run silently reuses that seed): `seedRestored` says so."""
        before = self.settings
        self.reload(settings)
        self.save()
        restored = not settings.random_seed and (before.random_seed or before.seed != settings.seed)
        if restored:
            self.seedRestored.emit()
        return restored

    def reload(self, settings: Settings | None = None) -> None:
        """Put `settings` (or the current ones, changed in place) into the widgets; not saved
        (a restored session is the saved state already; a caller that changed them saves)."""
        if settings is not None:
            self.settings = settings
        self.replaced.emit(self.settings)

    def model_loaded(self, model: str) -> None:
        """`model` (an absolute path) loaded: the chosen model becomes the remembered one."""
        if Path(model) == Path(self.model_path()).expanduser().resolve() and self.remembered_model != self.settings.model:
            self.remembered_model = self.settings.model
            self.save()

    def save(self) -> bool:
        """Write settings.json (atomically); False, with `saveFailed`, when it could not be written."""
        if self.path is None:
            return True
        try:
            save_settings(dataclasses.replace(self.settings, model=self.remembered_model), self.path)
        except OSError as exc:
            self.saveFailed.emit(f"Could not save settings: {exc}")
            return False
        return True


def seed_note(settings: Settings, restored: bool) -> str:
    """What the status line adds when a replace kept a restored seed."""
    return f" Seed {settings.seed} restored: Random is off." if restored else ""
