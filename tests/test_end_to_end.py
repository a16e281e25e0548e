"""End to end with the real LiteMedSAM weights on the sample CT (no GUI)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

import slicesam
from slicesam.cli import main
from slicesam.demo import tight_box_on_largest_slice
from slicesam.samples import get_sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ct():
    sample = get_sample("ct_abdomen")
    vol = slicesam.load_volume(sample.image)
    ref = slicesam.load_volume(sample.labels).data
    return sample, vol, ref


@pytest.fixture(scope="module")
def liver_session(ct):
    """The README example: one box on the liver, propagated through the volume."""
    sample, vol, ref = ct
    sess = slicesam.Session(vol, device="cpu")
    obj = sess.new_object("liver")
    z, box = tight_box_on_largest_slice(ref == sample.label_id("liver"))
    mask = sess.add_box(obj, z=z, box=box)
    summary = sess.propagate(obj)
    return sess, obj, z, mask, summary


def test_liver_from_one_box(ct, liver_session):
    sample, vol, ref = ct
    sess, obj, z, mask, summary = liver_session
    gt = ref == sample.label_id("liver")
    assert mask.shape == vol.shape[1:] and mask.dtype == bool
    assert slicesam.dice(mask, gt[z]) > 0.9
    assert slicesam.dice(sess.labels == obj, gt) >= 0.85
    assert len(summary.slices) >= 20
    assert all(0 <= c <= 1 for c in summary.confidence.values())
    assert sess.model.name == "litemedsam"


def test_saved_labels_keep_the_source_geometry(ct, liver_session, tmp_path):
    sample, vol, _ = ct
    sess, *_ = liver_session
    out = slicesam.save_labels(tmp_path / "liver.nii.gz", sess.labels, like=vol)
    src, res = nib.load(sample.image), nib.load(out)
    assert res.shape == src.shape
    assert np.array_equal(res.affine, src.affine)
    assert np.array_equal(res.header.get_sform(), src.header.get_sform())
    assert np.array_equal(res.header.get_qform(), src.header.get_qform())
    assert int(res.header["sform_code"]) == int(src.header["sform_code"])
    assert int(res.header["qform_code"]) == int(src.header["qform_code"])
    assert np.array_equal(res.header.get_zooms(), src.header.get_zooms())
    assert np.issubdtype(res.get_data_dtype(), np.integer)
    back = slicesam.load_volume(out)
    assert np.array_equal(back.data, sess.labels)


def test_labels_line_up_with_the_reference_on_disk(ct, liver_session, tmp_path):
    """Voxel for voxel in the source's own orientation: compare with the raw reference file."""
    sample, vol, _ = ct
    sess, obj, *_ = liver_session
    out = slicesam.save_labels(tmp_path / "liver.nii.gz", sess.labels, like=vol)
    raw_ours = np.asanyarray(nib.load(out).dataobj) == obj
    raw_ref = np.asanyarray(nib.load(sample.labels).dataobj) == sample.label_id("liver")
    assert slicesam.dice(raw_ours, raw_ref) >= 0.85


def test_undo_redo_with_the_real_model(liver_session):
    sess, obj, z, *_ = liver_session
    before = sess.labels.copy()
    sess.add_point(obj, z, 5, 5, positive=False)  # a click in the background
    assert sess.undo()
    assert np.array_equal(sess.labels, before)
    assert sess.redo()
    assert sess.undo()


def test_clicks_on_the_default_model(ct, liver_session):
    """LiteMedSAM ignores points alone: a click still adds / removes the region under it."""
    sample, vol, ref = ct
    sess, liver, *_ = liver_session
    kidney = ref == sample.label_id("kidney_left")
    z = int(np.argmax(kidney.sum(axis=(1, 2))))
    ys, xs = np.nonzero(kidney[z])
    cy, cx = int(np.median(ys)), int(np.median(xs))
    if not kidney[z, cy, cx]:
        cy, cx = ys[len(ys) // 2], xs[len(xs) // 2]
    obj = sess.new_object("kidney_left")
    mask = sess.add_point(obj, z, cy, cx, positive=True)
    assert mask[cy, cx]
    assert slicesam.dice(mask, kidney[z]) > 0.6
    # a negative click near the border takes a bite; one at the mask's centre removes it
    inner = ndimage.distance_transform_edt(mask)
    by, bx = np.argwhere(inner == 2)[0]
    bitten = sess.add_point(obj, z, by, bx, positive=False)
    assert not bitten[by, bx]
    assert 0.7 * mask.sum() < bitten.sum() < mask.sum()
    cy, cx = np.unravel_index(int(np.argmax(ndimage.distance_transform_edt(bitten))), mask.shape)
    gone = sess.add_point(obj, z, cy, cx, positive=False)
    assert not gone[cy, cx]
    assert gone.sum() < 0.5 * kidney[z].sum()
    sess.undo()
    sess.undo()
    sess.undo()
    sess.undo()  # the object itself


def test_cli_segment(ct, tmp_path, capsys):
    sample, vol, ref = ct
    gt = ref == sample.label_id("kidney_left")
    z, box = tight_box_on_largest_slice(gt)
    prompts = {
        "objects": [
            {
                "id": 3,
                "name": "kidney_left",
                "boxes": [{"z": z, "box": list(box)}],
                "points": [],
                "z_range": [z - 2, z + 2],
            }
        ]
    }
    (tmp_path / "p.json").write_text(json.dumps(prompts))
    out = tmp_path / "out" / "labels.nii.gz"
    code = main(
        [
            "segment",
            str(sample.image),
            "--prompts",
            str(tmp_path / "p.json"),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert code == 0, capsys.readouterr().err
    labels = slicesam.load_volume(out).data
    assert set(np.unique(labels)) == {0, 3}
    written = np.flatnonzero((labels == 3).any(axis=(1, 2)))
    assert list(written) == list(range(z - 2, z + 3))
    sl = slice(z - 2, z + 3)
    assert slicesam.dice(labels[sl] == 3, gt[sl]) > 0.8
