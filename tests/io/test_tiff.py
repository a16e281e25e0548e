"""TIFF reading (axes, voxel size, units) and label round trips, also across formats."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import tifffile

from slicesam.io import TiffGeometry, load_volume, save_labels
from slicesam.io.tiff import normalize_unit

SPACING = (0.28, 0.127, 0.127)  # z, y, x in um


def write_imagej(path, data, spacing=SPACING, unit="um", axes="ZYX"):
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / spacing[2], 1 / spacing[1]),
        metadata={"spacing": spacing[0], "unit": unit, "axes": axes},
    )
    return path


def stack(shape=(5, 12, 10), dtype=np.uint16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1000, size=shape).astype(dtype)


def test_imagej_stack_reads_as_stored(tmp_path) -> None:
    data = stack()
    vol = load_volume(write_imagej(tmp_path / "img.tif", data))
    np.testing.assert_array_equal(vol.data, data)
    assert vol.data.dtype == np.uint16
    assert vol.spacing == pytest.approx(SPACING, rel=1e-9)
    assert vol.unit == "um"
    assert vol.modality == "microscopy"
    assert isinstance(vol.geometry, TiffGeometry)


@pytest.mark.parametrize("unit", ["micron", "\\u00B5m", "um"])
def test_micron_units_are_normalised(tmp_path, unit) -> None:
    vol = load_volume(write_imagej(tmp_path / "img.tif", stack(), unit=unit))
    assert vol.unit == "um"


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("µm", "um"),
        ("\u03bcm", "um"),
        ("Microns", "um"),
        ("pixel", "px"),
        (None, "px"),
        ("nm", "nm"),
    ],
)
def test_normalize_unit(unit, expected) -> None:
    assert normalize_unit(unit) == expected


def test_no_metadata_defaults_to_pixels(tmp_path) -> None:
    data = stack()
    path = tmp_path / "plain.tiff"
    tifffile.imwrite(path, data, metadata=None)  # plain multi-page file: axes 'IYX'
    vol = load_volume(path)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.spacing == (1.0, 1.0, 1.0)
    assert vol.unit == "px"


def test_ome_physical_size(tmp_path) -> None:
    path = tmp_path / "img.ome.tif"
    md = {"axes": "ZYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.3, "PhysicalSizeZ": 1.5}
    tifffile.imwrite(path, stack(), ome=True, metadata=md)
    vol = load_volume(path)
    assert vol.spacing == (1.5, 0.3, 0.2)
    assert vol.unit == "um"


@pytest.mark.parametrize(("dtype", "imagej"), [(np.uint16, True), (np.uint32, False)])
def test_label_round_trip_with_voxel_size(tmp_path, dtype, imagej) -> None:
    vol = load_volume(write_imagej(tmp_path / "img.tif", stack()))
    labels = np.zeros(vol.shape, dtype)
    labels[vol.data > 500] = 7
    labels[0, 0, 0] = np.iinfo(dtype).max
    out = save_labels(tmp_path / "labels.tif", labels, like=vol)
    with tifffile.TiffFile(out) as tf:
        assert tf.is_imagej == imagej
        assert tf.series[0].axes == "ZYX"
    back = load_volume(out)
    np.testing.assert_array_equal(back.data, labels)
    assert back.data.dtype == dtype
    assert back.spacing == pytest.approx(vol.spacing, rel=1e-9)
    assert back.unit == "um"


def test_one_slice_stack_round_trip(tmp_path) -> None:
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, stack((1, 8, 9)), metadata={"axes": "ZYX", "spacing": 2.0})
    vol = load_volume(path)
    assert vol.shape == (1, 8, 9)
    labels = (vol.data > 500).astype(np.uint16)
    back = load_volume(save_labels(tmp_path / "l.tif", labels, like=vol))
    np.testing.assert_array_equal(back.data, labels)
    assert back.spacing == vol.spacing


def test_channel_axis(tmp_path) -> None:
    data = np.stack([stack(seed=c) for c in range(3)], axis=1)  # ZCYX
    path = write_imagej(tmp_path / "multi.tif", data, axes="ZCYX")
    vol = load_volume(path, channel=1)
    np.testing.assert_array_equal(vol.data, data[:, 1])
    assert vol.spacing == pytest.approx(SPACING, rel=1e-9)
    assert vol.meta["channel"] == 1


def test_rgb_stack_with_channel(tmp_path) -> None:
    data = stack((4, 6, 7, 3), np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, data, photometric="rgb")
    np.testing.assert_array_equal(load_volume(path, channel=2).data, data[..., 2])


def test_nifti_labels_written_as_tiff_and_back(tmp_path) -> None:
    src = tmp_path / "img.nii.gz"
    nib.save(nib.Nifti1Image(stack((6, 5, 4), np.int16), np.diag([2.0, 3.0, 4.0, 1.0])), src)
    vol = load_volume(src)
    labels = (vol.data > 500).astype(np.uint16)
    back = load_volume(save_labels(tmp_path / "l.tif", labels, like=vol))
    np.testing.assert_array_equal(back.data, labels)
    assert back.spacing == pytest.approx(vol.spacing, rel=1e-9)
    assert back.unit == "mm"


def test_tiff_labels_written_as_nifti_and_back(tmp_path) -> None:
    vol = load_volume(write_imagej(tmp_path / "img.tif", stack()))
    labels = (vol.data > 500).astype(np.uint16)
    out = save_labels(tmp_path / "l.nii.gz", labels, like=vol)
    img = nib.load(str(out))
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
    back = load_volume(out)
    np.testing.assert_array_equal(back.data, labels)
    assert back.spacing == pytest.approx(vol.spacing, rel=1e-6)
    assert back.unit == "um"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32])
def test_labels_with_three_columns_are_not_rgb(tmp_path, dtype) -> None:
    path = tmp_path / "img.tif"
    tifffile.imwrite(path, stack((4, 5, 3)), photometric="minisblack", metadata={"axes": "ZYX"})
    vol = load_volume(path)
    assert vol.shape == (4, 5, 3)
    labels = (vol.data > 500).astype(dtype)
    out = save_labels(tmp_path / "l.tif", labels, like=vol)
    with tifffile.TiffFile(out) as tf:
        assert len(tf.pages) == 4
        assert tf.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
    np.testing.assert_array_equal(load_volume(out).data, labels)


# --------------------------------------------------------------------------- calibration matrix

#: (z, y, x) voxel size and the unit string as the source stores it.
CALIBRATIONS = {
    "um": ((0.28, 0.127, 0.127), "um"),
    "micron_anisotropic": ((5.0, 0.1, 0.3), "micron"),
    "imagej_mu_escape": ((2.0, 0.0123456789, 0.33333333), "\\u00B5m"),
    "nm": ((250.0, 40.0, 40.0), "nm"),
    "mm": ((0.5, 0.2, 0.2), "mm"),
    "uncalibrated": ((1.0, 1.0, 1.0), None),
}
#: Source voxels (z, y, x) marked with label values 1, 2, 3.
TIFF_MARKERS = ((3, 1, 2), (0, 0, 0), (4, 11, 9))


def tags(path):
    """The calibration a reader sees: resolution tags, ResolutionUnit, z spacing, unit text."""
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        if tf.is_imagej:
            md = tf.imagej_metadata or {}
        else:
            md = tf.shaped_metadata[0] if tf.shaped_metadata else {}
        return {
            "x": page.tags["XResolution"].value,
            "y": page.tags["YResolution"].value,
            "resolution_unit": int(page.tags["ResolutionUnit"].value),
            "spacing": md.get("spacing"),
            "unit": md.get("unit"),
        }


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
@pytest.mark.parametrize("case", sorted(CALIBRATIONS))
def test_calibration_round_trip_exact(tmp_path, case, dtype) -> None:
    spacing, unit = CALIBRATIONS[case]
    metadata = {"axes": "ZYX", "spacing": spacing[0]}
    if unit is not None:
        metadata["unit"] = unit
    src = tmp_path / "img.tif"
    tifffile.imwrite(
        src, stack(), imagej=True, resolution=(1 / spacing[2], 1 / spacing[1]), metadata=metadata
    )
    vol = load_volume(src)
    assert vol.spacing == pytest.approx(spacing, rel=1e-7)
    labels = np.zeros(vol.shape, dtype)
    for value, zyx in enumerate(TIFF_MARKERS, start=1):
        labels[zyx] = value
    out = save_labels(tmp_path / "labels.tif", labels, like=vol)

    got, ref = tags(out), tags(src)
    assert got["x"] == ref["x"] and got["y"] == ref["y"]  # rationals, bit for bit
    assert got["resolution_unit"] == int(tifffile.RESUNIT.NONE)  # not the TIFF default inch
    assert got["spacing"] == ref["spacing"]
    assert got["unit"] == (
        ref["unit"] if unit is not None else ("px" if dtype == np.uint32 else None)
    )
    stored = tifffile.imread(out)
    assert stored.shape == labels.shape and stored.dtype == dtype
    for value, zyx in enumerate(TIFF_MARKERS, start=1):
        assert [tuple(int(i) for i in v) for v in np.argwhere(stored == value)] == [zyx]
    back = load_volume(out)
    assert back.spacing == vol.spacing and back.unit == vol.unit


def test_ome_calibration_round_trip(tmp_path) -> None:
    path = tmp_path / "img.ome.tif"
    md = {"axes": "ZYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.3, "PhysicalSizeZ": 1.5}
    tifffile.imwrite(path, stack(), ome=True, metadata=md)
    vol = load_volume(path)
    labels = np.zeros(vol.shape, np.uint16)
    labels[TIFF_MARKERS[0]] = 5
    back = load_volume(save_labels(tmp_path / "l.tif", labels, like=vol))
    assert back.spacing == vol.spacing == (1.5, 0.3, 0.2)
    assert back.unit == "um"
    assert np.argwhere(back.data == 5).tolist() == [list(TIFF_MARKERS[0])]


def test_non_ascii_unit_is_written_normalised(tmp_path) -> None:
    """A source unit TIFF cannot store as ASCII ("µm" from OME) is written as "um"."""
    vol = load_volume(write_imagej(tmp_path / "img.tif", stack()))
    vol.geometry.unit_text = "µm"
    out = save_labels(tmp_path / "l.tif", np.zeros(vol.shape, np.uint16), like=vol)
    assert tags(out)["unit"] == "um"
    assert load_volume(out).unit == "um"
