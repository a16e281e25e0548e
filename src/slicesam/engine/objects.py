"""Segmentation objects and what the session knows of each, slice by slice.

An object's per-slice state is one :class:`SliceRecord` per slice it has a mask on (where the
mask came from, the user's prompts there, how sure the mask is, the model's logits).
:meth:`SegObject.snapshot` and :meth:`SegObject.from_snapshot` turn an object into plain JSON
and back; persistence (the autosave journal, restore, replay) uses only those.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

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

    def to_json(self) -> dict[str, Any]:
        box = self.box
        return {
            "box": [box.x0, box.y0, box.x1, box.y1] if box is not None else None,
            "points": [[p.y, p.x, p.positive] for p in self.points],
        }

    @classmethod
    def from_json(cls, z: int, doc: dict[str, Any]) -> SlicePrompts:
        box = Box(z, *(float(v) for v in doc["box"])) if doc.get("box") else None
        points = [Point(z, float(y), float(x), bool(pos)) for y, x, pos in doc["points"]]
        return cls(box, points)


@dataclass
class SliceRecord:
    """What the session knows of one object on one slice it wrote.

    Attributes:
        source: USER, PROPAGATED or INTERPOLATED.
        confidence: confidence in [0, 1] of the mask written there (see
            :func:`slicesam.engine.confidence.combine`).
        evidence: the parts the confidence was made of (model IoU head, stability of the mask
            under threshold changes, agreement with the neighbour slice); None when the mask
            was painted by hand.
        prompts: the user's prompts there (the slice is then an anchor), or None.
        overshoot: how far (pixels, mean over the four sides) the model's mask for the user's
            box there reached past the box (see ``PropagationParams.max_overshoot_erosion_px``),
            or None.
        logits: the model's low-resolution logits of the mask (a point-capable model's next
            click on the slice starts from them); transient: never saved, and dropped by undo,
            redo and restore.
    """

    source: str
    confidence: float = 1.0
    evidence: dict[str, float] | None = None
    prompts: SlicePrompts | None = None
    overshoot: float | None = None
    logits: np.ndarray | None = field(default=None, repr=False, compare=False)

    def copy(self, *, logits: bool = True) -> SliceRecord:
        """A copy (the logits array shared, or left out)."""
        return replace(
            self,
            evidence=None if self.evidence is None else dict(self.evidence),
            prompts=None
            if self.prompts is None
            else SlicePrompts(self.prompts.box, list(self.prompts.points)),
            logits=self.logits if logits else None,
        )

    def snapshot(self) -> dict[str, Any]:
        """The record as plain JSON (logits left out)."""
        doc: dict[str, Any] = {"source": self.source, "confidence": float(self.confidence)}
        if self.evidence is not None:
            doc["evidence"] = {k: float(v) for k, v in self.evidence.items()}
        if self.prompts is not None:
            doc["prompts"] = self.prompts.to_json()
        if self.overshoot is not None:
            doc["overshoot"] = float(self.overshoot)
        return doc

    @classmethod
    def from_snapshot(cls, z: int, doc: dict[str, Any]) -> SliceRecord:
        """The inverse of :meth:`snapshot` (unknown keys are ignored)."""
        prompts = doc.get("prompts")
        return cls(
            source=doc.get("source"),  # type: ignore[arg-type]
            confidence=doc.get("confidence", 1.0),
            evidence=doc.get("evidence"),
            prompts=None if prompts is None else SlicePrompts.from_json(z, prompts),
            overshoot=doc.get("overshoot"),
        )


#: The per-slice keys of an object's JSON before :class:`SliceRecord` (each a dict keyed by
#: slice) and the record field each fills.
_OLD_SLICE_KEYS = ("source", "confidence", "evidence", "prompts", "overshoot")


@dataclass
class SegObject:
    """One object (one label id) of a session.

    Attributes:
        label_id: the value it has in the label volume (>= 1).
        name: display name.
        locked: a locked object takes no prompts and no propagation.
        slices: slice index -> :class:`SliceRecord`, for every slice the session wrote.
        z_range: the (first, last) range the user last propagated the object in, if any.
        propagated: the user propagated the object (even where no walk got past its anchors):
            a correction then re-walks from its slice.

    ``prompts``, ``source``, ``confidence``, ``evidence`` and ``overshoot`` are read-only
    views of the records: slice index -> that field, for the slices that have it.
    """

    label_id: int
    name: str
    locked: bool = False
    slices: dict[int, SliceRecord] = field(default_factory=dict)
    z_range: tuple[int, int] | None = None
    propagated: bool = False

    @property
    def anchors(self) -> list[int]:
        """Sorted slices the user prompted."""
        return sorted(z for z, r in self.slices.items() if r.source == USER)

    def has_derived_slices(self) -> bool:
        """True when propagation or interpolation wrote any slice of the object."""
        return any(r.source in DERIVED for r in self.slices.values())

    def source_at(self, z: int) -> str | None:
        """Where the mask on slice ``z`` came from (None: the session wrote none there)."""
        record = self.slices.get(z)
        return None if record is None else record.source

    def _view(self, name: str) -> dict[int, Any]:
        out = {}
        for z, record in self.slices.items():
            value = getattr(record, name)
            if value is not None:
                out[z] = value
        return out

    @property
    def prompts(self) -> dict[int, SlicePrompts]:
        return self._view("prompts")

    @property
    def source(self) -> dict[int, str]:
        return self._view("source")

    @property
    def confidence(self) -> dict[int, float]:
        return self._view("confidence")

    @property
    def evidence(self) -> dict[int, dict[str, float]]:
        return self._view("evidence")

    @property
    def overshoot(self) -> dict[int, float]:
        return self._view("overshoot")

    def clone(self, *, logits: bool = True) -> SegObject:
        """A copy (logits arrays shared, or left out)."""
        return replace(self, slices={z: r.copy(logits=logits) for z, r in self.slices.items()})

    def snapshot(self) -> dict[str, Any]:
        """The object as plain JSON, every field but the id (slice keys as strings)."""
        return {
            "name": self.name,
            "locked": self.locked,
            "slices": {str(z): r.snapshot() for z, r in sorted(self.slices.items())},
            "z_range": None if self.z_range is None else [int(v) for v in self.z_range],
            "propagated": self.propagated,
        }

    @classmethod
    def from_snapshot(cls, label_id: int, doc: dict[str, Any]) -> SegObject:
        """The inverse of :meth:`snapshot`. Also reads the form before :class:`SliceRecord`
        (one dict keyed by slice per field: ``source``, ``prompts``, ``confidence``, ...);
        unknown keys (fields of other versions) are ignored."""
        if "slices" in doc:
            slices = {
                int(key): SliceRecord.from_snapshot(int(key), value)
                for key, value in doc["slices"].items()
            }
        else:
            slices = _records_of_old_form(doc)
        z_range = doc.get("z_range")
        return cls(
            int(label_id),
            doc.get("name", f"object {label_id}"),
            bool(doc.get("locked", False)),
            slices,
            None if z_range is None else tuple(z_range),  # type: ignore[arg-type]
            bool(doc.get("propagated", any(r.source in DERIVED for r in slices.values()))),
        )


def _records_of_old_form(doc: dict[str, Any]) -> dict[int, SliceRecord]:
    """The slice records of an object JSON written before :class:`SliceRecord`."""
    columns = {key: {int(z): v for z, v in (doc.get(key) or {}).items()} for key in _OLD_SLICE_KEYS}
    slices: dict[int, SliceRecord] = {}
    # in the order the old ``source`` dict kept (slices sorted), then any slice only other
    # fields name
    order = list(columns["source"]) + sorted(
        {z for key in _OLD_SLICE_KEYS for z in columns[key]} - set(columns["source"])
    )
    for z in order:
        prompts = columns["prompts"].get(z)
        slices[z] = SliceRecord(
            source=columns["source"].get(z),  # type: ignore[arg-type]
            confidence=columns["confidence"].get(z, 1.0),
            evidence=columns["evidence"].get(z),
            prompts=None if prompts is None else SlicePrompts.from_json(z, prompts),
            overshoot=columns["overshoot"].get(z),
        )
    return slices
