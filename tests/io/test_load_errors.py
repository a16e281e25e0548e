"""Errors a user can meet reading and writing volumes: type and a key phrase of the message."""

from __future__ import annotations

import gzip
import warnings

import nibabel as nib
import numpy as np
import pytest
import tifffile

from slicesam.errors import SliceSamError, VolumeReadError, VolumeWriteError
from slicesam.intensity import apply_window, default_window
from slicesam.io import Volume, _common, load_volume, save_labels


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


# --------------------------------------------------------------------------- damaged files


@pytest.mark.parametrize("name", ["empty.nii", "empty.nii.gz", "empty.tif"])
def test_zero_byte_file(tmp_path, name) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(VolumeReadError, match=r"is empty \(0 bytes\).*re-export or re-copy"):
        load_volume(path)


def test_truncated_gzip_header(tmp_path) -> None:
    full = nifti(tmp_path / "full.nii.gz", np.zeros((4, 5, 6), np.int16))
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(full.read_bytes()[:40])
    with pytest.raises(VolumeReadError, match="gzip-compressed data is truncated or corrupt"):
        load_volume(path)


def test_random_bytes_nii(tmp_path) -> None:
    path = tmp_path / "noise.nii"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, np.uint8).tobytes())
    with pytest.raises(VolumeReadError, match="no valid NIfTI-1/NIfTI-2 header"):
        load_volume(path)


def _tiff_bytes(tmp_path) -> bytes:
    tifffile.imwrite(tmp_path / "real.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack")
    return (tmp_path / "real.tif").read_bytes()


def _nii_bytes(tmp_path) -> bytes:
    return nifti(tmp_path / "real.nii", np.zeros((4, 5, 6), np.int16)).read_bytes()


@pytest.mark.parametrize(
    ("name", "content", "phrase"),
    [
        ("scan.nii", _tiff_bytes, "its contents are a TIFF file: rename it to end in .tif"),
        ("scan.nii.gz", _tiff_bytes, "rename it to end in .tif"),
        ("scan.tif", _nii_bytes, r"uncompressed NIfTI \(not gzip\): rename it to end in .nii"),
        ("scan.nii.gz", _nii_bytes, r"uncompressed NIfTI \(not gzip\): rename it to end in .nii"),
        ("scan.nii", lambda t: gzip.compress(_nii_bytes(t)), "rename it to end in .nii.gz"),
        ("scan.nii", lambda t: b"\x89PNG\r\n\x1a\n" + bytes(100), "look like a PNG file"),
        ("scan.tif", lambda t: bytes(128) + b"DICM" + bytes(100), "look like a DICOM file"),
    ],
)
def test_contents_do_not_match_the_name(tmp_path, name, content, phrase) -> None:
    path = tmp_path / name
    path.write_bytes(content(tmp_path))
    with pytest.raises(VolumeReadError, match=phrase) as info:
        load_volume(path)
    assert name in str(info.value)


def test_unsupported_name_with_readable_content(tmp_path) -> None:
    path = tmp_path / "scan.img"
    path.write_bytes(_nii_bytes(tmp_path))
    with pytest.raises(VolumeReadError, match="unsupported file type '.img'.*rename it to end in"):
        load_volume(path)


def test_imagej_stack_saved_without_axes(tmp_path) -> None:
    """tifffile/ImageJ store a 3D array written without axes as channels (CYX)."""
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((7, 8, 9), np.uint16), imagej=True)
    with pytest.raises(VolumeReadError, match="has no Z axis.*7 planes along 'C'") as info:
        load_volume(path)
    assert "metadata={'axes': 'ZYX'}" in str(info.value)


def _write_header(tmp_path, name, **fields) -> object:
    img = nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.diag([2.0, 2.0, 2.0, 1.0]))
    for key, value in fields.items():
        img.header[key] = value
    path = tmp_path / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path.write_bytes(img.header.binaryblock + bytes(4) + np.asarray(img.dataobj).tobytes())
    return path


def test_nan_sform(tmp_path) -> None:
    path = _write_header(tmp_path, "nan.nii", srow_x=[np.nan, 0, 0, 0], sform_code=1)
    with pytest.raises(VolumeReadError, match=r"corrupt header.*sform \(code 1\).*NaN"):
        load_volume(path)


def test_zero_pixdim_without_codes_loads_with_unit_spacing(tmp_path) -> None:
    """nibabel repairs a zero pixdim (no qform/sform) to 1: the volume loads, spacing 1."""
    path = _write_header(
        tmp_path, "flat.nii", pixdim=[1, 0, 0, 0, 1, 1, 1, 1], qform_code=0, sform_code=0
    )
    vol = load_volume(path)
    assert vol.spacing == (1.0, 1.0, 1.0) and vol.meta["source_axcodes"] == "LAS"


def test_degenerate_sform(tmp_path) -> None:
    path = _write_header(
        tmp_path, "flat.nii", srow_x=[0, 0, 0, 0], srow_y=[0, 2, 0, 0], srow_z=[0, 0, 2, 0],
        sform_code=2,
    )  # fmt: skip
    with pytest.raises(VolumeReadError, match=r"degenerate .*sform \(code 2\).*zero length"):
        load_volume(path)


def test_unknown_unit_code_loads_as_mm(tmp_path) -> None:
    path = _write_header(tmp_path, "units.nii", xyzt_units=7)  # 7 is no NIfTI unit
    vol = load_volume(path)
    assert vol.unit == "mm" and vol.shape == (6, 5, 4)


# --------------------------------------------------------------------------- memory


def test_too_large_for_max_bytes(tmp_path) -> None:
    path = nifti(tmp_path / "big.nii.gz", np.zeros((20, 30, 40), np.int16))
    with pytest.raises(VolumeReadError, match="too large to load") as info:
        load_volume(path, max_bytes=10_000)
    msg = str(info.value)
    assert "one 20x30x40 volume of int16 needs about 93.8 KiB" in msg  # read + reoriented copy
    assert "9.8 KiB is allowed (max_bytes)" in msg
    assert load_volume(path, max_bytes=10**6).shape == (40, 30, 20)


def test_too_large_for_available_memory(tmp_path, monkeypatch) -> None:
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.zeros((10, 64, 64), np.uint16), metadata={"axes": "ZYX"})
    monkeypatch.setattr(_common, "available_memory", lambda: 50_000)
    with pytest.raises(
        VolumeReadError,
        match=r"one 10x64x64 volume of uint16 needs about 80.0 KiB.*48.8 KiB is available",
    ):
        load_volume(path)
    monkeypatch.setattr(_common, "available_memory", lambda: None)  # unknown: no check
    assert load_volume(path).shape == (10, 64, 64)


@pytest.mark.parametrize("bad", [0, -5, 1.5, "1GB", True])
def test_bad_max_bytes(tmp_path, bad) -> None:
    path = nifti(tmp_path / "ct.nii.gz", np.zeros((4, 5, 6), np.int16))
    with pytest.raises(VolumeReadError, match="max_bytes must be a positive integer"):
        load_volume(path, max_bytes=bad)


def test_one_channel_is_read_lazily(tmp_path) -> None:
    """Only the chosen channel has to fit: NIfTI array proxy, TIFF memory map."""
    one = 16 * 32 * 32 * 2  # bytes of one (z, y, x) int16/uint16 volume
    nii = nifti(tmp_path / "dwi.nii", np.ones((32, 32, 16, 8), np.int16))
    assert load_volume(nii, channel=5, max_bytes=3 * one).shape == (16, 32, 32)
    tif = tmp_path / "zcyx.tif"
    data = np.arange(16 * 8 * 32 * 32, dtype=np.uint16).reshape(16, 8, 32, 32)
    tifffile.imwrite(tif, data, imagej=True, metadata={"axes": "ZCYX"})
    vol = load_volume(tif, channel=5, max_bytes=3 * one)
    np.testing.assert_array_equal(vol.data, data[:, 5])
    assert vol.data.dtype.isnative
    packed = tmp_path / "zcyx_zlib.tif"
    tifffile.imwrite(packed, data, compression="zlib", metadata={"axes": "ZCYX"})
    with pytest.raises(VolumeReadError, match="compressed or tiled, so all 8 channels"):
        load_volume(packed, channel=5, max_bytes=3 * one)
    np.testing.assert_array_equal(load_volume(packed, channel=5).data, data[:, 5])


def test_big_endian_tiff_is_memory_mapped_correctly(tmp_path) -> None:
    path = tmp_path / "be.tif"
    data = np.arange(3 * 5 * 7, dtype=">u2").reshape(3, 5, 7)
    tifffile.imwrite(path, data, byteorder=">", photometric="minisblack", metadata={"axes": "ZYX"})
    vol = load_volume(path)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.data.dtype == np.uint16 and vol.data.dtype.isnative


def test_truncated_uncompressed_tiff_names_sizes(tmp_path) -> None:
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, np.ones((10, 64, 64), np.uint16), metadata={"axes": "ZYX"})
    path = tmp_path / "cut.tif"
    path.write_bytes(full.read_bytes()[:50_000])
    with pytest.raises(VolumeReadError, match=r"cut.tif.*truncated"):
        load_volume(path)


# --------------------------------------------------------------------------- odd but valid


@pytest.mark.parametrize(
    ("value", "dtype", "modality"),
    [(7, np.int16, None), (0, np.uint8, None), (-1024, np.int16, "CT"), (0.25, np.float32, None)],
)
def test_constant_volume_loads_and_segments(tmp_path, fake_model, value, dtype, modality) -> None:
    from slicesam.engine import Session

    path = nifti(tmp_path / "flat.nii.gz", np.full((16, 16, 4), value, dtype))
    vol = load_volume(path, modality=modality)
    lo, hi = default_window(vol.data, vol.modality)
    assert np.isfinite([lo, hi]).all() and lo < hi
    with pytest.warns(UserWarning, match="constant"):
        sess = Session(vol, model=fake_model)
    obj = sess.new_object("a")
    sess.add_box(obj, 1, (2, 2, 10, 10))
    sess.add_point(obj, 2, 5.0, 5.0, True)
    sess.propagate(obj)
    assert sess.labels.shape == vol.shape


def test_constant_volume_of_huge_values_has_a_window() -> None:
    data = np.full((4, 16, 16), 1e20, np.float32)
    lo, hi = default_window(data, "MR")
    assert lo < hi
    assert (apply_window(data[0], (lo, hi)) == 0).all()


def test_extreme_anisotropy_keeps_spacing(tmp_path) -> None:
    path = nifti(
        tmp_path / "thick.nii.gz", np.zeros((4, 5, 6), np.int16), np.diag([0.01, 0.01, 500, 1])
    )
    vol = load_volume(path)
    assert vol.spacing == pytest.approx((500.0, 0.01, 0.01), rel=1e-6)
    tif = tmp_path / "thick.tif"
    tifffile.imwrite(tif, np.zeros((3, 5, 6), np.uint8), imagej=True, resolution=(1e3, 1e3),
                     metadata={"axes": "ZYX", "spacing": 250.0, "unit": "um"})  # fmt: skip
    assert load_volume(tif).spacing == pytest.approx((250.0, 1e-3, 1e-3), rel=1e-6)


def test_inf_only_names_fill_nonfinite(tmp_path) -> None:
    data = np.ones((4, 5, 6), np.float32)
    data[1, 2, 3] = np.inf
    path = nifti(tmp_path / "inf.nii.gz", data)
    with pytest.raises(VolumeReadError, match=r"1 non-finite voxels \(0 NaN, 1 inf\)") as info:
        load_volume(path)
    assert "fill_nonfinite=" in str(info.value)
    assert np.isfinite(load_volume(path, fill_nonfinite=0).data).all()


# --------------------------------------------------------------------------- labels vs image grid


def test_labels_like_volume(tmp_path) -> None:
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    image = load_volume(nifti(tmp_path / "ct.nii.gz", np.zeros((4, 5, 6), np.int16), affine))
    good = nifti(tmp_path / "seg.nii.gz", np.zeros((4, 5, 6), np.uint8), affine)
    assert load_volume(good, like=image).shape == image.shape

    other_shape = nifti(tmp_path / "seg_shape.nii.gz", np.zeros((4, 5, 7), np.uint8), affine)
    with pytest.raises(
        VolumeReadError, match=r"has shape \(7, 5, 4\).*image \(ct.nii.gz\) has \(6, 5, 4\)"
    ):
        load_volume(other_shape, like=image)
    moved = affine.copy()
    moved[:3, 3] = (0, 0, 10)
    other_grid = nifti(tmp_path / "seg_moved.nii.gz", np.zeros((4, 5, 6), np.uint8), moved)
    with pytest.raises(VolumeReadError, match=r"different voxel-to-world affine \(up to 10 mm"):
        load_volume(other_grid, like=image)
    with pytest.raises(VolumeReadError, match="like= must be the image Volume"):
        load_volume(good, like=np.zeros((6, 5, 4)))


def test_tiff_labels_like_volume(tmp_path) -> None:
    def write(name, spacing):
        tifffile.imwrite(tmp_path / name, np.zeros((3, 8, 9), np.uint16), imagej=True,
                         resolution=(1 / spacing[2], 1 / spacing[1]),
                         metadata={"axes": "ZYX", "spacing": spacing[0], "unit": "um"})  # fmt: skip
        return tmp_path / name

    image = load_volume(write("img.tif", (2.0, 0.5, 0.5)))
    assert load_volume(write("ok.tif", (2.0, 0.5, 0.5)), like=image).shape == (3, 8, 9)
    with pytest.raises(
        VolumeReadError, match=r"voxel size \(1.0, 0.5, 0.5\) um.*\(2.0, 0.5, 0.5\)"
    ):
        load_volume(write("bad.tif", (1.0, 0.5, 0.5)), like=image)


def test_save_labels_refuses_other_grid_and_writes_nothing(tmp_path) -> None:
    vol = load_volume(nifti(tmp_path / "ct.nii.gz", np.zeros((4, 5, 6), np.int16)))
    target = tmp_path / "out" / "labels.nii.gz"
    with pytest.raises(VolumeWriteError, match="nothing was written to labels.nii.gz"):
        save_labels(target, np.zeros((6, 5, 3), np.uint8), like=vol)
    with pytest.raises(VolumeWriteError, match="like= must be the image Volume"):
        save_labels(target, np.zeros((6, 5, 4), np.uint8), like=vol.data)  # type: ignore[arg-type]
    assert not target.parent.exists()


def test_volume_is_a_volume(tmp_path) -> None:
    vol = load_volume(nifti(tmp_path / "ct.nii.gz", np.zeros((4, 5, 6), np.int16)))
    assert isinstance(vol, Volume)


# --------------------------------------------------------------------------- napari reader hook


def test_napari_reader_opens_channel_0_of_a_long_series(tmp_path) -> None:
    """More channels than MAX_CHANNELS: one layer (channel 0) and a warning saying how to
    pick another (no viewer needed: the hook returns layer data)."""
    from slicesam._napari.reader import MAX_CHANNELS, NOTE_KEY, VOLUME_KEY, get_reader

    n = MAX_CHANNELS + 4
    arr = np.stack([np.full((3, 4, 5), c, np.int16) for c in range(n)], axis=-1)
    path = tmp_path / "fmri.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
    with pytest.warns(
        UserWarning, match=f"{n} channels/time points along NIfTI dimension 4"
    ) as rec:
        layers = get_reader(str(path))(str(path))
    msg = str(rec[0].message)
    assert "opened channel 0 only" in msg and "channel=N" in msg and "--channel N" in msg
    [(data, kwargs, layer_type)] = layers
    assert layer_type == "image" and kwargs["name"] == f"fmri [c=0 of {n}]"
    assert data.shape == (5, 4, 3) and int(data.max()) == 0
    assert kwargs["metadata"][VOLUME_KEY].meta["channel"] == 0
    assert kwargs["metadata"][NOTE_KEY] == msg


def test_napari_reader_tiff_time_series(tmp_path) -> None:
    from slicesam._napari.reader import MAX_CHANNELS, get_reader

    n = MAX_CHANNELS + 1
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, np.zeros((n, 3, 6, 5), np.uint8), imagej=True, metadata={"axes": "TZYX"})
    with pytest.warns(UserWarning, match=r"along axis 'T', time; opened channel 0 only"):
        [(data, kwargs, _)] = get_reader(str(path))(str(path))
    assert data.shape == (3, 6, 5)
