"""Segmentation objects and the prompts the user gave them, slice by slice."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ..prompts import Box, Point

#: Where a slice's mask came from.
USER = "user"
PROPAGATED = "propagated"


@dataclass
class SlicePrompts:
    """The user's prompts for one object on one slice: at most one box, any number of clicks."""

    box: Box | None = None
    points: list[Point] = field(default_factory=list)


@dataclass
class SegObject:
    """One object (one label id) of a session.

    Attributes:
        label_id: the value it has in the label volume (>= 1).
        name: display name.
        locked: a locked object takes no prompts and no propagation.
        prompts: slice index -> the user's prompts there (these slices are the anchors).
        source: slice index -> USER or PROPAGATED for every slice the session wrote.
        confidence: slice index -> model confidence (predicted IoU) of the mask written there.
    """

    label_id: int
    name: str
    locked: bool = False
    prompts: dict[int, SlicePrompts] = field(default_factory=dict)
    source: dict[int, str] = field(default_factory=dict)
    confidence: dict[int, float] = field(default_factory=dict)

    @property
    def anchors(self) -> list[int]:
        """Sorted slices the user prompted."""
        return sorted(z for z, s in self.source.items() if s == USER)

    def clone(self) -> SegObject:
        return copy.deepcopy(self)
