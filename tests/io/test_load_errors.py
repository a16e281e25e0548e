"""Errors a user can meet reading and writing volumes: type and a key phrase of the message."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import tifffile

from slicesam.errors import SliceSamError, VolumeReadError, VolumeWriteError
from slicesam.io import load_volume, save_labels


def nifti(path, data, affine=None):
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def test_errors_are_slicesam_errors() -> None:
    assert issubclass(VolumeReadError, SliceSamError)
    assert issubclass(VolumeWriteError, SliceSamError)


def test_missing_file(tmp_path) -> None:
    path = tmp_path / "nope.nii.gz"
    with pytest.raises(VolumeReadError, match="no such file") as info:
        load_volume(path)
    assert str(path) in str(info.value)


def test_directory(tmp_path) -> None:
    with pytest.raises(VolumeReadError, match="is a directory"):
        load_volume(tmp_path)


@pytest.mark.parametrize("name", ["scan.png", "scan.nrrd", "scan"])
def test_unsupported_extension(tmp_path, name) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x89PNG....")
    with pytest.raises(VolumeReadError, match="unsupported file type") as info:
        load_volume(path)
    assert ".nii.gz" in str(info.value) and ".tif" in str(info.value)


@pytest.mark.parametrize("name", ["bad.nii.gz", "bad.nii", "bad.tif", "bad.tiff"])
def test_garbage_bytes(tmp_path, name) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not an image\x00\x01" * 50)
    with pytest.raises(VolumeReadError, match="could not read") as info:
        load_volume(path)
    assert name in str(info.value)


@pytest.mark.parametrize("name", ["cut.nii.gz", "cut.nii"])
def test_truncated_nifti_fails_at_load(tmp_path, name) -> None:
    data = np.random.default_rng(0).integers(0, 1000, (40, 50, 30)).astype(np.int16)
    full = nifti(tmp_path / f"full_{name}", data)
    blob = full.read_bytes()
    path = tmp_path / name
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(VolumeReadError, match="truncated or corrupt") as info:
        load_volume(path)
    assert name in str(info.value)


def test_truncated_tiff(tmp_path) -> None:
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, np.ones((10, 64, 64), np.uint16), imagej=True)
    blob = full.read_bytes()
    path = tmp_path / "cut.tif"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(VolumeReadError, match="cut.tif"):
        load_volume(path)


def test_2d_nifti(tmp_path) -> None:
    path = nifti(tmp_path / "plane.nii.gz", np.zeros((64, 48), np.int16))
    with pytest.raises(VolumeReadError, match=r"is a 2D image \(shape \(64, 48\)\)") as info:
        load_volume(path)
    assert "needs a 3D volume (z, y, x)" in str(info.value)


@pytest.mark.parametrize(
    ("data", "kwargs"),
    [
        (np.zeros((64, 48), np.uint16), {}),
        (np.zeros((64, 48, 3), np.uint8), {"photometric": "rgb"}),
        (np.zeros((1, 64, 48), np.uint16), {"imagej": True}),
    ],
)
def test_2d_tiff(tmp_path, data, kwargs) -> None:
    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, data, **kwargs)
    with pytest.raises(VolumeReadError, match=r"is a 2D image \(shape \(64, 48\)\)"):
        load_volume(path)


def test_4d_nifti_needs_channel(tmp_path) -> None:
    path = nifti(tmp_path / "dwi.nii.gz", np.zeros((4, 5, 6, 3), np.int16))
    with pytest.raises(VolumeReadError, match="has 3 channels") as info:
        load_volume(path)
    msg = str(info.value)
    assert "channel=0, 1 or 2" in msg and "--channel" in msg
    with pytest.raises(VolumeReadError, match="out of range"):
        load_volume(path, channel=3)
    assert load_volume(path, channel=2).shape == (6, 5, 4)


def test_5d_nifti_two_extra_dimensions(tmp_path) -> None:
    path = nifti(tmp_path / "x.nii.gz", np.zeros((4, 5, 6, 2, 3), np.int16))
    with pytest.raises(VolumeReadError, match="more than one non-spatial dimension"):
        load_volume(path, channel=0)


def test_channel_on_3d_file(tmp_path) -> None:
    path = nifti(tmp_path / "ct.nii.gz", np.zeros((4, 5, 6), np.int16))
    assert load_volume(path, channel=0).shape == (6, 5, 4)
    with pytest.raises(VolumeReadError, match="single channel"):
        load_volume(path, channel=1)
    with pytest.raises(VolumeReadError, match="non-negative integer"):
        load_volume(path, channel=-1)


def test_rgb_tiff_needs_channel(tmp_path) -> None:
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((4, 16, 16, 3), np.uint8), photometric="rgb")
    with pytest.raises(VolumeReadError, match=r"has 3 channels \(axis 'S'") as info:
        load_volume(path)
    assert "channel=0, 1 or 2" in str(info.value)


def test_4d_tiff_without_axes_needs_channel(tmp_path) -> None:
    path = tmp_path / "four.tif"
    tifffile.imwrite(path, np.zeros((2, 5, 16, 16), np.uint16))
    with pytest.raises(VolumeReadError, match="pass channel=0 or 1"):
        load_volume(path)
    assert load_volume(path, channel=1).shape == (5, 16, 16)


def test_two_channel_axes_tiff(tmp_path) -> None:
    path = tmp_path / "tczyx.tif"
    data = np.zeros((2, 3, 2, 8, 8), np.uint16)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    with pytest.raises(VolumeReadError, match="more than one non-spatial axis"):
        load_volume(path, channel=0)


def test_nan_volume(tmp_path) -> None:
    data = np.zeros((4, 5, 6), np.float32)
    data[0, 0, :3] = np.nan
    data[1, 1, 1] = -np.inf
    path = nifti(tmp_path / "nan.nii.gz", data)
    with pytest.raises(VolumeReadError, match="4 non-finite voxels") as info:
        load_volume(path)
    assert "fill_nonfinite=" in str(info.value)
    with pytest.raises(VolumeReadError, match="fill_nonfinite must be a finite number"):
        load_volume(path, fill_nonfinite=float("nan"))


def test_unknown_modality(tmp_path) -> None:
    path = nifti(tmp_path / "ct.nii.gz", np.zeros((4, 5, 6), np.int16))
    with pytest.raises(VolumeReadError, match="unknown modality 'PET'"):
        load_volume(path, modality="PET")


def test_shape_mismatch_on_save(tmp_path) -> None:
    vol = load_volume(nifti(tmp_path / "ct.nii.gz", np.zeros((4, 5, 6), np.int16)))
    with pytest.raises(VolumeWriteError, match=r"\(6, 5, 5\).*\(6, 5, 4\)"):
        save_labels(tmp_path / "l.nii.gz", np.zeros((6, 5, 5), np.uint8), like=vol)
    with pytest.raises(VolumeWriteError, match="does not match"):
        save_labels(tmp_path / "l.tif", np.zeros((4, 5, 6), np.uint8), like=vol)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]


def test_unsupported_extension_on_save(tmp_path) -> None:
    vol = load_volume(nifti(tmp_path / "ct.nii.gz", np.zeros((4, 5, 6), np.int16)))
    with pytest.raises(VolumeWriteError, match="cannot write labels as '.png'"):
        save_labels(tmp_path / "l.png", np.zeros(vol.shape, np.uint8), like=vol)
