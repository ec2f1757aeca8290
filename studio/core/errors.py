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
    INTERNAL = "internal"


@dataclass(frozen=True)
class StudioError(Exception):
    kind: ErrorKind
    message: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()

    def one_line(self) -> str:
        return " ".join(str(self).split())
