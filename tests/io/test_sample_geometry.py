"""Geometry round trips on the shipped sample volumes: RAS CT, LPS MR, TIFF nuclei."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import tifffile

from slicesam.io import load_volume, save_labels
from slicesam.samples import get_sample

HEADER_FIELDS = (
    "pixdim", "qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d",
    "qoffset_x", "qoffset_y", "qoffset_z", "srow_x", "srow_y", "srow_z", "xyzt_units",
)  # fmt: skip


@pytest.mark.parametrize("key, axcodes", [("ct_abdomen", "RAS"), ("mr_abdomen", "LPS")])
def test_nifti_samples_round_trip_bit_for_bit(tmp_path, key, axcodes):
    sample = get_sample(key)
    src = nib.load(sample.image)
    assert "".join(nib.aff2axcodes(src.affine)) == axcodes
    vol = load_volume(sample.image)
    labels = load_volume(sample.labels).data.astype(np.uint16)
    out = save_labels(tmp_path / "labels.nii.gz", labels, like=vol)
    res = nib.load(out)
    for field in HEADER_FIELDS:
        assert np.array_equal(res.header[field], src.header[field]), field
    assert res.shape == src.shape
    # Voxel for voxel in the source's own on-disk grid.
    on_disk_ref = np.asanyarray(nib.load(sample.labels).dataobj)
    assert np.array_equal(np.asanyarray(res.dataobj), on_disk_ref)
    assert np.array_equal(load_volume(out).data, labels)


def test_lps_orientation_of_the_ct(tmp_path):
    """Anterior at small y, patient right at small x, superior at large z."""
    sample = get_sample("ct_abdomen")
    ref = load_volume(sample.labels).data
    liver, spleen = ref == sample.label_id("liver"), ref == sample.label_id("spleen")
    aorta, cord = ref == sample.label_id("aorta"), ref == sample.label_id("spinal_cord")
    assert np.nonzero(liver)[2].mean() < np.nonzero(spleen)[2].mean()  # right on the left
    assert np.nonzero(aorta)[1].mean() < np.nonzero(cord)[1].mean()  # anterior up
    lung = ref == sample.label_id("lung_lower_lobe_right")
    kidney = ref == sample.label_id("kidney_right")
    assert np.nonzero(lung)[0].mean() > np.nonzero(kidney)[0].mean()  # superior at large z


def test_tiff_sample_round_trip_keeps_voxel_size(tmp_path):
    sample = get_sample("nuclei")
    vol = load_volume(sample.image)
    assert vol.modality == "microscopy" and vol.unit == "um"
    assert vol.spacing == pytest.approx((0.2837, 0.1268, 0.1268), abs=1e-4)
    labels = load_volume(sample.labels).data.astype(np.uint16)
    out = save_labels(tmp_path / "labels.tif", labels, like=vol)
    back = load_volume(out)
    assert np.array_equal(back.data, labels)
    assert back.spacing == pytest.approx(vol.spacing, rel=1e-6)
    with tifffile.TiffFile(out) as tf:
        assert tf.series[0].shape == labels.shape
