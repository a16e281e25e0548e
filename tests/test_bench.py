"""The accuracy benchmark runner on a generated dataset with the fake model (no real weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from fakes import FakeModel, ball
from slicesam.bench.protocols import medsam_box_from_mask, noc
from slicesam.bench.runner import run_benchmark
from slicesam.bench.simulate import next_click_2d, next_click_3d, tight_box
from slicesam.errors import SliceSamError


@pytest.fixture
def dataset_root(tmp_path):
    shape = (16, 40, 48)
    a = ball(shape, (8, 18, 14), 6)
    b = ball(shape, (7, 22, 34), 5)
    labels = (a * 1 + b * 2).astype(np.uint16)
    image = np.where(labels > 0, 200, 30).astype(np.uint8)
    folder = tmp_path / "data" / "balls"
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "image.tif", image)
    tifffile.imwrite(folder / "labels.tif", labels)
    meta = {"name": "balls", "objects": [1, 2], "label_names": {"1": "left", "2": "right"}}
    (folder / "meta.json").write_text(json.dumps(meta))
    return tmp_path / "data", image, labels


def test_every_protocol_and_baseline_on_a_generated_dataset(dataset_root, tmp_path):
    root, _, _ = dataset_root
    out = tmp_path / "out"
    result = run_benchmark(
        root, out, model=FakeModel(box_only=True), p3_clicks=3, p4_clicks=4, progress=False
    )
    for name in ("bench.json", "bench.md", "bench.png"):
        assert (out / name).stat().st_size > 0
    summary = result["datasets"]["balls"]["summary"]
    assert summary["n_objects"] == 2
    for key in ("P1", "P2", "medsam3d", "oracle", "oracle_extent"):
        assert 0.5 < summary[key] <= 1.0, key
    # bright balls on black: a box on every slice finds every slice
    assert summary["oracle_extent"] > 0.95
    curve = summary["P3"]["dice_curve"]
    assert len(curve) == 4 and all(0.0 <= v <= 1.0 for v in curve)
    assert summary["P4"]["iou_at"]["1"] > 0.5, "one click on a bright ball finds it"
    table = (out / "bench.md").read_text()
    assert "| balls | 2 |" in table and "oracle (extent boxes)" in table


def test_unknown_dataset_is_named(dataset_root, tmp_path):
    root, _, _ = dataset_root
    with pytest.raises(SliceSamError, match="unknown dataset.*nope.*found: balls"):
        run_benchmark(root, tmp_path / "o", model=FakeModel(), datasets=["nope"], progress=False)


def test_simulated_clicks_go_to_the_centre_of_the_largest_error():
    gt = np.zeros((3, 30, 30), dtype=bool)
    gt[1, 5:25, 5:25] = True
    pred = gt.copy()
    pred[1, 5:25, 15:25] = False  # the right half is missing
    click = next_click_3d(pred, gt)
    assert click.positive and click.z == 1 and 15 <= click.x < 25
    assert next_click_3d(gt, gt) is None
    wrong = gt[1].copy()
    wrong[0:4, 0:4] = True  # a false positive corner
    click = next_click_2d(wrong, gt[1], 1)
    assert not click.positive and click.y < 4 and click.x < 4


def test_noc_and_boxes():
    assert noc([0.2, 0.86, 0.9], 0.85, 99) == 1
    assert noc([0.2, 0.3], 0.85, 99) == 99
    mask = np.zeros((512, 512), dtype=bool)
    mask[100:200, 300:356] = True
    assert tight_box(mask) == (300, 100, 355, 199)
    x0, y0, x1, y1 = medsam_box_from_mask(mask, 256)
    # at half scale the 3 model pixels of margin are 6 slice pixels
    assert (x0, y0) == pytest.approx((294, 94)) and (x1, y1) == pytest.approx((360, 204))
    assert medsam_box_from_mask(np.zeros_like(mask), 256) is None


def test_p4_with_suggested_clicks(dataset_root):
    from slicesam.bench.datasets import load_dataset
    from slicesam.bench.protocols import Runner, p4_suggested

    root, _, _ = dataset_root
    run = Runner(load_dataset(root / "balls"), FakeModel(box_only=True))
    r = p4_suggested(run, 1, max_clicks=4)
    assert len(r["iou_curve"]) == 5 and r["iou_curve"][1] > 0.5
    assert 0 <= r["followed"] <= 3


@pytest.mark.parametrize("name", ["grabcut", "random_walker"])
def test_classical_backends_run_the_benchmark(dataset_root, tmp_path, name):
    root, _, _ = dataset_root
    result = run_benchmark(
        root, tmp_path / name, model=name, protocols=["P1", "P2"], baselines=False,
        progress=False,
    )  # fmt: skip
    summary = result["datasets"]["balls"]["summary"]
    assert result["environment"]["model"] == name
    assert summary["P1"] > 0.8, "bright balls on black are easy for a classical method"


def test_object_splits_pick_their_structures(dataset_root, tmp_path, monkeypatch):
    """`slicesam bench --objects validation` evaluates meta.json's validation_objects only."""
    import slicesam.models.registry as registry
    from slicesam.cli import main

    root, _, _ = dataset_root
    meta_path = root / "balls" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta.update(objects=[1], validation_objects=[2], training_objects=[])
    meta_path.write_text(json.dumps(meta))
    monkeypatch.setattr(registry, "load_model", lambda *a, **k: FakeModel(box_only=True))
    seen = {}
    for split in ("reported", "validation", "training"):
        out = tmp_path / split
        args = ["bench", "--data", str(root), "--out", str(out), "--objects", split]
        assert main([*args, "--protocol", "P2", "--no-baselines", "--quiet"]) == 0
        result = json.loads((out / "bench.json").read_text())
        assert result["split"] == split
        seen[split] = [list(ds["objects"]) for ds in result["datasets"].values()]
    assert seen == {"reported": [["1"]], "validation": [["2"]], "training": []}
    assert main(["bench", "--data", str(root), "--out", str(tmp_path / "x"), "--objects", "x"]) == 2


def test_p5_from_a_p3_curve():
    from slicesam.bench.report import p5_from_p3

    p5 = p5_from_p3([0.5, 0.7, 0.6, 0.8, 0.8, 0.9, 0.95])
    assert p5["final"] == pytest.approx(0.9)
    assert p5["auc"] == pytest.approx((0.6 + 0.65 + 0.7 + 0.8 + 0.85) / 5)
    assert p5["max_drop"] == pytest.approx(0.1)
    assert p5_from_p3([0.5, 0.6]) is None
    assert p5_from_p3([0.2] * 6)["max_drop"] == 0.0
