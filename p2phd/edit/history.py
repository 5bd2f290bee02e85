"""The editor's undo history of one map pair: immutable states, undo and redo stacks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from p2phd.errors import ConfigError
from p2phd.synth.styles import Style

MAX_HISTORY = 100  # undo steps kept


@dataclass(frozen=True, slots=True)
class Maps:
    """One state of the edited map pair: what undo restores."""

    label: np.ndarray  # [H, W] class ids
    inst: np.ndarray | None  # [H, W] instance ids (runs with instance maps)
    styles: dict[int, Style]  # region id -> its pinned style (runs with features)


@dataclass
class History:
    """The current state of one map pair and the states undo and redo go back to."""

    current: Maps
    undo_stack: list[Maps] = field(default_factory=list)
    redo_stack: list[Maps] = field(default_factory=list)

    def commit(self, maps: Maps) -> None:
        """Make `maps` the current state; what was current can be undone (redo is lost)."""
        self.undo_stack.append(self.current)
        del self.undo_stack[:-MAX_HISTORY]
        self.redo_stack.clear()
        self.current = maps

    def undo(self) -> None:
        self._move(self.undo_stack, self.redo_stack, "undo")

    def redo(self) -> None:
        self._move(self.redo_stack, self.undo_stack, "redo")

    def __post_init__(self) -> None:
        self.opened = self.current  # the state the map's files hold

    @property
    def edits(self) -> int:
        """How many edits stand between the opened map and its current state."""
        return len(self.undo_stack)

    @property
    def changed(self) -> bool:
        """Whether the current state differs from the files (a revert, or undoing every
        edit, makes it the same again)."""
        a, b = self.current, self.opened
        if a is b:
            return False
        same_inst = (
            a.inst is b.inst if a.inst is None or b.inst is None else np.array_equal(a.inst, b.inst)
        )
        return not (np.array_equal(a.label, b.label) and same_inst and a.styles == b.styles)

    def _move(self, source: list[Maps], target: list[Maps], what: str) -> None:
        if not source:
            raise ConfigError(f"nothing to {what}")
        target.append(self.current)
        self.current = source.pop()
