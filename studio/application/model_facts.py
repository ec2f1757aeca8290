"""Reads which fields the chosen model uses (its PanelFacts) off the GUI thread, so the panel
follows a model choice at once without the GUI thread opening the model's file.

inspect_model reads only a file's header (or a folder's JSON configs): a few milliseconds on a
local disk, but a checkpoint on a network drive may take far longer, and the window never
waits on a disk. The newest request wins; the result goes into the GenerationState, whose
`factsChanged` the panel follows.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal, Slot

from studio.application.generation_state import GenerationState
from studio.core.generation import model_fields
from studio.core.models.family import PanelFacts

THREAD_NAME = "model-facts"


class ModelFactsReader(QObject):
    _read = Signal(int, str, object)  # (request number, model, PanelFacts), emitted in the reading thread

    def __init__(self, state: GenerationState, parent: QObject | None = None):
        super().__init__(parent)
        self.state = state
        self._number = 0
        self._delivered = 0
        self._read.connect(self._deliver)  # a bound method of a GUI-thread object: queued there

    def read(self, model: str) -> None:
        """Read `model`'s panel facts in the background (the chosen model, usually)."""
        self._number += 1
        threading.Thread(target=self._run, args=(self._number, model), name=THREAD_NAME, daemon=True).start()

    def busy(self) -> bool:
        return self._delivered != self._number

    def _run(self, number: int, model: str) -> None:
        facts = model_fields.model_panel_facts(model)  # never raises
        try:
            self._read.emit(number, model, facts)
        except RuntimeError:  # the window closed meanwhile
            pass

    @Slot(int, str, object)
    def _deliver(self, number: int, model: str, facts: PanelFacts) -> None:
        if number != self._number:
            return  # an older choice finishing late must not undo a newer one
        self._delivered = number
        self.state.set_panel_facts(model, facts)
