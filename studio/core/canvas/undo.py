"""One undo/redo stack for strokes, mask operations, canvas extensions and results shown on
the canvas: each is one step, undone and redone in the order it happened.

Bounded in memory: each command reports its size, and the oldest commands are dropped when
the total passes the budget (InvokeAI's canvas lagged on unbounded history; PR #6102).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from studio.core.canvas.mask_ops import Rect


class Command:
    label = ""

    def undo(self) -> None:
        raise NotImplementedError

    def redo(self) -> None:
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        return 0


@dataclass
class PatchCommand(Command):
    """Swap a rectangle of an array between two saved states (a stroke, a fill, a clear)."""

    target: Callable[[], np.ndarray]  # the live array (looked up late: it may be replaced)
    rect: Rect
    before: np.ndarray
    after: np.ndarray
    changed: Callable[[Rect], None]
    label: str = "Stroke"

    def undo(self) -> None:
        self.target()[self.rect.slices()] = self.before
        self.changed(self.rect)

    def redo(self) -> None:
        self.target()[self.rect.slices()] = self.after
        self.changed(self.rect)

    @property
    def nbytes(self) -> int:
        return self.before.nbytes + self.after.nbytes


@dataclass
class SwapCommand(Command):
    """Replace a whole value (the canvas image, with its mask) by another, and back."""

    apply: Callable[[object], None]
    before: object
    after: object
    size: int
    label: str = "Apply result"

    def undo(self) -> None:
        self.apply(self.before)

    def redo(self) -> None:
        self.apply(self.after)

    @property
    def nbytes(self) -> int:
        return self.size


@dataclass
class GroupCommand(Command):
    """Several commands as one undo step: a stroke that also brought the input image back
    into view, a result shown over the input. Undone in reverse order, redone in order."""

    commands: list[Command]
    label: str = ""

    def undo(self) -> None:
        for command in reversed(self.commands):
            command.undo()

    def redo(self) -> None:
        for command in self.commands:
            command.redo()

    @property
    def nbytes(self) -> int:
        return sum(command.nbytes for command in self.commands)


class UndoStack:
    def __init__(self, max_bytes: int = 512 * 2**20, max_commands: int = 200):
        self.max_bytes = max_bytes
        self.max_commands = max_commands
        self._done: deque[Command] = deque()
        self._undone: list[Command] = []
        self.listeners: list[Callable[[], None]] = []

    def push(self, command: Command) -> None:
        """Record a command that has already been carried out."""
        self._done.append(command)
        self._undone.clear()
        while len(self._done) > self.max_commands or (len(self._done) > 1 and self.total_bytes > self.max_bytes):
            self._done.popleft()
        self._notify()

    def undo(self) -> bool:
        if not self._done:
            return False
        command = self._done.pop()
        command.undo()
        self._undone.append(command)
        self._notify()
        return True

    def redo(self) -> bool:
        if not self._undone:
            return False
        command = self._undone.pop()
        command.redo()
        self._done.append(command)
        self._notify()
        return True

    def clear(self) -> None:
        self._done.clear()
        self._undone.clear()
        self._notify()

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    @property
    def total_bytes(self) -> int:
        return sum(c.nbytes for c in self._done) + sum(c.nbytes for c in self._undone)

    def __len__(self) -> int:
        return len(self._done)

    def _notify(self) -> None:
        for listener in self.listeners:
            listener()
