"""Errors travel as data: a kind, a message a person understands, and a hint."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ErrorKind(str, enum.Enum):
    BAD_INPUT = "bad_input"
    MODEL_NOT_FOUND = "model_not_found"
    BAD_MODEL = "bad_model"
    OUT_OF_MEMORY = "out_of_memory"
    DEVICE = "device"
    # The artist's disk or folder refused a write (full, read-only, no permission, removed):
    # something they can fix, never a studio bug, so never INTERNAL.
    DISK = "disk"
    INTERNAL = "internal"


@dataclass(eq=False)  # not frozen: Python sets __traceback__ on an exception as it passes through a
# context manager (contextlib's generators), and a frozen dataclass refuses that, replacing the
# artist's message with "cannot assign to field '__traceback__'". eq=False keeps identity hashing.
class StudioError(Exception):
    kind: ErrorKind
    message: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()

    def one_line(self) -> str:
        return " ".join(str(self).split())
