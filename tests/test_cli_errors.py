"""Bad input on the command line: one clear line, exit status 2, no traceback, nothing written."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from slicesam.cli import main


@pytest.fixture
def small_ct(tmp_path):
    data = np.full((12, 10, 4), -1000, np.int16)
    data[3:9, 3:7, :] = 40
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), path)
    return path


def write_prompts(tmp_path, doc) -> str:
    path = tmp_path / "prompts.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


GOOD = {"objects": [{"id": 1, "boxes": [{"z": 1, "box": [2, 2, 8, 6]}]}]}


def run_cli(capsys, args):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing_image", "no such file"),
        ("garbage_image", "garbage.nii.gz"),
        ("missing_prompts", "prompts file not found"),
        ("bad_json", "not valid JSON"),
        ("no_objects", '"objects"'),
        ("box_outside", "outside slice"),
        ("z_outside", "outside the volume"),
        ("bad_box", "expected [x0, y0, x1, y1]"),
        ("bad_extension", "unsupported extension"),
        ("image_2d", "2D image"),
        ("image_4d", "channel="),
        ("image_nan", "fill_nonfinite"),
        ("bad_model", "unknown model"),
        ("sam_without_checkpoint", "--checkpoint"),
    ],
)
def test_cli_bad_input(tmp_path, small_ct, capsys, case, expected):
    image, prompts, out = str(small_ct), write_prompts(tmp_path, GOOD), tmp_path / "out.nii.gz"
    extra: list[str] = []
    if case == "missing_image":
        image = str(tmp_path / "nope.nii.gz")
    elif case == "garbage_image":
        image = str(tmp_path / "garbage.nii.gz")
        with gzip.open(image, "wb") as f:
            f.write(b"this is not a nifti file" * 20)
    elif case == "missing_prompts":
        prompts = str(tmp_path / "nope.json")
    elif case == "bad_json":
        prompts = write_prompts(tmp_path, "{not json")
    elif case == "no_objects":
        prompts = write_prompts(tmp_path, {"things": []})
    elif case == "box_outside":
        prompts = write_prompts(
            tmp_path, {"objects": [{"boxes": [{"z": 1, "box": [50, 50, 60, 60]}]}]}
        )
    elif case == "z_outside":
        prompts = write_prompts(tmp_path, {"objects": [{"boxes": [{"z": 9, "box": [1, 1, 3, 3]}]}]})
    elif case == "bad_box":
        prompts = write_prompts(tmp_path, {"objects": [{"boxes": [{"z": 1, "box": [1, 1, 3]}]}]})
    elif case == "bad_extension":
        out = tmp_path / "out.png"
    elif case == "image_2d":
        image = str(tmp_path / "flat.nii.gz")
        nib.save(nib.Nifti1Image(np.zeros((10, 10), np.int16), np.eye(4)), image)
    elif case == "image_4d":
        image = str(tmp_path / "four.nii.gz")
        nib.save(nib.Nifti1Image(np.zeros((10, 10, 4, 3), np.int16), np.eye(4)), image)
    elif case == "image_nan":
        image = str(tmp_path / "nan.nii.gz")
        data = np.zeros((10, 10, 4), np.float32)
        data[0, 0, 0] = np.nan
        nib.save(nib.Nifti1Image(data, np.eye(4)), image)
    elif case == "bad_model":
        extra = ["--model", "sam_vit_q"]
    elif case == "sam_without_checkpoint":
        extra = ["--model", "sam_vit_b"]
    code, err = run_cli(
        capsys,
        ["segment", image, "--prompts", prompts, "--out", str(out), "--device", "cpu", *extra],
    )
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("slicesam: error:")
    assert expected in err
    assert "Traceback" not in err
    assert not out.exists()


def test_cli_unknown_object_fields_are_reported(tmp_path, small_ct, capsys):
    prompts = write_prompts(tmp_path, {"objects": [{"id": 1, "colour": "red", "boxes": []}]})
    code, err = run_cli(
        capsys, ["segment", str(small_ct), "--prompts", prompts, "--out", str(tmp_path / "o.nii")]
    )
    assert code == 2 and "unknown keys ['colour']" in err


def test_cli_error_in_a_real_process_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "slicesam",
            "segment",
            str(tmp_path / "nope.nii.gz"),
            "--prompts",
            str(tmp_path / "p.json"),
            "--out",
            str(tmp_path / "o.nii.gz"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("slicesam: error:")


def test_cli_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("litemedsam", "sam_vit_b", "sam_vit_l", "sam_vit_h"):
        assert name in out


def test_cli_info(small_ct, capsys):
    assert main(["info", str(small_ct)]) == 0
    out = capsys.readouterr().out
    assert "(4, 10, 12)" in out and "CT" in out


def test_cli_fill_nonfinite_replaces_nan(tmp_path, capsys):
    image = tmp_path / "nan.nii.gz"
    data = np.zeros((10, 10, 4), np.float32)
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), image)
    code, err = run_cli(capsys, ["info", str(image)])
    assert code == 2 and "--fill-nonfinite" in err
    assert main(["info", str(image), "--fill-nonfinite", "0"]) == 0
    assert "shape" in capsys.readouterr().out


def test_cli_scribbles_and_lassos(tmp_path, small_ct, capsys, monkeypatch):
    import slicesam.models.registry as registry
    from fakes import FakeModel

    monkeypatch.setattr(registry, "load_model", lambda *a, **k: FakeModel(box_only=True))
    doc = {
        "objects": [
            {"id": 2, "scribbles": [{"z": 1, "points": [[4, 3], [5, 6]]}]},
            {"id": 3, "lassos": [{"z": 1, "points": [[2, 2], [2, 9], [8, 9], [8, 2]]}]},
        ]
    }
    out = tmp_path / "o.nii.gz"
    code = main(["segment", str(small_ct), "--prompts", write_prompts(tmp_path, doc),
                 "--out", str(out), "--no-propagate"])  # fmt: skip
    assert code == 0 and out.is_file()
    bad = {"objects": [{"scribbles": [{"z": 1, "points": [[4, 3, 1]]}]}]}
    code, err = run_cli(capsys, ["segment", str(small_ct), "--prompts",
                                 write_prompts(tmp_path, bad), "--out", str(out)])  # fmt: skip
    assert code == 2 and "objects[0].scribbles[0].points[0]: expected [y, x]" in err
