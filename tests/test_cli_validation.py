"""``slicesam segment`` checks every prompt against the volume before it loads the model.

A box running partly off its slice used to be clipped silently (exit 0, a wrong
segmentation); a box wholly off the slice was refused only after the model had loaded (28 s on
a CPU). Now: output path, image, prompts, then the model; one ``slicesam: error:`` line, exit
status 2, nothing written.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

import slicesam.models.registry as registry
from slicesam.cli import main

SHAPE = (30, 101, 122)  # the sample CT's (z, y, x): slices 0..29, y 0..100, x 0..121


@pytest.fixture
def ct(tmp_path):
    """A CT-like NIfTI whose loaded volume has the sample CT's shape (z, y, x) = SHAPE."""
    data = np.full(SHAPE[::-1], -1000, np.int16)  # stored (x, y, z); loaded as (z, y, x)
    data[40:80, 30:70, 5:25] = 40
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([-3.0, -3.0, 3.0, 1.0])), path)
    return path


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: bad prompts must be refused before it."""

    def load_model(*args, **kwargs):
        pytest.fail("the model was loaded although the prompts are bad")

    monkeypatch.setattr(registry, "load_model", load_model)


def segment(tmp_path, capsys, image, obj: dict, *extra: str):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"objects": [obj]}))
    out = tmp_path / "out" / "labels.nii.gz"
    code = main(["segment", str(image), "--prompts", str(prompts), "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err, out


def test_the_fixture_has_the_sample_shape(ct):
    from slicesam.io import load_volume

    assert load_volume(ct).shape == SHAPE


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"boxes": [{"z": 12, "box": [100, 26, 160, 41]}]},
         "objects[0].boxes[0].box: [100, 26, 160, 41] runs outside slice 12 (x 0..121, y 0..100)"),
        ({"boxes": [{"z": 12, "box": [130, 26, 160, 41]}]},
         "objects[0].boxes[0].box: [130, 26, 160, 41] lies outside slice 12 (x 0..121, y 0..100)"),
        ({"boxes": [{"z": 30, "box": [10, 26, 60, 41]}]},
         "objects[0].boxes[0].z: 30 is outside the volume (slices 0..29)"),
        ({"points": [{"z": 12, "y": 26, "x": 122}]},
         "objects[0].points[0].x: 122 is outside slice 12 (x 0..121, y 0..100)"),
        ({"scribbles": [{"z": 3, "points": [[1, 2], [150, 3]]}]},
         "objects[0].scribbles[0].points[1]: [y, x] = [150, 3] is outside slice 3"),
        ({"lassos": [{"z": 3, "points": [[1, 2], [50, 3], [40, 200]]}]},
         "objects[0].lassos[0].points[2]: [y, x] = [40, 200] is outside slice 3"),
        ({"boxes": [{"z": 12, "box": [10, 26, 60, 41]}], "z_range": [10, 40]},
         "objects[0].z_range: [10, 40] runs outside the volume (slices 0..29)"),
        ({"boxes": [{"z": 12, "box": [10, 26, 60, 41]}], "z_range": [14, 20]},
         "objects[0].z_range: [14, 20] holds none of the object's prompted slices [12]"),
    ],
)  # fmt: skip
def test_bad_prompts_are_refused_before_the_model_loads(tmp_path, capsys, ct, no_model, obj,
                                                         message):  # fmt: skip
    code, out, err, written = segment(tmp_path, capsys, ct, obj, "--device", "cpu")
    assert code == 2
    assert err.splitlines() == [err.strip()], err  # one line: the error, no progress before it
    assert err.startswith("slicesam: error: prompts file ") and message in err
    assert out == "" and not written.exists() and not written.parent.exists()


def test_the_output_is_checked_before_the_image_and_the_model(tmp_path, capsys, no_model):
    prompts = tmp_path / "p.json"
    prompts.write_text('{"objects": [{"boxes": [{"z": 1, "box": [1, 1, 3, 3]}]}]}')
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for out, message in [
        (blocker / "labels.nii.gz", "a_file is a file, not a folder"),
        (tmp_path / "labels.png", "unsupported extension"),
    ]:
        code = main(["segment", str(tmp_path / "missing.nii.gz"), "--prompts", str(prompts),
                     "--out", str(out)])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("slicesam: error: cannot write") and message in err


def test_the_output_may_not_replace_the_image(tmp_path, capsys, ct, no_model):
    prompts = tmp_path / "p.json"
    prompts.write_text('{"objects": [{"boxes": [{"z": 1, "box": [1, 1, 3, 3]}]}]}')
    before = ct.read_bytes()
    code = main(["segment", str(ct), "--prompts", str(prompts), "--out", str(ct)])
    err = capsys.readouterr().err
    assert code == 2 and "it is the input image" in err
    assert ct.read_bytes() == before


def test_a_bad_window_is_refused_before_the_model_loads(tmp_path, capsys, ct, no_model):
    obj = {"boxes": [{"z": 12, "box": [10, 26, 60, 41]}]}
    code, _, err, written = segment(tmp_path, capsys, ct, obj, "--window", "1,2,3")
    assert code == 2 and "--window expects LO,HI" in err and not written.exists()


def test_good_prompts_on_the_slice_edges_segment(tmp_path, capsys, ct, monkeypatch):
    from fakes import FakeModel

    monkeypatch.setattr(registry, "load_model", lambda *a, **k: FakeModel(box_only=True))
    obj = {"boxes": [{"z": 12, "box": [0, 0, 121, 100]}], "z_range": [10, 14]}
    code, out, err, written = segment(tmp_path, capsys, ct, obj, "--device", "cpu")
    assert code == 0, err
    assert out.startswith("wrote ") and written.is_file()
