"""``slicesam info``: a label volume says so (not ``modality='MR'``); spacing is rounded."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from slicesam.cli import main
from slicesam.io import load_volume
from slicesam.io.modality import label_ids
from slicesam.samples import SAMPLES, get_sample


def info(capsys, path) -> str:
    assert main(["info", str(path)]) == 0
    return capsys.readouterr().out


def test_info_on_a_label_file_reports_labels(capsys):
    out = info(capsys, get_sample("ct_abdomen").labels)
    assert "labels: 41 objects (ids 1-11, 13-14, 18-20," in out
    assert "modality" not in out.replace("no modality", "") and "'MR'" not in out
    assert "default window" not in out
    assert "spacing (z, y, x) = 3, 3, 3 mm" in out


def test_info_on_an_image_reports_modality_and_window(capsys):
    out = info(capsys, get_sample("ct_abdomen").image)
    assert "shape (z, y, x) = (30, 101, 122), int16" in out
    assert "modality: CT" in out and "default window: -160 .. 240" in out
    assert "labels:" not in out
    out = info(capsys, get_sample("nuclei").image)
    assert "spacing (z, y, x) = 0.284, 0.127, 0.127 um" in out and "labels:" not in out


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_no_sample_image_is_called_labels_and_every_label_file_is(key):
    sample = get_sample(key)
    assert label_ids(load_volume(sample.image).data) is None
    ids = label_ids(load_volume(sample.labels).data)
    assert ids and 0 not in ids


def test_label_rule_on_synthetic_volumes():
    labels = np.zeros((6, 20, 20), np.uint16)
    labels[1:4, 2:8, 2:8] = 1
    labels[2:5, 10:18, 3:9] = 7
    assert label_ids(labels) == [1, 7]
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 200, size=(6, 20, 20)).astype(np.uint8)  # 0 present, < 500 values
    assert label_ids(noisy) is None
    assert label_ids(labels.astype(np.float32)) is None  # not an integer dtype
    assert label_ids(labels.astype(np.int16) - 1000) is None  # CT-like: negative values
    assert label_ids(labels + 5) is None  # no background 0
    many = np.arange(600, dtype=np.uint16).reshape(6, 10, 10).repeat(2, axis=2)
    assert label_ids(many) is None  # too many distinct values
    assert label_ids(np.zeros((2, 3, 3), np.uint8)) == []


def test_info_rounds_spacing_and_labels_a_synthetic_file(tmp_path, capsys):
    data = np.zeros((12, 10, 5), np.uint8)
    data[2:6, 2:6, 1:3] = 3
    path = tmp_path / "seg.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([0.7421875, 0.7421875, 2.99999, 1.0])), path)
    out = info(capsys, path)
    assert "spacing (z, y, x) = 3, 0.742, 0.742 mm" in out
    assert "labels: 1 object (ids 3), background 0" in out
