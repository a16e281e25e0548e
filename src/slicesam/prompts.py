"""Prompt dataclasses in volume voxel coordinates (z, y, x) and the prompts JSON format.

The JSON format read by ``slicesam segment --prompts``::

    {"objects": [{"id": 1, "name": "liver",
                  "boxes": [{"z": 15, "box": [x0, y0, x1, y1]}],
                  "points": [{"z": 15, "y": 40, "x": 60, "positive": true}],
                  "scribbles": [{"z": 15, "points": [[40, 50], [42, 60]], "positive": true}],
                  "lassos": [{"z": 16, "points": [[30, 40], [30, 80], [70, 80]]}],
                  "z_range": [10, 20]}]}

Box corners are inclusive pixel indices in ``volume.data[z]``; scribble and lasso vertices are
[y, x] pairs. All fields but ``objects`` are optional (``positive`` defaults to true); every
object needs a box, a point, a scribble or a lasso. Coordinates are
voxel indices (``z`` an integer, all ``>= 0``); ids are unique integers ``>= 1``. Unknown keys
are errors (they are usually typos, e.g. ``"positve"``). ``z_range`` is inclusive (either order)
and holds at least one prompted slice. Read against a volume (``shape``, as ``slicesam segment``
does before it loads the model), every slice, box corner, point, vertex and ``z_range`` must lie
inside it: a box running partly off its slice is an error, not clipped. Every problem raises
:class:`~slicesam.errors.PromptError` naming the field, e.g. ``objects[0].points[2].x``.
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


@dataclass(frozen=True)
class Lasso:
    """A closed polygon on slice z: ``points`` is a tuple of (y, x) vertices."""

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
    scribbles: list[Scribble] = field(default_factory=list)
    lassos: list[Lasso] = field(default_factory=list)


#: Largest coordinate or slice index accepted (no volume has 2**31 voxels along an axis).
MAX_COORD = 2**31 - 1
#: Largest label id (label volumes are at most uint32).
MAX_LABEL_ID = 2**32 - 1
#: Largest magnitude of any number (integers above it are not exact as floats).
MAX_NUMBER = 2**53

_OBJECT_KEYS = ("id", "name", "boxes", "points", "scribbles", "lassos", "z_range")
_BOX_KEYS = ("z", "box")
_POINT_KEYS = ("z", "y", "x", "positive")
_STROKE_KEYS = ("z", "points", "positive")
_BOX_CORNERS = ("x0", "y0", "x1", "y1")


def _show(value: Any, limit: int = 60) -> str:
    """Short repr of a (possibly huge) JSON value for an error message."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        try:
            text = repr(value)
        except (ValueError, RecursionError):
            text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: Any) -> str:
    """JSON name of a value's type: 'a string', 'a list', 'null', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, numbers.Number):
        return "a number"
    return type(value).__name__


def _got(value: Any) -> str:
    """``'a string "abc"'``, ``'null'``, ``'a list [1, 2]'``: what was found, for messages."""
    if value is None:
        return "null"
    return f"{_kind(value)} {_show(value)}"


def _number(value: Any, where: str) -> float:
    """``value`` as a finite float, or a :class:`PromptError` naming ``where``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise PromptError(f"{where}: expected a number, got {_got(value)}")
    if isinstance(value, numbers.Integral):
        if abs(int(value)) > MAX_NUMBER:
            raise PromptError(f"{where}: {_show(value, 30)} is too large")
        return float(value)
    number = float(value)
    if not math.isfinite(number):
        raise PromptError(f"{where}: expected a finite number, got {_show(value)}")
    if abs(number) > MAX_NUMBER:
        raise PromptError(f"{where}: {_show(value, 30)} is too large")
    return number


def _integer(value: Any, where: str) -> int:
    """``value`` as an int (integral floats such as 3.0 are accepted)."""
    number = _number(value, where)
    if number != int(number):
        raise PromptError(f"{where}: expected an integer, got {_show(value)}")
    return int(number)


def _coordinate(value: Any, where: str, integer: bool = False) -> float:
    """A voxel coordinate: a finite number in ``0 .. MAX_COORD``."""
    number = _integer(value, where) if integer else _number(value, where)
    if number < 0:
        raise PromptError(f"{where}: voxel coordinates are >= 0, got {_show(value)}")
    if number > MAX_COORD:
        raise PromptError(f"{where}: {_show(value, 30)} is too large (at most {MAX_COORD})")
    return number


def make_box(z: int, box: Any, where: str = "box") -> Box:
    """Validate ``box`` = (x0, y0, x1, y1) and return a :class:`Box` (corners sorted).

    Corners must be finite numbers of magnitude at most :data:`MAX_NUMBER`; they may lie
    outside the slice (callers clip).
    """
    if isinstance(box, np.ndarray):
        box = box.tolist()
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise PromptError(f"{where}: expected [x0, y0, x1, y1], got {_show(box)}")
    x0, y0, x1, y1 = (_number(v, f"{where}[{i}] ({_BOX_CORNERS[i]})") for i, v in enumerate(box))
    return Box(int(z), min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _mapping(value: Any, where: str, keys: tuple[str, ...], required: tuple[str, ...]) -> dict:
    """Check that ``value`` is a JSON object with only ``keys`` and all of ``required``."""
    shape = "{" + ", ".join(f'"{k}"' for k in keys) + "}"
    if not isinstance(value, dict):
        raise PromptError(f"{where}: expected an object {shape}, got {_got(value)}")
    unknown = sorted(str(k) for k in value if k not in keys)
    if unknown:
        raise PromptError(f"{where}: unknown keys {unknown}; allowed: {', '.join(keys)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise PromptError(f'{where}: missing field "{missing[0]}" (expected {shape})')
    return value


def _list(value: Any, where: str) -> list:
    """``value`` as a list (``null`` counts as empty)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise PromptError(f"{where}: expected a list, got {_got(value)}")
    return value


def _stroke(raw: Any, where: str, kind: type) -> Any:
    """A scribble or lasso entry: {"z", "points": [[y, x], ...], "positive"}."""
    st = _mapping(raw, where, _STROKE_KEYS, ("z", "points"))
    positive = st.get("positive", True)
    if not isinstance(positive, bool):
        raise PromptError(f"{where}.positive: expected true or false, got {_show(positive)}")
    vertices = _list(st["points"], f"{where}.points")
    if not vertices:
        raise PromptError(f"{where}.points: expected at least one [y, x] vertex")
    pts = []
    for k, v in enumerate(vertices):
        if not isinstance(v, list) or len(v) != 2:
            raise PromptError(f"{where}.points[{k}]: expected [y, x], got {_show(v)}")
        pts.append((_coordinate(v[0], f"{where}.points[{k}][0] (y)"),
                    _coordinate(v[1], f"{where}.points[{k}][1] (x)")))  # fmt: skip
    return kind(int(_coordinate(st["z"], f"{where}.z", integer=True)), tuple(pts), positive)


def _num(value: float) -> str:
    """A coordinate for a message: ``26`` for 26.0, ``26.5`` otherwise."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _check_z_range(obj: ObjectPrompts, where: str, nz: int | None) -> None:
    """``z_range`` lies inside the volume (when ``nz`` is known) and holds a prompted slice."""
    if obj.z_range is None:
        return
    lo, hi = obj.z_range
    if nz is not None and hi > nz - 1:
        raise PromptError(
            f"{where}.z_range: [{lo}, {hi}] runs outside the volume (slices 0..{nz - 1})"
        )
    prompted = sorted(
        {b.z for b in obj.boxes}
        | {p.z for p in obj.points}
        | {st.z for st in (*obj.scribbles, *obj.lassos)}
    )
    if not any(lo <= z <= hi for z in prompted):
        raise PromptError(
            f"{where}.z_range: [{lo}, {hi}] holds none of the object's prompted slices "
            f"{prompted}; propagation starts from a prompted slice"
        )


def _check_inside(obj: ObjectPrompts, where: str, shape: tuple[int, int, int]) -> None:
    """Every slice, box corner, point and stroke vertex lies inside the (z, y, x) ``shape``.

    A prompts file is refused when any part of a prompt is off the volume (the napari
    widget and :meth:`Session.add_box` instead clip a box drawn partly off the image).
    """
    nz, ny, nx = (int(n) for n in shape)
    bounds = f"(x 0..{nx - 1}, y 0..{ny - 1})"

    def check_z(z: int, field: str) -> None:
        if z > nz - 1:
            raise PromptError(f"{field}: {z} is outside the volume (slices 0..{nz - 1})")

    for j, b in enumerate(obj.boxes):
        check_z(b.z, f"{where}.boxes[{j}].z")
        if b.x1 > nx - 1 or b.y1 > ny - 1:
            corners = ", ".join(_num(v) for v in b.xyxy)
            off = "lies" if b.x0 > nx - 1 or b.y0 > ny - 1 else "runs"
            raise PromptError(
                f"{where}.boxes[{j}].box: [{corners}] {off} outside slice {b.z} {bounds}"
            )
    for j, pt in enumerate(obj.points):
        check_z(pt.z, f"{where}.points[{j}].z")
        for name, value, n in (("y", pt.y, ny), ("x", pt.x, nx)):
            if value > n - 1:
                raise PromptError(
                    f"{where}.points[{j}].{name}: {_num(value)} is outside slice {pt.z} {bounds}"
                )
    for key in ("scribbles", "lassos"):
        for j, st in enumerate(getattr(obj, key)):
            check_z(st.z, f"{where}.{key}[{j}].z")
            for k, (y, x) in enumerate(st.points):
                if y > ny - 1 or x > nx - 1:
                    raise PromptError(
                        f"{where}.{key}[{j}].points[{k}]: [y, x] = [{_num(y)}, {_num(x)}] "
                        f"is outside slice {st.z} {bounds}"
                    )
    _check_z_range(obj, where, nz)


def parse_prompts(doc: Any, shape: tuple[int, int, int] | None = None) -> list[ObjectPrompts]:
    """Validate a decoded prompts document and return one :class:`ObjectPrompts` per object.

    Args:
        doc: the decoded JSON (see the module docstring for the format).
        shape: the (z, y, x) shape of the volume the prompts are for; when given, every
            slice, box corner, point, scribble/lasso vertex and ``z_range`` must lie inside it
            (a box running partly off its slice is an error, not clipped).

    Coordinates are voxel indices: ``z`` an integer, ``x``/``y`` numbers, all ``>= 0`` and
    at most :data:`MAX_COORD`; ids are integers ``1 .. MAX_LABEL_ID``, unique; ``positive``
    is a boolean; ``z_range`` is ``[z_first, z_last]`` (inclusive, either order) and holds at
    least one of the object's prompted slices; unknown keys are errors (they are usually
    typos).

    Raises:
        PromptError: naming the bad field, e.g. ``objects[0].points[2].x``.
    """
    if not isinstance(doc, dict):
        raise PromptError(f'prompts must be a JSON object with an "objects" list, got {_got(doc)}')
    if "objects" not in doc:
        raise PromptError('prompts: missing field "objects" (a list of objects to segment)')
    objects = doc["objects"]
    if not isinstance(objects, list):
        raise PromptError(f'prompts "objects": expected a list, got {_got(objects)}')
    result: list[ObjectPrompts] = []
    seen: dict[int, int] = {}
    for i, raw in enumerate(objects):
        where = f"objects[{i}]"
        entry = _mapping(raw, where, _OBJECT_KEYS, ())
        obj = ObjectPrompts()
        if entry.get("id") is not None:
            label_id = _integer(entry["id"], f"{where}.id")
            if not 1 <= label_id <= MAX_LABEL_ID:
                raise PromptError(
                    f"{where}.id: label ids are integers 1..{MAX_LABEL_ID}, got {label_id}"
                )
            if label_id in seen:
                raise PromptError(
                    f"{where}.id: {label_id} is already used by objects[{seen[label_id]}]"
                )
            seen[label_id] = i
            obj.label_id = label_id
        if entry.get("name") is not None:
            if not isinstance(entry["name"], str):
                raise PromptError(f"{where}.name: expected a string, got {_got(entry['name'])}")
            obj.name = entry["name"]
        for j, b in enumerate(_list(entry.get("boxes"), f"{where}.boxes")):
            w = f"{where}.boxes[{j}]"
            b = _mapping(b, w, _BOX_KEYS, _BOX_KEYS)
            z = int(_coordinate(b["z"], f"{w}.z", integer=True))
            box = make_box(z, b["box"], f"{w}.box")
            for k, v in enumerate(b["box"]):
                _coordinate(v, f"{w}.box[{k}] ({_BOX_CORNERS[k]})")
            obj.boxes.append(box)
        for j, pt in enumerate(_list(entry.get("points"), f"{where}.points")):
            w = f"{where}.points[{j}]"
            pt = _mapping(pt, w, _POINT_KEYS, ("z", "y", "x"))
            positive = pt.get("positive", True)
            if not isinstance(positive, bool):
                raise PromptError(f"{w}.positive: expected true or false, got {_show(positive)}")
            obj.points.append(
                Point(
                    int(_coordinate(pt["z"], f"{w}.z", integer=True)),
                    _coordinate(pt["y"], f"{w}.y"),
                    _coordinate(pt["x"], f"{w}.x"),
                    positive,
                )
            )
        for key, kind in (("scribbles", Scribble), ("lassos", Lasso)):
            for j, st in enumerate(_list(entry.get(key), f"{where}.{key}")):
                getattr(obj, key).append(_stroke(st, f"{where}.{key}[{j}]", kind))
        if entry.get("z_range") is not None:
            zr = entry["z_range"]
            if not isinstance(zr, list) or len(zr) != 2:
                raise PromptError(f"{where}.z_range: expected [z_first, z_last], got {_show(zr)}")
            lo, hi = (
                int(_coordinate(v, f"{where}.z_range[{k}]", integer=True)) for k, v in enumerate(zr)
            )
            obj.z_range = (min(lo, hi), max(lo, hi))
        if not (obj.boxes or obj.points or obj.scribbles or obj.lassos):
            raise PromptError(f"{where}: no boxes, points, scribbles or lassos: nothing to segment")
        if shape is not None:
            _check_inside(obj, where, shape)
        else:
            _check_z_range(obj, where, None)
        result.append(obj)
    if not result:
        raise PromptError('prompts file has an empty "objects" list: nothing to segment')
    return result


def read_prompts(
    path: str | Path, shape: tuple[int, int, int] | None = None
) -> list[ObjectPrompts]:
    """Read and validate a prompts JSON file (UTF-8, a byte-order mark is accepted).

    Args:
        path: the JSON file.
        shape: optional (z, y, x) volume shape to check the prompts against (see
            :func:`parse_prompts`).

    Raises:
        PromptError: the file is missing or unreadable, is not JSON, or a field is invalid;
            the message names the file and the field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PromptError(f"prompts file not found: {path}") from None
    except IsADirectoryError:
        raise PromptError(f"prompts file {path} is a directory; give a .json file") from None
    except UnicodeDecodeError as exc:
        raise PromptError(
            f"prompts file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 JSON"
        ) from None
    except OSError as exc:
        raise PromptError(f"cannot read prompts file {path}: {exc.strerror or exc}") from None
    if not text.strip():
        raise PromptError(f'prompts file {path} is empty; expected {{"objects": [...]}}')
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PromptError(f"prompts file {path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise PromptError(f"prompts file {path} is not valid JSON: nested too deeply") from None
    except ValueError:  # an integer literal longer than Python's int_max_str_digits
        raise PromptError(
            f"prompts file {path} is not valid JSON for slicesam: it holds a number with "
            "thousands of digits"
        ) from None
    try:
        return parse_prompts(doc, shape)
    except PromptError as exc:
        raise PromptError(f"prompts file {path}: {exc}") from None


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
        for key in ("scribbles", "lassos"):
            strokes = getattr(obj, key)
            if strokes:
                entry[key] = [
                    {"z": st.z, "points": [list(v) for v in st.points], "positive": st.positive}
                    for st in strokes
                ]
        if obj.z_range is not None:
            entry["z_range"] = list(obj.z_range)
        out.append(entry)
    return {"objects": out}
