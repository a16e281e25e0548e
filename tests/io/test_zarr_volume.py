"""zarr / OME-Zarr volumes, and lazy TIFF / NIfTI: what ``load_volume`` gives, and its errors."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import tifffile
import zarr
from zarr_factory import blobs, ome_zarr, plain_zarr

from slicesam.errors import VolumeReadError
from slicesam.io import lazy, load_volume
from slicesam.io.lazy import LazyArray, layer_data, slice_sample
from slicesam.io.zarr_volume import ZarrGeometry


@pytest.fixture
def data() -> np.ndarray:
    return blobs((6, 10, 12))


def test_plain_zarr_is_zyx_in_pixels_and_lazy(tmp_path, data) -> None:
    vol = load_volume(plain_zarr(tmp_path / "stack.zarr", data))
    assert isinstance(vol.data, LazyArray)
    assert vol.shape == (6, 10, 12) and vol.data.dtype == np.uint16
    assert vol.spacing == (1.0, 1.0, 1.0) and vol.unit == "px"
    assert vol.modality == "microscopy" and vol.meta["format"] == "zarr"
    assert np.array_equal(vol.data[3], data[3])
    assert np.array_equal(np.asarray(vol.data), data)
    assert np.array_equal(vol.data[1:5:2, ::-1, 3], data[1:5:2, ::-1, 3])


def test_a_store_without_the_suffix_is_recognised(tmp_path, data) -> None:
    vol = load_volume(plain_zarr(tmp_path / "stack", data))
    assert vol.meta["format"] == "zarr"


def test_ome_zarr_04_axes_scale_unit_and_channel(tmp_path, data) -> None:
    two = np.stack([data, data + 7])  # (c, z, y, x)
    path = ome_zarr(tmp_path / "img.ome.zarr", two, "czyx", (1.0, 2.5, 0.5, 0.25), levels=2)
    with pytest.raises(VolumeReadError, match=r"2 channels \(axis 'c', channel\); pass channel="):
        load_volume(path)
    vol = load_volume(path, channel=1)
    assert vol.shape == data.shape  # level 0, never a lower resolution
    assert vol.spacing == (2.5, 0.5, 0.25) and vol.unit == "um"
    assert np.array_equal(vol.data[2], data[2] + 7)
    assert vol.meta["channel"] == 1 and vol.meta["n_channels"] == 2
    g = vol.geometry
    assert isinstance(g, ZarrGeometry) and g.axes == ("c", "z", "y", "x") and g.zarr_format == 2
    assert g.ngff_version == "0.4" and g.zyx_axes == (1, 2, 3)


def test_ome_zarr_05_in_zarr_v3_with_a_multiscale_scale(tmp_path, data) -> None:
    path = ome_zarr(
        tmp_path / "img.zarr",
        data[None],
        "tzyx",
        (1.0, 2.0, 0.5, 0.5),
        unit="millimeter",
        version="0.5",
        outer_scale=(1.0, 1.5, 1.0, 2.0),
        translation=(0.0, 10.0, 0.0, 0.0),
    )
    vol = load_volume(path)  # a time axis of size 1 is dropped
    assert vol.spacing == (3.0, 0.5, 1.0) and vol.unit == "mm"
    assert vol.geometry.zarr_format == 3 and vol.geometry.translation == (0.0, 10.0, 0.0, 0.0)
    assert np.array_equal(np.asarray(vol.data), data)


def test_bioformats2raw_layout_is_followed(tmp_path, data) -> None:
    root = zarr.open_group(str(tmp_path / "b2r.zarr"), mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    ome_zarr(tmp_path / "b2r.zarr" / "0", data, "zyx", (1.0, 0.3, 0.3))
    vol = load_volume(tmp_path / "b2r.zarr")
    assert vol.spacing == (1.0, 0.3, 0.3) and vol.geometry.image_path == "0"


def test_lazy_volume_is_shown_by_napari_through_dask(tmp_path, data) -> None:
    vol = load_volume(plain_zarr(tmp_path / "s.zarr", data))
    shown = layer_data(vol.data)
    assert type(shown).__module__.startswith("dask")
    assert shown.chunksize == (1, 10, 12)
    assert np.array_equal(shown[4].compute(), data[4])
    eager = np.zeros(3)
    assert layer_data(eager) is eager


def test_the_sample_is_spread_and_bounded(monkeypatch) -> None:
    assert lazy.sample_indices(40, 100) == sorted(lazy.sample_indices(40, 100))
    picked = lazy.sample_indices(40, 100)
    assert picked[0] == 0 and picked[-1] == 39 and len(picked) == lazy.SAMPLE_SLICES
    assert len(lazy.sample_indices(512, 2048 * 2048)) == 8  # 32 Mi voxels
    assert lazy.sample_indices(2, 10**9) == [0, 1]
    arr = np.arange(24).reshape(2, 3, 4)
    assert slice_sample(arr) is arr  # in memory: every voxel, unchanged


# -- lazy TIFF and NIfTI --------------------------------------------------------------------------


def test_lazy_tiff_equals_eager(tmp_path, data) -> None:
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(2.0, 2.0), metadata={"axes": "ZYX"})
    eager, lazy_vol = load_volume(path), load_volume(path, lazy=True)
    assert isinstance(eager.data, np.ndarray) and isinstance(lazy_vol.data, LazyArray)
    assert np.array_equal(np.asarray(lazy_vol.data), eager.data)
    assert np.array_equal(lazy_vol.data[::-2, 3:7, 5], eager.data[::-2, 3:7, 5])
    assert (lazy_vol.spacing, lazy_vol.unit, lazy_vol.modality) == (
        eager.spacing,
        eager.unit,
        eager.modality,
    )


def test_lazy_tiff_channel_and_big_endian(tmp_path, data) -> None:
    stack = np.stack([data, data * 2], axis=1).astype(">u2")  # (z, c, y, x)
    path = tmp_path / "c.tif"
    tifffile.imwrite(path, stack, metadata={"axes": "ZCYX"})
    eager = load_volume(path, channel=1)
    lazy_vol = load_volume(path, channel=1, lazy=True)
    assert lazy_vol.data.dtype == np.dtype("uint16") and lazy_vol.data.dtype.isnative
    assert np.array_equal(np.asarray(lazy_vol.data), eager.data)


@pytest.mark.parametrize(
    "affine",
    [
        np.diag([1.0, 1.0, 2.0, 1.0]),  # RAS: x and y flip to LPS
        np.array([[0, 0, -2.0, 0], [1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1]]),  # permuted
    ],
)
def test_lazy_nifti_equals_eager(tmp_path, write_nifti, affine) -> None:
    raw = blobs((9, 8, 7)).astype(np.int16) - 1000
    path = write_nifti(raw, affine, name="v.nii")
    eager, lazy_vol = load_volume(path), load_volume(path, lazy=True)
    assert isinstance(lazy_vol.data, LazyArray)
    assert lazy_vol.shape == eager.shape and lazy_vol.spacing == eager.spacing
    assert np.array_equal(np.asarray(lazy_vol.data), eager.data)
    for key in [(2,), (slice(None, None, -1), 1), (slice(1, 6, 2), slice(None), slice(2, 5))]:
        assert np.array_equal(lazy_vol.data[key], eager.data[key]), key
    assert lazy_vol.modality == eager.modality == "CT"


def test_lazy_scaled_nifti_gz_gives_float32(tmp_path, write_nifti) -> None:
    raw = blobs((5, 6, 7)).astype(np.int16)
    path = write_nifti(raw, np.eye(4), name="s.nii.gz", slope=0.5, inter=-3.0)
    eager, lazy_vol = load_volume(path), load_volume(path, lazy=True)
    assert eager.data.dtype == lazy_vol.data.dtype == np.float32
    assert np.array_equal(np.asarray(lazy_vol.data), eager.data)


def test_lazy_4d_nifti_takes_the_channel(tmp_path, write_nifti) -> None:
    raw = np.stack([blobs((5, 6, 7), seed=s) for s in range(3)], axis=-1)
    path = write_nifti(raw, np.eye(4), name="four.nii")
    eager = load_volume(path, channel=2)
    assert np.array_equal(np.asarray(load_volume(path, channel=2, lazy=True).data), eager.data)


def test_lazy_float_nifti_checks_nonfinite_per_slice(tmp_path, write_nifti) -> None:
    raw = blobs((4, 5, 6)).astype(np.float32)
    raw[1, 2, 3] = np.nan
    path = write_nifti(raw, np.eye(4), name="nan.nii")
    vol = load_volume(path, lazy=True, modality="MR")
    eager = load_volume(path, fill_nonfinite=-12345, modality="MR").data
    z_nan = int(np.flatnonzero((eager == -12345).any(axis=(1, 2)))[0])
    assert vol.data[(z_nan + 1) % vol.shape[0]].shape == vol.shape[1:]
    with pytest.raises(VolumeReadError, match="non-finite voxels .* fill_nonfinite"):
        vol.data[z_nan]
    filled = load_volume(path, lazy=True, modality="MR", fill_nonfinite=-1)
    assert np.isfinite(filled.data[z_nan]).all() and (filled.data[z_nan] == -1).sum() == 1


def test_big_files_are_lazy_by_default(tmp_path, data, monkeypatch) -> None:
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZYX"})
    assert isinstance(load_volume(path).data, np.ndarray)
    monkeypatch.setattr(lazy, "LAZY_BYTES", data.nbytes - 1)
    assert isinstance(load_volume(path).data, LazyArray)
    assert isinstance(load_volume(path, lazy=False).data, np.ndarray)


def test_lazy_truncated_files_fail_at_load(tmp_path, write_nifti, data) -> None:
    full = write_nifti(data.astype(np.int16), np.eye(4), name="full.nii")
    cut = tmp_path / "cut.nii"
    cut.write_bytes(full.read_bytes()[:-200])
    with pytest.raises(VolumeReadError, match="truncated"):
        load_volume(cut, lazy=True)
    tif = tmp_path / "full.tif"
    tifffile.imwrite(tif, data, imagej=True, metadata={"axes": "ZYX"})
    (tmp_path / "cut.tif").write_bytes(tif.read_bytes()[: tif.stat().st_size // 2])
    with pytest.raises(VolumeReadError, match="truncated"):
        load_volume(tmp_path / "cut.tif", lazy=True)


# -- errors ----------------------------------------------------------------------------------------


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(
    ("shape", "phrase"),
    [((4, 6, 7, 8), "has 4 dimension"), ((6, 7), "2D image"), ((6,), "has 1 dimension")],
)
def test_plain_zarr_must_be_3d(tmp_path, shape, phrase) -> None:
    path = plain_zarr(tmp_path / "bad.zarr", np.zeros(shape, np.uint8))
    with pytest.raises(VolumeReadError, match=phrase) as err:
        load_volume(path)
    assert "bad.zarr" in _one_line(err)


def test_group_without_ome_metadata_names_its_arrays(tmp_path, data) -> None:
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("raw", shape=data.shape, dtype=data.dtype)
    with pytest.raises(VolumeReadError, match="without OME-Zarr 'multiscales'.*'raw'") as err:
        load_volume(tmp_path / "g.zarr")
    assert "load_volume(" in _one_line(err)


def test_corrupt_metadata(tmp_path, data) -> None:
    path = plain_zarr(tmp_path / "c.zarr", data)
    (path / "zarr.json").write_text("{not json")
    with pytest.raises(VolumeReadError, match="metadata are corrupt") as err:
        load_volume(path)
    _one_line(err)


def test_a_damaged_chunk_fails_when_its_slice_is_read(tmp_path, data) -> None:
    path = plain_zarr(tmp_path / "d.zarr", data)
    (path / "c" / "2" / "0" / "0").write_bytes(b"garbage")
    vol = load_volume(path)
    assert np.array_equal(vol.data[1], data[1])
    with pytest.raises(VolumeReadError, match="slice z=2 of .*d.zarr.*damaged") as err:
        vol.data[2]
    _one_line(err)


def test_a_folder_named_zarr_without_zarr_metadata(tmp_path) -> None:
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(VolumeReadError, match="is not a zarr store"):
        load_volume(tmp_path / "empty.zarr")


def test_2d_ome_zarr_and_several_channel_axes(tmp_path, data) -> None:
    flat = ome_zarr(tmp_path / "flat.ome.zarr", data[0][None], "cyx")
    with pytest.raises(VolumeReadError, match="2D OME-Zarr image"):
        load_volume(flat)
    many = ome_zarr(tmp_path / "tc.ome.zarr", np.stack([np.stack([data] * 2)] * 3), "tczyx")
    with pytest.raises(VolumeReadError, match=r"more than one non-space axis.*'t' \(3\)"):
        load_volume(many, channel=0)


def test_malformed_scale_and_missing_axes(tmp_path, data) -> None:
    path = ome_zarr(tmp_path / "s.ome.zarr", data, "zyx")
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] = [1, 0]
    (path / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(VolumeReadError, match="scale .* one value per dimension"):
        load_volume(path)
    del attrs["multiscales"][0]["axes"]
    attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] = [1, 1, 1]
    (path / ".zattrs").write_text(json.dumps(attrs))
    assert load_volume(path).shape == data.shape  # 3D without axes: z, y, x
    arr = ome_zarr(tmp_path / "four.ome.zarr", data[None], "czyx")
    attrs = json.loads((arr / ".zattrs").read_text())
    del attrs["multiscales"][0]["axes"]
    (arr / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(VolumeReadError, match="no 'axes'"):
        load_volume(arr)


def test_a_zarr_file_that_is_not_a_folder(tmp_path) -> None:
    (tmp_path / "x.zarr").write_bytes(b"PK\x03\x04")
    with pytest.raises(VolumeReadError, match="a zarr store is a folder"):
        load_volume(tmp_path / "x.zarr")


def test_nibabel_reads_what_the_lazy_proxy_reads(tmp_path) -> None:
    """The lazy NIfTI path reads through the array proxy: nibabel stays the reference."""
    raw = blobs((4, 5, 6)).astype(np.uint16)
    path = tmp_path / "r.nii"
    nib.save(nib.Nifti1Image(raw, np.diag([-1.0, -1.0, 1.0, 1.0])), str(path))  # LPS already
    vol = load_volume(path, lazy=True)
    assert np.array_equal(np.asarray(vol.data), raw.transpose(2, 1, 0))
