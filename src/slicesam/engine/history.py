"""Undo/redo of session actions as sparse label diffs plus object-state snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SliceDiff:
    """The voxels of one slice an action changed: flat indices, values before and after."""

    z: int
    index: np.ndarray
    before: np.ndarray
    after: np.ndarray

    @classmethod
    def between(cls, z: int, before: np.ndarray, after: np.ndarray) -> SliceDiff | None:
        """Diff two (y, x) label slices; None when they are equal."""
        changed = np.flatnonzero(before != after)
        if changed.size == 0:
            return None
        return cls(z, changed, before.ravel()[changed], after.ravel()[changed])

    def apply(self, labels: Any, *, reverse: bool = False) -> None:
        """Write the diff into ``labels`` (a (z, y, x) numpy array or label store)."""
        view = labels[self.z].reshape(-1)
        view[self.index] = self.before if reverse else self.after
        # a label store, or a reshape that copied: write back
        if not isinstance(labels, np.ndarray) or not np.shares_memory(view, labels):
            labels[self.z] = view.reshape(labels.shape[1:])


@dataclass
class Action:
    """One undoable step: its name, label diffs and the object state before and after."""

    name: str
    diffs: list[SliceDiff] = field(default_factory=list)
    state_before: Any = None
    state_after: Any = None

    @property
    def slices(self) -> list[int]:
        return sorted({d.z for d in self.diffs})


class History:
    """A bounded undo stack with redo; recording a new action clears the redo stack.

    Actions recorded inside :meth:`group` become one undo step.
    """

    def __init__(self, max_actions: int = 200) -> None:
        self.max_actions = max_actions
        self._undo: list[Action] = []
        self._redo: list[Action] = []
        self._group: Action | None = None
        self._group_depth = 0

    @contextmanager
    def group(self, name: str) -> Iterator[None]:
        """Record the actions of the ``with`` block as one action named ``name`` (nothing
        when none was recorded). Re-entrant: an inner group joins the outer one."""
        self._group_depth += 1
        if self._group_depth == 1:
            self._group = Action(name)
        try:
            yield
        finally:
            self._group_depth -= 1
            if self._group_depth == 0:
                merged, self._group = self._group, None
                if merged is not None and merged.state_after is not None:
                    self.record(merged)

    def record(self, action: Action) -> None:
        group = self._group
        if group is not None:
            # applied in order on redo and in reverse on undo, so diffs simply concatenate
            if group.state_after is None:
                group.state_before = action.state_before
            group.diffs.extend(action.diffs)
            group.state_after = action.state_after
            return
        self._undo.append(action)
        if len(self._undo) > self.max_actions:
            del self._undo[0]
        self._redo.clear()

    def pop_undo(self) -> Action | None:
        if not self._undo:
            return None
        action = self._undo.pop()
        self._redo.append(action)
        return action

    def pop_redo(self) -> Action | None:
        if not self._redo:
            return None
        action = self._redo.pop()
        self._undo.append(action)
        return action

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self._undo]

    @property
    def last(self) -> Action | None:
        """The action :meth:`pop_undo` would take back (None: nothing)."""
        return self._undo[-1] if self._undo else None

    @property
    def next_undo(self) -> str | None:
        """The name of the action :meth:`pop_undo` would take back (None: nothing)."""
        return self._undo[-1].name if self._undo else None

    @property
    def next_redo(self) -> str | None:
        """The name of the action :meth:`pop_redo` would bring back (None: nothing)."""
        return self._redo[-1].name if self._redo else None
