"""NIfTI reading (canonical LPS orientation, spacing, scaling) and label round trips."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from slicesam.errors import VolumeWriteError
from slicesam.io import NiftiGeometry, load_volume, save_labels


def rotation(deg_x: float, deg_z: float) -> np.ndarray:
    """3x3 rotation: ``deg_x`` degrees about x, then ``deg_z`` degrees about z."""
    ax, az = np.deg2rad(deg_x), np.deg2rad(deg_z)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ rx


def make_affine(zooms=(1.0, 1.0, 1.0), rot=None, offset=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 affine: ``rot @ diag(zooms)`` plus ``offset``."""
    aff = np.eye(4)
    r = np.eye(3) if rot is None else np.asarray(rot, dtype=float)
    aff[:3, :3] = r @ np.diag(zooms)
    aff[:3, 3] = offset
    return aff


GEOMETRY_FIELDS = (
    "pixdim",
    "qform_code",
    "sform_code",
    "quatern_b",
    "quatern_c",
    "quatern_d",
    "qoffset_x",
    "qoffset_y",
    "qoffset_z",
    "srow_x",
    "srow_y",
    "srow_z",
    "xyzt_units",
    "dim",
)


def raw_header(path: Path) -> nib.Nifti1Header:
    """The header exactly as stored on disk (nibabel's loaded image header hides scl_*)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        head = fh.read(540)
    klass = nib.Nifti2Header if int.from_bytes(head[:4], "little") == 540 else nib.Nifti1Header
    return klass(head[: klass.template_dtype.itemsize], check=False)


def assert_same_geometry(src: Path, out: Path) -> None:
    a, b = nib.load(str(src)), nib.load(str(out))
    assert type(a) is type(b)
    qa, qca = a.header.get_qform(coded=True)
    qb, qcb = b.header.get_qform(coded=True)
    assert qca == qcb
    assert (qa is None and qb is None) or np.array_equal(qa, qb)
    sa, sca = a.header.get_sform(coded=True)
    sb, scb = b.header.get_sform(coded=True)
    assert sca == scb
    assert (sa is None and sb is None) or np.array_equal(sa, sb)
    assert np.array_equal(a.affine, b.affine)
    ha, hb = raw_header(src), raw_header(out)
    for field in GEOMETRY_FIELDS:
        assert ha[field].tobytes() == hb[field].tobytes(), field


def volume_data(shape=(7, 6, 5), seed=0) -> np.ndarray:
    """int16 test data with CT-like range, shape (i, j, k) on disk."""
    rng = np.random.default_rng(seed)
    return rng.integers(-1024, 2000, size=shape).astype(np.int16)


OBLIQUE = make_affine((0.8, 0.9, 2.5), rotation(20, 20), (-30.0, 12.5, 40.0))
CASES = {
    "ras": dict(affine=make_affine((2.0, 3.0, 4.0), None, (-10, 5, 3))),
    "lps": dict(affine=make_affine((2.0, 3.0, 4.0), np.diag([-1, -1, 1]), (10, 20, -5))),
    "oblique": dict(affine=OBLIQUE),
    "sagittal_pir": dict(
        affine=make_affine((1.0, 1.5, 2.0), np.array([[0, 0, -1], [-1, 0, 0], [0, -1, 0]]))
    ),
    "qform_only": dict(affine=OBLIQUE, sform_code=0),
    "sform_only": dict(affine=OBLIQUE, qform_code=0, sform_code=2),
    "nifti2": dict(affine=OBLIQUE, nifti2=True),
    "plain_nii": dict(affine=make_affine((2.0, 3.0, 4.0)), name="image.nii"),
    # qform (scanner, code 1) and sform (MNI, code 4) disagree: nibabel uses the sform; both
    # must survive unchanged.
    "both_codes_differ": dict(
        affine=make_affine((1.0, 1.2, 3.0), np.diag([-1, 1, 1]), (90, -126, -72)),
        qform_affine=OBLIQUE,
        qform_code=1,
        sform_code=4,
    ),
    # no qform/sform: the pixdim-based (Analyze) affine, x flipped
    "no_codes": dict(affine=make_affine((1.5, 2.0, 3.0)), qform_code=0, sform_code=0),
    "anisotropic_extreme": dict(affine=make_affine((0.05, 0.05, 50.0), np.diag([-1, -1, 1]))),
    "oblique_45_sagittal": dict(
        affine=make_affine((0.7, 0.7, 6.0), rotation(45, 90) @ np.diag([1, -1, 1]), (3, 2, 1))
    ),
}


def test_ras_marker_lands_superior_anterior_right(write_nifti) -> None:
    data = np.zeros((6, 5, 4), np.int16)  # (i, j, k) = (x R, y A, z S)
    data[-1, -1, -1] = 7  # most right, most anterior, most superior
    data[0, 0, 0] = 3  # most left, most posterior, most inferior
    path = write_nifti(data, make_affine((2.0, 3.0, 4.0)))
    vol = load_volume(path)
    assert vol.shape == (4, 5, 6)
    assert vol.data[-1, 0, 0] == 7  # z = max (superior), y = 0 (anterior), x = 0 (right)
    assert vol.data[0, -1, -1] == 3
    assert vol.spacing == (4.0, 3.0, 2.0)
    assert vol.unit == "mm"
    assert vol.meta["source_axcodes"] == "RAS"


def test_lps_file_is_only_transposed(write_nifti) -> None:
    data = volume_data((6, 5, 4))
    path = write_nifti(data, make_affine((2.0, 3.0, 4.0), np.diag([-1, -1, 1])))
    vol = load_volume(path)
    np.testing.assert_array_equal(vol.data, data.transpose(2, 1, 0))
    assert vol.data.dtype == np.int16
    assert vol.data.flags.c_contiguous
    assert vol.spacing == (4.0, 3.0, 2.0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_zyx_affine_maps_voxels_to_source_world(write_nifti, case: str) -> None:
    kwargs = dict(CASES[case])
    affine = kwargs.pop("affine")
    data = np.zeros((6, 5, 4), np.int16)
    data[4, 1, 2] = 9
    path = write_nifti(data, affine, **kwargs)
    vol = load_volume(path)
    src_world = nib.load(str(path)).affine @ np.array([4, 1, 2, 1.0])
    zyx = np.argwhere(vol.data == 9)[0]
    assert isinstance(vol.geometry, NiftiGeometry)
    np.testing.assert_allclose(vol.geometry.zyx_affine @ np.r_[zyx, 1.0], src_world, atol=1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_label_round_trip_keeps_geometry_bit_for_bit(write_nifti, tmp_path, case) -> None:
    kwargs = dict(CASES[case])
    affine = kwargs.pop("affine")
    data = volume_data()
    src = write_nifti(data, affine, **kwargs)
    vol = load_volume(src)
    labels = np.zeros(vol.shape, np.uint16)
    labels[vol.data > 500] = 1
    labels[vol.data > 1500] = 300
    suffix = ".nii" if src.name.endswith(".nii") else ".nii.gz"
    out = save_labels(tmp_path / f"labels{suffix}", labels, like=vol)
    assert out == tmp_path / f"labels{suffix}"

    assert_same_geometry(src, out)
    stored = raw_header(out)
    assert stored["scl_slope"] == 1.0 and stored["scl_inter"] == 0.0
    assert stored["cal_min"] == 0 and stored["cal_max"] == 300
    # voxels line up with the source on disk
    on_disk = np.asanyarray(nib.load(str(out)).dataobj)
    assert on_disk.dtype == np.uint16
    expected = np.where(data > 1500, 300, np.where(data > 500, 1, 0))
    np.testing.assert_array_equal(on_disk, expected)
    # and read back exactly
    back = load_volume(out)
    np.testing.assert_array_equal(back.data, labels)
    assert back.data.dtype == np.uint16
    assert back.spacing == vol.spacing


#: Source voxel indices (i, j, k) marked with label values 1, 2, 3 (corners and inside).
MARKERS = ((4, 1, 2), (0, 0, 0), (6, 5, 4))


@pytest.mark.parametrize("scaled", [False, True], ids=["unscaled", "scaled"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_marker_voxels_land_at_their_source_index(write_nifti, tmp_path, case, scaled) -> None:
    """A voxel labelled at the place of source voxel (i, j, k) is stored at (i, j, k)."""
    kwargs = dict(CASES[case])
    affine = kwargs.pop("affine")
    data = np.zeros((7, 6, 5), np.int16)
    for value, ijk in enumerate(MARKERS, start=1):
        data[ijk] = 100 * value
    if scaled:
        kwargs.update(slope=0.5, inter=-10.0)
    src = write_nifti(data, affine, **kwargs)
    vol = load_volume(src)
    labels = np.zeros(vol.shape, np.uint16)
    for value in range(1, len(MARKERS) + 1):
        level = 100 * value * (0.5 if scaled else 1.0) - (10.0 if scaled else 0.0)
        [zyx] = np.argwhere(vol.data == level)
        labels[tuple(zyx)] = value
    suffix = ".nii" if src.name.endswith(".nii") else ".nii.gz"
    out = save_labels(tmp_path / f"labels{suffix}", labels, like=vol)

    assert_same_geometry(src, out)
    img, ref = nib.load(str(out)), nib.load(str(src))
    assert img.header.get_zooms() == ref.header.get_zooms()
    assert img.header.get_xyzt_units() == ref.header.get_xyzt_units()
    assert nib.aff2axcodes(img.affine) == nib.aff2axcodes(ref.affine)
    on_disk = np.asanyarray(img.dataobj)
    assert on_disk.shape == data.shape
    for value, ijk in enumerate(MARKERS, start=1):
        assert [tuple(int(i) for i in v) for v in np.argwhere(on_disk == value)] == [ijk]
    stored = raw_header(out)
    assert stored["scl_slope"] == 1.0 and stored["scl_inter"] == 0.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_label_dtypes_are_kept(write_nifti, tmp_path, dtype) -> None:
    vol = load_volume(write_nifti(volume_data(), CASES["ras"]["affine"]))
    labels = np.zeros(vol.shape, dtype)
    labels[1, 2, 3] = np.iinfo(dtype).max
    back = load_volume(save_labels(tmp_path / "l.nii.gz", labels, like=vol))
    assert back.data.dtype == dtype
    np.testing.assert_array_equal(back.data, labels)


@pytest.mark.parametrize(
    ("make", "dtype"),
    [
        (lambda a: a.astype(bool), np.uint8),
        (lambda a: a.astype(np.int64), np.uint16),
        (lambda a: a.astype(np.int32), np.uint32),
        (lambda a: a.astype(np.float32), np.uint16),
    ],
)
def test_label_dtype_conversions(write_nifti, tmp_path, make, dtype) -> None:
    vol = load_volume(write_nifti(volume_data(), CASES["lps"]["affine"]))
    labels = make((vol.data > 0).astype(np.uint8))
    back = load_volume(save_labels(tmp_path / "l.nii.gz", labels, like=vol))
    assert back.data.dtype == dtype
    np.testing.assert_array_equal(back.data, (vol.data > 0).astype(dtype))


@pytest.mark.parametrize(
    ("labels", "phrase"),
    [
        (lambda s: np.full(s, 1.5, np.float32), "non-integral"),
        (lambda s: np.full(s, -1, np.int16), "non-negative"),
        (lambda s: np.full(s, "a"), "integer array"),
    ],
)
def test_bad_label_values(write_nifti, tmp_path, labels, phrase) -> None:
    vol = load_volume(write_nifti(volume_data(), CASES["ras"]["affine"]))
    with pytest.raises(VolumeWriteError, match=phrase):
        save_labels(tmp_path / "l.nii.gz", labels(vol.shape), like=vol)
    assert not any(tmp_path.glob("l*"))


def test_scaled_nifti_gives_float32(write_nifti) -> None:
    raw = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    path = write_nifti(raw, np.eye(4), slope=2.0, inter=-1024.0)
    vol = load_volume(path)
    assert vol.data.dtype == np.float32
    np.testing.assert_array_equal(vol.data, (raw * 2.0 - 1024.0).transpose(2, 1, 0)[:, ::-1, ::-1])
    assert vol.modality == "CT"


def test_nan_scaling_means_unscaled(write_nifti) -> None:
    vol = load_volume(write_nifti(np.ones((3, 3, 3), np.uint16), np.eye(4)))
    assert vol.data.dtype == np.uint16


def test_one_slice_volume(write_nifti, tmp_path) -> None:
    data = np.arange(12, dtype=np.uint8).reshape(4, 3, 1)
    vol = load_volume(write_nifti(data, np.diag([-1.0, -1.0, 1.0, 1.0])))
    assert vol.shape == (1, 3, 4)
    labels = (vol.data % 2).astype(np.uint16)
    back = load_volume(save_labels(tmp_path / "l.nii.gz", labels, like=vol))
    np.testing.assert_array_equal(back.data, labels)


def test_4d_channel_and_labels_are_3d(write_nifti, tmp_path) -> None:
    data = np.stack([np.full((4, 5, 6), c, np.int16) for c in range(3)], axis=-1)
    data[1, 2, 3, 2] = 99
    src = write_nifti(data, CASES["oblique"]["affine"])
    vol = load_volume(src, channel=2)
    assert vol.shape == (6, 5, 4)
    assert (vol.data == 2).sum() == vol.data.size - 1 and vol.data.max() == 99
    assert vol.meta["channel"] == 2
    out = save_labels(tmp_path / "l.nii.gz", (vol.data == 99).astype(np.uint8), like=vol)
    img = nib.load(str(out))
    assert img.shape == (4, 5, 6)
    assert np.array_equal(img.affine, nib.load(str(src)).affine)
    assert np.asanyarray(img.dataobj)[1, 2, 3] == 1


def test_trailing_singleton_dimension_is_3d(write_nifti) -> None:
    vol = load_volume(write_nifti(np.zeros((4, 5, 6, 1), np.int16), np.eye(4)))
    assert vol.shape == (6, 5, 4)


def test_fill_nonfinite(write_nifti) -> None:
    data = np.zeros((3, 4, 5), np.float64)
    data[0, 0, 0] = np.nan
    data[1, 1, 1] = np.inf
    vol = load_volume(write_nifti(data, np.eye(4)), fill_nonfinite=-5)
    assert vol.data.dtype == np.float32
    assert np.isfinite(vol.data).all()
    assert (vol.data == -5).sum() == 2


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (np.full((4, 4, 4), -1024, np.int16), "CT"),
        (np.full((4, 4, 4), 200, np.uint8), "MR"),
        (np.full((4, 4, 4), 300, np.int16), "MR"),
        (np.full((4, 4, 4), -600.0, np.float32), "CT"),
    ],
)
def test_modality_detection(write_nifti, data, expected) -> None:
    data = data.copy()
    data[0, 0, 0] = 50
    assert load_volume(write_nifti(data, np.eye(4))).modality == expected


def test_explicit_modality_is_used(write_nifti) -> None:
    path = write_nifti(np.full((4, 4, 4), -1024, np.int16), np.eye(4))
    assert load_volume(path, modality="mr").modality == "MR"
    assert load_volume(path, modality="Microscopy").modality == "microscopy"


def test_save_is_atomic_and_overwrites(write_nifti, tmp_path, monkeypatch) -> None:
    vol = load_volume(write_nifti(volume_data(), CASES["ras"]["affine"]))
    target = tmp_path / "out" / "labels.nii.gz"
    save_labels(target, np.ones(vol.shape, np.uint8), like=vol)  # creates out/
    save_labels(target, np.full(vol.shape, 2, np.uint8), like=vol)
    assert sorted(p.name for p in target.parent.iterdir()) == ["labels.nii.gz"]
    assert (load_volume(target).data == 2).all()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", boom)
    with pytest.raises(VolumeWriteError, match="disk full"):
        save_labels(target, np.full(vol.shape, 3, np.uint8), like=vol)
    monkeypatch.undo()
    assert sorted(p.name for p in target.parent.iterdir()) == ["labels.nii.gz"]
    assert (load_volume(target).data == 2).all()
