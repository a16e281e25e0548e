"""Prompt dataclasses in volume voxel coordinates (z, y, x) and the prompts JSON format.

The JSON format read by ``slicesam segment --prompts``::

    {"objects": [{"id": 1, "name": "liver",
                  "boxes": [{"z": 15, "box": [x0, y0, x1, y1]}],
                  "points": [{"z": 15, "y": 40, "x": 60, "positive": true}],
                  "z_range": [10, 20]}]}

Box corners are inclusive pixel indices in ``volume.data[z]``.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PromptError


@dataclass(frozen=True)
class Point:
    """A click at voxel (z, y, x); ``positive`` adds, negative removes."""

    z: int
    y: float
    x: float
    positive: bool = True


@dataclass(frozen=True)
class Box:
    """A box on slice z with inclusive pixel corners (x0, y0) - (x1, y1), x0 <= x1, y0 <= y1."""

    z: int
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)


@dataclass(frozen=True)
class Scribble:
    """A polyline on slice z: ``points`` is a tuple of (y, x) pairs."""

    z: int
    points: tuple[tuple[float, float], ...]
    positive: bool = True


@dataclass
class ObjectPrompts:
    """All prompts for one object as read from a prompts file."""

    label_id: int | None = None
    name: str | None = None
    boxes: list[Box] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    z_range: tuple[int, int] | None = None


def _number(value: Any, where: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise PromptError(f"{where}: expected a finite number, got {value!r}")
    if not math.isfinite(value):
        raise PromptError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _integer(value: Any, where: str) -> int:
    number = _number(value, where)
    if number != int(number):
        raise PromptError(f"{where}: expected an integer, got {value!r}")
    return int(number)


def make_box(z: int, box: Any, where: str = "box") -> Box:
    """Validate ``box`` = (x0, y0, x1, y1) and return a :class:`Box` (corners sorted)."""
    if isinstance(box, np.ndarray):
        box = box.tolist()
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise PromptError(f"{where}: expected [x0, y0, x1, y1], got {box!r}")
    x0, y0, x1, y1 = (_number(v, where) for v in box)
    return Box(int(z), min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def parse_prompts(doc: Any) -> list[ObjectPrompts]:
    """Validate a decoded prompts document and return one :class:`ObjectPrompts` per object."""
    if not isinstance(doc, dict) or not isinstance(doc.get("objects"), list):
        raise PromptError('prompts must be a JSON object with an "objects" list')
    result: list[ObjectPrompts] = []
    for i, entry in enumerate(doc["objects"]):
        where = f"objects[{i}]"
        if not isinstance(entry, dict):
            raise PromptError(f"{where}: expected an object, got {entry!r}")
        unknown = set(entry) - {"id", "name", "boxes", "points", "z_range"}
        if unknown:
            raise PromptError(f"{where}: unknown keys {sorted(unknown)}")
        obj = ObjectPrompts()
        if entry.get("id") is not None:
            obj.label_id = _integer(entry["id"], f"{where}.id")
            if obj.label_id < 1:
                raise PromptError(f"{where}.id: label ids start at 1, got {obj.label_id}")
        if entry.get("name") is not None:
            obj.name = str(entry["name"])
        for j, b in enumerate(entry.get("boxes") or []):
            w = f"{where}.boxes[{j}]"
            if not isinstance(b, dict) or "z" not in b or "box" not in b:
                raise PromptError(f'{w}: expected {{"z": int, "box": [x0, y0, x1, y1]}}')
            obj.boxes.append(make_box(_integer(b["z"], f"{w}.z"), b["box"], f"{w}.box"))
        for j, p in enumerate(entry.get("points") or []):
            w = f"{where}.points[{j}]"
            if not isinstance(p, dict) or not {"z", "y", "x"} <= set(p):
                raise PromptError(
                    f'{w}: expected {{"z": int, "y": num, "x": num, "positive": bool}}'
                )
            positive = p.get("positive", True)
            if not isinstance(positive, bool):
                raise PromptError(f"{w}.positive: expected true or false, got {positive!r}")
            obj.points.append(
                Point(
                    _integer(p["z"], f"{w}.z"),
                    _number(p["y"], f"{w}.y"),
                    _number(p["x"], f"{w}.x"),
                    positive,
                )
            )
        if entry.get("z_range") is not None:
            zr = entry["z_range"]
            if not isinstance(zr, (list, tuple)) or len(zr) != 2:
                raise PromptError(f"{where}.z_range: expected [z_first, z_last], got {zr!r}")
            lo, hi = (_integer(v, f"{where}.z_range") for v in zr)
            obj.z_range = (min(lo, hi), max(lo, hi))
        if not obj.boxes and not obj.points:
            raise PromptError(f"{where}: no boxes and no points: nothing to segment")
        result.append(obj)
    if not result:
        raise PromptError('prompts file has an empty "objects" list')
    return result


def read_prompts(path: str | Path) -> list[ObjectPrompts]:
    """Read and validate a prompts JSON file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptError(f"prompts file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"cannot read prompts file {path}: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PromptError(f"prompts file {path} is not valid JSON: {exc}") from None
    return parse_prompts(doc)


def prompts_to_json(objects: list[ObjectPrompts]) -> dict:
    """The inverse of :func:`parse_prompts` (for saving and round-trip tests)."""
    out = []
    for obj in objects:
        entry: dict[str, Any] = {}
        if obj.label_id is not None:
            entry["id"] = obj.label_id
        if obj.name is not None:
            entry["name"] = obj.name
        entry["boxes"] = [{"z": b.z, "box": [b.x0, b.y0, b.x1, b.y1]} for b in obj.boxes]
        entry["points"] = [asdict(p) for p in obj.points]
        if obj.z_range is not None:
            entry["z_range"] = list(obj.z_range)
        out.append(entry)
    return {"objects": out}
