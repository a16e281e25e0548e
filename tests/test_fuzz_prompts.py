"""Fuzzing the prompts JSON reader: any input gives prompts or a PromptError naming the field.

Three kinds of input: arbitrary JSON values (hypothesis ``recursive``), documents shaped like
a prompts file whose fields hold random JSON (wrong types, NaN, negative and huge numbers,
missing and unknown keys), and the text of a valid file with random characters changed.
:func:`slicesam.prompts.read_prompts` / :func:`~slicesam.prompts.parse_prompts` must return
validated :class:`~slicesam.prompts.ObjectPrompts` or raise
:class:`~slicesam.errors.PromptError`; never ``KeyError``, ``TypeError``, ``ValueError`` ...
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from slicesam.errors import PromptError
from slicesam.prompts import (
    MAX_COORD,
    MAX_LABEL_ID,
    ObjectPrompts,
    parse_prompts,
    prompts_to_json,
    read_prompts,
)

EXAMPLES = int(os.environ.get("SLICESAM_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize="SLICESAM_FUZZ_EXAMPLES" not in os.environ,
)

VALID = {
    "objects": [
        {
            "id": 1,
            "name": "liver",
            "boxes": [{"z": 15, "box": [10, 20, 60, 70]}],
            "points": [{"z": 15, "y": 40, "x": 50.5, "positive": True}],
            "z_range": [10, 20],
        },
        {"id": 2, "points": [{"z": 3, "y": 4, "x": 5, "positive": False}]},
    ]
}

#: Numbers that break naive parsers: NaN/inf, negative, huge, non-integral, float-integral.
ODD_NUMBERS = st.sampled_from(
    [
        math.nan,
        math.inf,
        -math.inf,
        -1,
        -0.0,
        -1e-9,
        0.5,
        3.0,
        2**31,
        2**53 + 1,
        10**40,
        -(10**40),
        1e308,
        MAX_COORD,
        MAX_LABEL_ID + 1,
    ]
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | ODD_NUMBERS
    | st.text(max_size=8)
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["objects", "id", "z", "box", "points", "boxes", "x"])
            | st.text(max_size=6),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


def documents(noisy: bool) -> st.SearchStrategy[dict]:
    """Documents shaped like a prompts file. ``noisy``: about one value in 20 is replaced by
    an odd number or any JSON value, and some keys are dropped or unknown ones added;
    otherwise every field is valid (ids unique), so most parse."""

    def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        if not noisy:
            return valid
        return st.integers(0, 19).flatmap(
            lambda k: JSON if k == 0 else ODD_NUMBERS if k == 1 else valid
        )

    @st.composite
    def record(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> dict:
        keep = (lambda: draw(st.integers(0, 29)) > 0) if noisy else (lambda: draw(st.booleans()))
        required = () if noisy else ("z", "y", "x", "box", "points")
        out = {k: draw(v) for k, v in fields.items() if k in required or keep()}
        if noisy and draw(st.integers(0, 29)) == 0:
            out[draw(st.text(min_size=1, max_size=6))] = draw(JSON)
        return out

    coord = st.integers(0, 100) | st.floats(0, 100)
    z = st.integers(0, 30)
    point = record({"z": maybe(z), "y": maybe(coord), "x": maybe(coord),
                    "positive": maybe(st.booleans())})  # fmt: skip
    box = record({"z": maybe(z), "box": maybe(st.lists(maybe(coord), min_size=4, max_size=4))})
    obj = record(
        {
            "id": maybe(st.integers(1, 10)),
            "name": maybe(st.text(max_size=10)),
            "boxes": maybe(st.lists(maybe(box), max_size=3)),
            "points": maybe(st.lists(maybe(point), min_size=0 if noisy else 1, max_size=3)),
            "z_range": maybe(st.lists(maybe(z), min_size=2, max_size=2)),
        }
    )
    if noisy:
        objects = st.lists(maybe(obj), max_size=3)
    else:
        objects = st.lists(obj, min_size=1, max_size=3, unique_by=_object_id)
    return st.fixed_dictionaries({"objects": maybe(objects)})


def _object_id(obj: Any) -> object:
    """Key that keeps ids unique in valid documents (objects without id never collide)."""
    return obj.get("id", object())


DOCUMENT = st.booleans().flatmap(documents)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="slicesam-fuzz-") as folder:
        yield Path(folder)


def check_valid(objects: list[ObjectPrompts]) -> None:
    """What a caller may rely on after a successful parse."""
    assert objects
    ids = [o.label_id for o in objects if o.label_id is not None]
    assert len(ids) == len(set(ids))
    for obj in objects:
        assert obj.boxes or obj.points
        assert obj.label_id is None or 1 <= obj.label_id <= MAX_LABEL_ID
        assert obj.name is None or isinstance(obj.name, str)
        for b in obj.boxes:
            assert isinstance(b.z, int) and 0 <= b.z <= MAX_COORD
            assert all(math.isfinite(v) and 0 <= v <= MAX_COORD for v in b.xyxy)
            assert b.x0 <= b.x1 and b.y0 <= b.y1
        for p in obj.points:
            assert isinstance(p.z, int) and 0 <= p.z <= MAX_COORD
            assert all(math.isfinite(v) and 0 <= v <= MAX_COORD for v in (p.y, p.x))
            assert isinstance(p.positive, bool)
        if obj.z_range is not None:
            lo, hi = obj.z_range
            assert isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi
    # what parse accepts, prompts_to_json writes back to an equivalent document
    assert parse_prompts(json.loads(json.dumps(prompts_to_json(objects)))) == objects


def check_parse(doc: Any) -> None:
    try:
        objects = parse_prompts(doc)
    except PromptError as exc:
        msg = str(exc)
        assert msg.strip() and "\n" not in msg
        assert len(msg) < 400, msg
        if isinstance(doc, dict) and isinstance(doc.get("objects"), list) and doc["objects"]:
            assert "objects[" in msg or "objects" in msg, msg
        event(f"PromptError: {msg.split(':')[0][:30]}")
        return
    event("parsed")
    check_valid(objects)


@FUZZ
@given(doc=JSON)
def test_fuzz_any_json_value(doc: Any) -> None:
    check_parse(doc)


@FUZZ
@given(doc=DOCUMENT)
def test_fuzz_prompts_shaped_documents(doc: dict) -> None:
    check_parse(doc)


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    """The valid document's JSON text with characters replaced, inserted or removed."""
    chars = list(json.dumps(VALID))
    alphabet = st.sampled_from(list('{}[]:,"-.0123456789eE naNIfinity\\ut')) | st.characters()
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(chars) - 1))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "replace":
            chars[pos] = draw(alphabet)
        elif action == "insert":
            chars.insert(pos, draw(alphabet))
        elif len(chars) > 1:
            del chars[pos]
    return "".join(chars)


@FUZZ
@given(text=mutated_text())
def test_fuzz_mutated_prompts_file(workdir: Path, text: str) -> None:
    path = workdir / "prompts.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        objects = read_prompts(path)
    except PromptError as exc:
        assert str(exc).startswith(("prompts file", "cannot read")), str(exc)
        event("PromptError")
        return
    event("parsed")
    check_valid(objects)


# --------------------------------------------------------------------------- messages

B = {"z": 1, "box": [1, 2, 3, 4]}
P = {"z": 1, "y": 2, "x": 3}


def one(**obj: Any) -> dict:
    return {"objects": [obj]}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([1, 2], 'prompts must be a JSON object with an "objects" list, got a list [1, 2]'),
        ({"things": []}, 'prompts: missing field "objects"'),
        ({"objects": {"id": 1}}, 'prompts "objects": expected a list, got an object {"id": 1}'),
        ({"objects": []}, 'empty "objects" list'),
        ({"objects": [3]}, "objects[0]: expected an object"),
        (one(id=1), "objects[0]: no boxes, points, scribbles or lassos"),
        (one(id="1", boxes=[B]), 'objects[0].id: expected a number, got a string "1"'),
        (one(id=0, boxes=[B]), "objects[0].id: label ids are integers 1..4294967295, got 0"),
        (one(id=1.5, boxes=[B]), "objects[0].id: expected an integer, got 1.5"),
        ({"objects": [{"id": 1, "boxes": [B]}, {"id": 1, "points": [P]}]},
         "objects[1].id: 1 is already used by objects[0]"),
        (one(name=5, boxes=[B]), "objects[0].name: expected a string, got a number 5"),
        (one(boxes=5), "objects[0].boxes: expected a list, got a number 5"),
        (one(boxes=[{"z": 1}]), 'objects[0].boxes[0]: missing field "box"'),
        (one(boxes=[{"z": 1, "box": [1, 2, 3]}]),
         "objects[0].boxes[0].box: expected [x0, y0, x1, y1], got [1, 2, 3]"),
        (one(boxes=[{"z": 1, "box": [1, math.nan, 3, 4]}]),
         "objects[0].boxes[0].box[1] (y0): expected a finite number, got NaN"),
        (one(boxes=[{"z": 1, "box": [1, -2, 3, 4]}]),
         "objects[0].boxes[0].box[1] (y0): voxel coordinates are >= 0, got -2"),
        (one(boxes=[{"z": -1, "box": [1, 2, 3, 4]}]),
         "objects[0].boxes[0].z: voxel coordinates are >= 0, got -1"),
        (one(boxes=[{"z": 1.5, "box": [1, 2, 3, 4]}]),
         "objects[0].boxes[0].z: expected an integer, got 1.5"),
        (one(points=[{"z": 1, "y": 2}]), 'objects[0].points[0]: missing field "x"'),
        (one(points=[{**P, "y": math.inf}]),
         "objects[0].points[0].y: expected a finite number, got Infinity"),
        (one(points=[{**P, "x": 1e12}]), "objects[0].points[0].x: 1000000000000.0 is too large"),
        (one(points=[{**P, "x": 10**30}]),
         "objects[0].points[0].x: an integer of 100 bits is too large"),
        (one(points=[{**P, "x": True}]),
         "objects[0].points[0].x: expected a number, got a boolean true"),
        (one(points=[{**P, "positive": "yes"}]),
         'objects[0].points[0].positive: expected true or false, got "yes"'),
        (one(points=[{**P, "positve": False}]),
         "objects[0].points[0]: unknown keys ['positve']"),
        (one(boxes=[B], z_range=[1, 2, 3]),
         "objects[0].z_range: expected [z_first, z_last], got [1, 2, 3]"),
        (one(boxes=[B], z_range=[-1, 2]),
         "objects[0].z_range[0]: voxel coordinates are >= 0, got -1"),
    ],
)  # fmt: skip
def test_error_names_the_field(doc: Any, message: str) -> None:
    with pytest.raises(PromptError) as info:
        parse_prompts(doc)
    assert message in str(info.value)


def test_shape_check() -> None:
    doc = one(points=[{"z": 40, "y": 2, "x": 3}])
    assert parse_prompts(doc)[0].points[0].z == 40
    with pytest.raises(PromptError, match=r"objects\[0\].points\[0\].z: 40 is outside the volume"):
        parse_prompts(doc, shape=(30, 64, 64))
    with pytest.raises(PromptError, match=r"boxes\[0\].box: \[70, 2, 80, 4\] lies outside"):
        parse_prompts(one(boxes=[{"z": 1, "box": [70, 2, 80, 4]}]), shape=(30, 64, 64))


SHAPE = (30, 101, 122)  # the sample CT: slices 0..29, y 0..100, x 0..121


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        # a box running partly off the slice used to be clipped silently
        ({"boxes": [{"z": 12, "box": [100, 26, 160, 41]}]},
         "objects[0].boxes[0].box: [100, 26, 160, 41] runs outside slice 12 (x 0..121, y 0..100)"),
        ({"boxes": [{"z": 12, "box": [10, 26, 40, 101]}]},
         "objects[0].boxes[0].box: [10, 26, 40, 101] runs outside slice 12"),
        ({"boxes": [{"z": 12, "box": [10, 20, 121.5, 30]}]},
         "objects[0].boxes[0].box: [10, 20, 121.5, 30] runs outside slice 12"),
        ({"boxes": [{"z": 30, "box": [1, 2, 3, 4]}]},
         "objects[0].boxes[0].z: 30 is outside the volume (slices 0..29)"),
        ({"points": [{"z": 5, "y": 101, "x": 3}]},
         "objects[0].points[0].y: 101 is outside slice 5 (x 0..121, y 0..100)"),
        ({"points": [{"z": 5, "y": 1, "x": 122}]},
         "objects[0].points[0].x: 122 is outside slice 5 (x 0..121, y 0..100)"),
        ({"scribbles": [{"z": 3, "points": [[4, 3], [50, 60], [120, 60]]}]},
         "objects[0].scribbles[0].points[2]: [y, x] = [120, 60] is outside slice 3"),
        ({"lassos": [{"z": 3, "points": [[4, 3], [50, 130], [90, 60]]}]},
         "objects[0].lassos[0].points[1]: [y, x] = [50, 130] is outside slice 3"),
        ({"lassos": [{"z": 31, "points": [[4, 3], [50, 13], [90, 60]]}]},
         "objects[0].lassos[0].z: 31 is outside the volume (slices 0..29)"),
        ({"boxes": [B], "z_range": [0, 30]},
         "objects[0].z_range: [0, 30] runs outside the volume (slices 0..29)"),
        ({"boxes": [B], "z_range": [5, 9]},
         "objects[0].z_range: [5, 9] holds none of the object's prompted slices [1]"),
    ],
)  # fmt: skip
def test_prompts_outside_the_volume_are_refused(obj: dict, message: str) -> None:
    with pytest.raises(PromptError) as info:
        parse_prompts(one(**obj), shape=SHAPE)
    assert message in str(info.value)


def test_prompts_on_the_volume_edges_are_accepted() -> None:
    doc = one(
        boxes=[{"z": 29, "box": [0, 0, 121, 100]}],
        points=[{"z": 0, "y": 100, "x": 121}],
        scribbles=[{"z": 3, "points": [[0, 0], [100, 121]]}],
        z_range=[0, 29],
    )
    (obj,) = parse_prompts(doc, shape=SHAPE)
    assert obj.boxes[0].xyxy == (0, 0, 121, 100) and obj.z_range == (0, 29)


def test_a_reversed_z_range_is_read_in_order() -> None:
    (obj,) = parse_prompts(one(boxes=[{"z": 15, "box": [1, 2, 3, 4]}], z_range=[20, 10]))
    assert obj.z_range == (10, 20)


def test_read_prompts_checks_the_shape_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(one(boxes=[{"z": 12, "box": [100, 26, 160, 41]}])))
    assert read_prompts(path)[0].boxes[0].x1 == 160  # no shape: no bounds to check
    with pytest.raises(PromptError) as info:
        read_prompts(path, shape=SHAPE)
    assert str(info.value) == (
        f"prompts file {path}: objects[0].boxes[0].box: [100, 26, 160, 41] runs outside "
        "slice 12 (x 0..121, y 0..100)"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "is empty"),
        (b"{not json", "is not valid JSON: Expecting property name"),
        (b"\xff\xfe{\x00}\x00", "is not UTF-8 text (byte 0); save it as UTF-8 JSON"),
        (b"[" * 100_000, "is not valid JSON: nested too deeply"),
        (b'{"objects": [{"id": ' + b"9" * 5000 + b"}]}", "a number with thousands of digits"),
        (b'{"objects": [{"points": [{"z": 1, "y": NaN, "x": 2}]}]}',
         "objects[0].points[0].y: expected a finite number, got NaN"),
    ],
)  # fmt: skip
def test_file_errors(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(raw)
    with pytest.raises(PromptError) as info:
        read_prompts(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="prompts file not found"):
        read_prompts(tmp_path / "nope.json")
    with pytest.raises(PromptError, match="is a directory; give a .json file"):
        read_prompts(tmp_path)


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(VALID).encode())
    objects = read_prompts(path)
    assert [o.label_id for o in objects] == [1, 2]
    assert objects[1].points[0].positive is False
