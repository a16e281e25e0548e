"""Segmentation objects and the prompts the user gave them, slice by slice."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ..prompts import Box, Point

#: Where a slice's mask came from.
USER = "user"
PROPAGATED = "propagated"
INTERPOLATED = "interpolated"
#: Sources a user prompt or a new propagation may replace (the session wrote them, not the user).
DERIVED = (PROPAGATED, INTERPOLATED)


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
        source: slice index -> USER, PROPAGATED or INTERPOLATED for every slice written.
        confidence: slice index -> confidence in [0, 1] of the mask written there (see
            :func:`slicesam.engine.confidence.combine`).
        evidence: slice index -> the parts the confidence was made of (model IoU head,
            stability of the mask under threshold changes, agreement with the neighbour slice).
        z_range: the (first, last) range the user last propagated the object in, if any.
        overshoot: slice index -> how far (pixels, mean over the four sides) the model's mask
            for the user's box there reached past the box (see
            ``PropagationParams.max_overshoot_erosion_px``).
    """

    label_id: int
    name: str
    locked: bool = False
    prompts: dict[int, SlicePrompts] = field(default_factory=dict)
    source: dict[int, str] = field(default_factory=dict)
    confidence: dict[int, float] = field(default_factory=dict)
    evidence: dict[int, dict[str, float]] = field(default_factory=dict)
    z_range: tuple[int, int] | None = None
    overshoot: dict[int, float] = field(default_factory=dict)

    @property
    def anchors(self) -> list[int]:
        """Sorted slices the user prompted."""
        return sorted(z for z, s in self.source.items() if s == USER)

    def has_derived_slices(self) -> bool:
        """True when propagation or interpolation wrote any slice of the object."""
        return any(s in DERIVED for s in self.source.values())

    def clone(self) -> SegObject:
        return copy.deepcopy(self)
