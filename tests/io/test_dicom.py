"""DICOM series reading: slice order, spacing and orientation (against the NIfTI reader),
rescale, series choice, refusals, and fuzzed files.

Every series here is synthetic, written with pydicom into ``tmp_path`` (file names and
InstanceNumbers shuffled so that neither can give the slice order). Nothing reads ``../shared``.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_factory import (
    AXIAL,
    NO_JPEG_LOSSLESS_PLUGINS,
    SECRETS,
    as_jpeg_lossless,
    cosines,
    ct_stack,
    ds_text,
    lps_affine,
    make_slice,
    ras_affine,
    write_series,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLSLossless,
    RLELossless,
    SegmentationStorage,
    generate_uid,
)

from slicesam.errors import SliceSamError, VolumeReadError
from slicesam.io import DicomGeometry, Volume, load_volume
from slicesam.io.dicom import read_dicom_series


def load_refused(path: Path, phrase: str, **kwargs) -> str:
    """Load ``path``, expect a VolumeReadError whose message contains ``phrase``."""
    with pytest.raises(VolumeReadError) as info:
        load_volume(path, **kwargs)
    msg = str(info.value)
    assert phrase in msg, msg
    for secret in SECRETS:
        assert secret not in msg, msg
    return msg


# --------------------------------------------------------------------------- orientation

#: (ImageOrientationPatient, signed step along the normal).
ORIENTATIONS = {
    "axial": (AXIAL, 2.5),
    "axial_descending": (AXIAL, -2.5),  # slice k further inferior (files head first)
    "axial_flipped_rows": ((-1, 0, 0, 0, 1, 0), 2.5),
    "axial_flipped_columns": ((1, 0, 0, 0, -1, 0), 2.5),
    "axial_prone": ((-1, 0, 0, 0, -1, 0), -3.0),
    "sagittal": ((0, 1, 0, 0, 0, -1), 1.5),
    "sagittal_flipped": ((0, -1, 0, 0, 0, -1), -1.5),
    "coronal": ((1, 0, 0, 0, 0, -1), 2.0),
    "coronal_flipped": ((-1, 0, 0, 0, 0, 1), 2.0),
    "oblique": (cosines(20.0), 2.2),
    "oblique_sagittal": ((0, 0.9659258263, -0.2588190451, 0, 0.2588190451, 0.9659258263), 1.2),
}


@pytest.mark.parametrize("case", sorted(ORIENTATIONS))
def test_display_equals_the_nifti_reader(tmp_path, case) -> None:
    """The strongest orientation check: the same voxels on the same world grid, written once
    as a DICOM series and once as NIfTI (nibabel, RAS affine), load to the same volume."""
    iop, step = ORIENTATIONS[case]
    stack = ct_stack((5, 6, 7), seed=1)
    origin = (-20.0, -30.0, 40.0)
    write_series(tmp_path / "dcm", stack, iop=iop, origin=origin, step=step)
    hu = stack.astype(np.int16) - 1024
    affine = ras_affine(iop, origin, (0.8, 0.7), step)
    nii = tmp_path / "same.nii.gz"
    nib.save(nib.Nifti1Image(hu.transpose(2, 1, 0), affine), str(nii))

    vol = load_volume(tmp_path / "dcm")
    ref = load_volume(nii)
    assert isinstance(vol.geometry, DicomGeometry)
    assert vol.data.dtype == np.int16
    assert vol.shape == ref.shape
    np.testing.assert_array_equal(vol.data, ref.data)
    np.testing.assert_allclose(vol.spacing, ref.spacing, rtol=1e-6)
    np.testing.assert_allclose(vol.geometry.zyx_affine, ref.geometry.zyx_affine, atol=1e-4)
    if step > 0:  # the DICOM source grid runs along +normal (slices sorted by position)
        assert vol.meta["source_axcodes"] == ref.meta["source_axcodes"]
    assert vol.data.flags.c_contiguous and vol.modality == "CT" and vol.unit == "mm"
    # The NIfTI labels of the same grid pass the like= check.
    labels = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(stack.shape[::-1], np.uint8), affine), str(labels))
    assert load_volume(labels, like=vol).shape == vol.shape


@pytest.mark.parametrize("case", sorted(ORIENTATIONS))
def test_every_voxel_lands_at_its_world_position(tmp_path, case) -> None:
    """Independently of nibabel's reader: zyx_affine maps each voxel to the LPS position the
    DICOM header gives its source pixel, and the axes run S, P, L (canonical LPS view)."""
    iop, step = ORIENTATIONS[case]
    shape = (4, 5, 6)
    stack = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)  # value -> (k, j, i)
    origin = np.array([10.0, -5.0, 30.0])
    write_series(tmp_path, stack, iop=iop, origin=origin, step=step, intercept=0)
    vol = load_volume(tmp_path)
    geom = vol.geometry
    k, j, i = np.unravel_index(vol.data.astype(np.int64), shape)
    src = lps_affine(iop, origin, (0.8, 0.7), step)
    want_lps = np.einsum("ab,b...->a...", src[:3, :3], np.stack([i, j, k]))
    want_lps += src[:3, 3][:, None, None, None]
    z, y, x = np.indices(vol.shape)
    got_ras = np.einsum("ab,b...->a...", geom.zyx_affine[:3, :3], np.stack([z, y, x]))
    got_ras += geom.zyx_affine[:3, 3][:, None, None, None]
    got_lps = got_ras * np.array([-1.0, -1.0, 1.0])[:, None, None, None]
    np.testing.assert_allclose(got_lps, want_lps, atol=1e-4)
    # canonical view: z -> superior, y -> posterior, x -> patient left (RAS columns)
    lps_cols = np.diag([-1.0, -1.0, 1.0]) @ geom.zyx_affine[:3, :3]
    assert [int(np.argmax(np.abs(lps_cols[:, c]))) for c in range(3)] == [2, 1, 0]
    assert (np.diag(lps_cols[[2, 1, 0]][:, [0, 1, 2]]) > 0).all()
    # geometry kept for writing: frames back in source order, UIDs in position order
    frames = geom.to_source(vol.data)
    sorted_stack = stack if step > 0 else stack[::-1]
    np.testing.assert_array_equal(frames, sorted_stack)
    np.testing.assert_array_equal(geom.to_zyx(frames), vol.data)
    assert len(geom.sop_instance_uids) == shape[0] == len(set(geom.sop_instance_uids))
    assert geom.shape == (shape[2], shape[1], shape[0])


def test_sop_uids_follow_the_slice_positions(tmp_path) -> None:
    stack = ct_stack((6, 3, 4))
    files = write_series(tmp_path, stack, step=-1.25, seed=3)
    vol = load_volume(tmp_path)
    uids = [pydicom.dcmread(f).SOPInstanceUID for f in files]
    assert vol.geometry.sop_instance_uids == tuple(reversed(uids))  # negative step: reversed
    assert vol.geometry.series_uid == pydicom.dcmread(files[0]).SeriesInstanceUID
    assert vol.geometry.study_uid == "1.2.826.0.1.3680043.8.498.1"
    assert vol.geometry.frame_of_reference_uid == "1.2.826.0.1.3680043.8.498.2"
    assert vol.geometry.sop_class_uid == CTImageStorage
    # the most superior slice (written first) is the last z; axial LPS rows/columns stay
    np.testing.assert_array_equal(vol.data[-1], stack[0].astype(np.int16) - 1024)
    assert vol.meta["series_uid"] == vol.geometry.series_uid
    assert vol.meta["source_shape"] == (6, 3, 4)


# --------------------------------------------------------------------------- spacing


def test_spacing_from_positions_not_slice_thickness(tmp_path) -> None:
    write_series(tmp_path, ct_stack((4, 5, 6)), step=1.75, pixel_spacing=(0.6, 0.9))
    vol = load_volume(tmp_path)
    assert vol.spacing == pytest.approx((1.75, 0.6, 0.9))  # SliceThickness is 5 in the files


def test_small_position_jitter_is_accepted(tmp_path) -> None:
    normal = np.array([0.0, 0.0, 1.0])
    jitter = [0.0, 0.004, -0.003, 0.002, 0.0]
    positions = [np.array([1.0, 2.0, 3.0]) + (2.0 * k + jitter[k]) * normal for k in range(5)]
    write_series(tmp_path, ct_stack((5, 4, 4)), positions=positions)
    assert load_volume(tmp_path).spacing[0] == pytest.approx(2.0, abs=1e-3)


def test_missing_slice_is_refused(tmp_path) -> None:
    files = write_series(tmp_path, ct_stack((6, 4, 4)), step=3.0)
    files[2].unlink()
    msg = load_refused(tmp_path, "uneven slice spacing")
    assert "about 1 slice missing" in msg and "3 mm" in msg


def test_uneven_spacing_is_refused(tmp_path) -> None:
    z = [0.0, 2.0, 4.0, 6.5, 8.5]
    write_series(tmp_path, ct_stack((5, 4, 4)), positions=[(0.0, 0.0, v) for v in z])
    load_refused(tmp_path, "uneven slice spacing")


def test_duplicated_slice_is_refused(tmp_path) -> None:
    files = write_series(tmp_path, ct_stack((4, 4, 4)))
    ds = pydicom.dcmread(files[1])
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "copy_of_a_slice", enforce_file_format=True)
    load_refused(tmp_path, "duplicated slices")


def test_one_slice_series_uses_slice_thickness(tmp_path) -> None:
    write_series(tmp_path, ct_stack((1, 5, 6)))
    vol = load_volume(tmp_path)
    assert vol.shape == (1, 5, 6) and vol.spacing[0] == pytest.approx(5.0)


# --------------------------------------------------------------------------- values


def test_rescale_to_hounsfield_units(tmp_path) -> None:
    stack = ct_stack((3, 4, 5))
    write_series(tmp_path, stack)
    vol = load_volume(tmp_path)
    assert vol.data.dtype == np.int16 and vol.modality == "CT"
    assert vol.meta["rescaled"] is True
    hu = stack.astype(np.int32) - 1024
    np.testing.assert_array_equal(np.sort(vol.data.ravel()), np.sort(hu.ravel()))


def test_fractional_rescale_gives_float32(tmp_path) -> None:
    stack = ct_stack((3, 4, 5))
    write_series(tmp_path, stack, slope=0.5, intercept=-10.25)
    vol = load_volume(tmp_path)
    assert vol.data.dtype == np.float32
    np.testing.assert_allclose(np.sort(vol.data.ravel()), np.sort(stack.ravel() * 0.5 - 10.25))


def test_rescale_out_of_int16_range_gives_float32(tmp_path) -> None:
    stack = np.full((2, 3, 3), 60000, np.uint16)
    write_series(tmp_path, stack, slope=1, intercept=-1024)
    vol = load_volume(tmp_path)
    assert vol.data.dtype == np.float32 and float(vol.data.max()) == 60000 - 1024


def test_per_slice_rescale(tmp_path) -> None:
    """MR/PET series may scale each slice differently; each slice gets its own."""
    folder = tmp_path / "s"
    uid = generate_uid()
    for k, slope in enumerate((1.0, 2.0, 4.0)):
        ds = make_slice(
            np.full((3, 3), 10, np.uint16),
            ipp=(0, 0, 2.0 * k),
            modality="MR",
            slope=slope,
            intercept=0,
            series_uid=uid,
        )
        folder.mkdir(exist_ok=True)
        ds.save_as(folder / f"f{k}", enforce_file_format=True)
    vol = load_volume(folder)
    assert [float(v) for v in vol.data[:, 0, 0]] == [10.0, 20.0, 40.0]


def test_mr_without_rescale_keeps_the_stored_dtype(tmp_path) -> None:
    stack = ct_stack((3, 4, 5))
    write_series(tmp_path, stack, modality="MR", slope=None, intercept=None)
    vol = load_volume(tmp_path)
    assert vol.data.dtype == np.uint16 and vol.modality == "MR"
    assert vol.meta["rescaled"] is False and vol.meta["dicom_modality"] == "MR"


def test_signed_stored_values(tmp_path) -> None:
    stack = np.random.default_rng(2).integers(-1024, 2000, size=(3, 4, 5)).astype(np.int16)
    write_series(tmp_path, stack, slope=1, intercept=0)
    vol = load_volume(tmp_path)
    assert vol.data.dtype == np.int16
    np.testing.assert_array_equal(vol.geometry.to_source(vol.data), stack)


def test_other_modality_is_unknown_unless_given(tmp_path) -> None:
    folder = tmp_path / "s"
    write_series(folder, ct_stack((2, 3, 3)), modality="MR")
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.Modality = "PT"
        ds.save_as(f)
    vol = load_volume(folder)
    assert vol.modality is None and vol.meta["dicom_modality"] == "PT"
    assert load_volume(folder, modality="mr").modality == "MR"


# --------------------------------------------------------------------------- compression


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_series_equal_the_uncompressed(tmp_path, syntax) -> None:
    from pydicom.pixels import get_decoder, get_encoder

    if syntax != JPEG2000Lossless and not get_encoder(syntax).is_available:
        pytest.skip(f"no encoder for {syntax.name}")
    if not get_decoder(syntax).is_available:
        pytest.skip(f"no decoder for {syntax.name}")
    stack = ct_stack((3, 6, 7))
    write_series(tmp_path / "plain", stack, seed=5)
    write_series(tmp_path / "packed", stack, seed=5, syntax=syntax)
    plain, packed = load_volume(tmp_path / "plain"), load_volume(tmp_path / "packed")
    np.testing.assert_array_equal(packed.data, plain.data)
    assert packed.meta["transfer_syntaxes"] == [syntax]


def test_undecodable_compression_names_the_packages(tmp_path, monkeypatch) -> None:
    """A machine without JPEG Lossless decoders (python-gdcm is a dependency, so pydicom's
    decoder is told it has no plugin, as it says on such a machine)."""
    from pydicom.pixels import get_decoder

    decoder = get_decoder(JPEGLossless)
    monkeypatch.setattr(decoder, "_available", {})
    monkeypatch.setattr(decoder, "_unavailable", NO_JPEG_LOSSLESS_PLUGINS)
    as_jpeg_lossless(write_series(tmp_path, ct_stack((3, 4, 4))))
    msg = load_refused(tmp_path, "no installed package can decode it")
    assert "JPEG Lossless" in msg and "pylibjpeg" in msg and "python-gdcm" in msg


# --------------------------------------------------------------------------- series choice


def two_series(tmp_path: Path) -> tuple[Path, str, str]:
    folder = tmp_path / "study"
    ct_uid, mr_uid = generate_uid(), generate_uid()
    write_series(folder, ct_stack((3, 4, 5)), series_uid=ct_uid, description="CT abdomen")
    write_series(
        folder,
        ct_stack((4, 6, 6)),
        modality="MR",
        slope=None,
        intercept=None,
        series_uid=mr_uid,
        description="T1 axial",
        prefix="MR",
    )
    return folder, ct_uid, mr_uid


def test_several_series_need_series_argument(tmp_path) -> None:
    folder, ct_uid, mr_uid = two_series(tmp_path)
    msg = load_refused(folder, "holds 2 DICOM image series")
    for text in (ct_uid, mr_uid, "'CT abdomen'", "'T1 axial'", "3 slices", "4 slices", "series="):
        assert text in msg, msg
    assert "MR, 4 slices" in msg and "CT, 3 slices" in msg


def test_series_argument_picks_one(tmp_path) -> None:
    folder, ct_uid, mr_uid = two_series(tmp_path)
    ct = load_volume(folder, series=ct_uid)
    mr = load_volume(folder, series=f" {mr_uid} ")
    assert ct.shape == (3, 4, 5) and ct.modality == "CT" and ct.geometry.series_uid == ct_uid
    assert mr.shape == (4, 6, 6) and mr.modality == "MR" and mr.geometry.series_uid == mr_uid
    assert mr.meta["series_description"] == "T1 axial"


def test_unknown_series_lists_the_available(tmp_path) -> None:
    folder, ct_uid, mr_uid = two_series(tmp_path)
    msg = load_refused(folder, "has no DICOM series '1.2.3.4'", series="1.2.3.4")
    assert ct_uid in msg and mr_uid in msg


@pytest.mark.parametrize("bad", ["", "   ", 123])
def test_bad_series_argument(tmp_path, bad) -> None:
    write_series(tmp_path, ct_stack((2, 3, 3)))
    load_refused(tmp_path, "series must be a SeriesInstanceUID", series=bad)


def test_series_argument_with_a_file(tmp_path) -> None:
    path = tmp_path / "a.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.int16), np.eye(4)), str(path))
    load_refused(path, "is a file", series="1.2.3")


def seg_object(series_uid: str) -> Dataset:
    """A minimal Segmentation-class object (enough for the folder scan)."""
    ds = make_slice(np.zeros((4, 5), np.uint16), ipp=(0, 0, 0), series_uid=series_uid)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SegmentationStorage
    ds.Modality = "SEG"
    ds.NumberOfFrames = 2
    return ds


def test_a_segmentation_next_to_its_series_does_not_block(tmp_path) -> None:
    files = write_series(tmp_path, ct_stack((3, 4, 5)))
    seg_uid = generate_uid()
    seg_object(seg_uid).save_as(tmp_path / "seg.dcm", enforce_file_format=True)
    vol = load_volume(tmp_path)
    assert vol.geometry.series_uid == pydicom.dcmread(files[0]).SeriesInstanceUID
    load_refused(tmp_path, "holds segmentation objects, not image slices", series=seg_uid)


def test_non_dicom_files_and_dicomdir_are_skipped(tmp_path) -> None:
    write_series(tmp_path, ct_stack((3, 4, 5)))
    (tmp_path / "README.txt").write_text("exported by a PACS\n")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    (tmp_path / "empty").write_bytes(b"")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ddir = Dataset()
    ddir.file_meta = meta
    ddir.FileSetID = "EXPORT"
    ddir.save_as(tmp_path / "DICOMDIR", enforce_file_format=True)
    (tmp_path / "sub").mkdir()
    assert load_volume(tmp_path).shape == (3, 4, 5)


def test_files_without_series_uid_form_one_series(tmp_path) -> None:
    """Anonymisers may blank the UIDs (the shared CT has blank Series/Study/SOP UIDs in the
    dataset); such files still load as one series, with the file meta's SOP UIDs."""
    files = write_series(tmp_path, ct_stack((3, 4, 5)))
    for f in files:
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = ""
        ds.SOPInstanceUID = ""
        ds.save_as(f)
    vol = load_volume(tmp_path)
    assert vol.geometry.series_uid is None and vol.meta["series_uid"] is None
    meta_uids = {str(pydicom.dcmread(f).file_meta.MediaStorageSOPInstanceUID) for f in files}
    assert set(vol.geometry.sop_instance_uids) == meta_uids


# --------------------------------------------------------------------------- refusals


def test_empty_folder(tmp_path) -> None:
    msg = load_refused(tmp_path, "is a directory with no DICOM files")
    assert ".nii.gz" in msg


def test_folder_of_other_files_with_subfolders(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "series1").mkdir()
    write_series(tmp_path / "series1", ct_stack((2, 3, 3)))
    msg = load_refused(tmp_path, "no DICOM files")
    assert "subfolder is not searched" in msg


def test_gantry_tilt_is_refused(tmp_path) -> None:
    tilt = np.deg2rad(15.0)
    positions = [(0.0, 3.0 * k * np.tan(tilt), 3.0 * k) for k in range(4)]
    write_series(tmp_path, ct_stack((4, 4, 4)), positions=positions)
    msg = load_refused(tmp_path, "gantry tilt")
    assert "15 degrees" in msg


def test_non_parallel_slices_are_refused(tmp_path) -> None:
    files = write_series(tmp_path, ct_stack((4, 4, 4)))
    ds = pydicom.dcmread(files[2])
    ds.ImageOrientationPatient = ds_text(cosines(5.0))
    ds.save_as(files[2])
    msg = load_refused(tmp_path, "are not parallel")
    assert "1 of 4 have another ImageOrientationPatient" in msg


def test_slices_of_different_sizes_are_refused(tmp_path) -> None:
    files = write_series(tmp_path, ct_stack((3, 4, 4)))
    ds = pydicom.dcmread(files[1])
    ds.Rows, ds.Columns = 2, 8
    ds.save_as(files[1])
    msg = load_refused(tmp_path, "differ in size")
    assert "4x4 (2 slices)" in msg and "2x8 (1 slice)" in msg


def test_different_pixel_spacing_is_refused(tmp_path) -> None:
    files = write_series(tmp_path, ct_stack((3, 4, 4)))
    ds = pydicom.dcmread(files[0])
    ds.PixelSpacing = ["0.5", "0.5"]
    ds.save_as(files[0])
    load_refused(tmp_path, "differ in pixel spacing")


def test_multi_frame_is_refused(tmp_path) -> None:
    ds = make_slice(np.zeros((4, 4), np.uint16), ipp=(0, 0, 0), series_uid=generate_uid())
    ds.NumberOfFrames = 3
    ds.PixelData = np.zeros((3, 4, 4), np.uint16).tobytes()
    ds.save_as(tmp_path / "multi.dcm", enforce_file_format=True)
    load_refused(tmp_path, "is a multi-frame DICOM object (3 frames)")


def test_image_without_pixel_data_is_refused(tmp_path) -> None:
    files = write_series(tmp_path, ct_stack((3, 4, 4)))
    ds = pydicom.dcmread(files[1])
    del ds.PixelData
    ds.save_as(files[1])
    load_refused(tmp_path, "has no pixel data")


def test_non_image_object_in_the_series_is_refused(tmp_path) -> None:
    files = write_series(tmp_path, ct_stack((3, 4, 4)))
    ds = pydicom.dcmread(files[0])
    sr = Dataset()
    sr.file_meta = FileMetaDataset()
    sr.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    sr.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr.SOPClassUID = sr.file_meta.MediaStorageSOPClassUID
    sr.SOPInstanceUID = sr.file_meta.MediaStorageSOPInstanceUID
    sr.SeriesInstanceUID = ds.SeriesInstanceUID
    sr.Modality = "SR"
    sr.PatientName = "SECRET^PATIENT"
    sr.save_as(tmp_path / "report", enforce_file_format=True)
    msg = load_refused(tmp_path, "is not an image slice")
    assert "Basic Text SR" in msg
    for f in files:
        f.unlink()
    msg = load_refused(tmp_path, "holds no DICOM image series, only non-image objects")
    assert "1 non-image object" in msg


def test_colour_is_refused(tmp_path) -> None:
    files = write_series(tmp_path, ct_stack((2, 3, 3)))
    ds = pydicom.dcmread(files[0])
    ds.SamplesPerPixel = 3
    ds.save_as(files[0])
    load_refused(tmp_path, "is a colour image")


@pytest.mark.parametrize("keyword", ["ImagePositionPatient", "ImageOrientationPatient"])
def test_missing_geometry_is_refused(tmp_path, keyword) -> None:
    files = write_series(tmp_path, ct_stack((2, 3, 3)))
    ds = pydicom.dcmread(files[1])
    delattr(ds, keyword)
    ds.save_as(files[1])
    load_refused(tmp_path, f"has no {keyword}")


def test_truncated_slice_is_refused(tmp_path) -> None:
    files = write_series(tmp_path, ct_stack((3, 40, 40)))
    blob = files[1].read_bytes()
    files[1].write_bytes(blob[: len(blob) - 500])
    load_refused(tmp_path, str(files[1].name))


def test_single_dicom_file_points_to_its_folder(tmp_path) -> None:
    files = write_series(tmp_path / "s", ct_stack((2, 3, 3)))
    named = files[0].rename(files[0].with_suffix(".dcm"))
    msg = load_refused(named, "is a single DICOM file")
    assert str(tmp_path / "s") in msg


def test_channel_on_a_series(tmp_path) -> None:
    write_series(tmp_path, ct_stack((2, 3, 3)))
    assert load_volume(tmp_path, channel=0).shape == (2, 3, 3)
    load_refused(tmp_path, "single channel", channel=1)


def test_max_bytes_is_checked_before_reading_pixels(tmp_path, monkeypatch) -> None:
    write_series(tmp_path, ct_stack((3, 16, 16)))
    from slicesam.io import dicom

    def no_pixels(*args, **kwargs):
        raise AssertionError("pixels read before the memory check")

    monkeypatch.setattr(dicom, "read_pixels", no_pixels)
    load_refused(tmp_path, "too large to load", max_bytes=1000)


def test_like_refuses_labels_on_another_grid(tmp_path) -> None:
    write_series(tmp_path / "dcm", ct_stack((3, 4, 5)))
    vol = load_volume(tmp_path / "dcm")
    shifted = vol.geometry.affine.copy()
    shifted[0, 3] += 5.0
    labels = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((5, 4, 3), np.uint8), shifted), str(labels))
    load_refused(labels, "different voxel-to-world affine", like=vol)


def test_read_dicom_series_directly(tmp_path) -> None:
    write_series(tmp_path, ct_stack((3, 4, 5)))
    data, spacing, unit, geometry, meta = read_dicom_series(tmp_path)
    assert data.shape == (3, 4, 5) and unit == "mm" and meta["format"] == "dicom"
    assert isinstance(geometry, DicomGeometry) and len(spacing) == 3


def test_importing_slicesam_does_not_import_pydicom() -> None:
    """``import slicesam`` stays light, and slicesam's own modules import pydicom only inside
    the functions that read DICOM. (nibabel itself imports pydicom when it is installed, so
    once ``slicesam.io`` is imported pydicom is loaded anyway; that is nibabel's doing.)"""
    import ast

    code = "import sys, slicesam\nprint('pydicom' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"
    root = Path(__file__).resolve().parents[2] / "src" / "slicesam"
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] in ("pydicom", "highdicom") for n in names):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not found, found


# --------------------------------------------------------------------------- fuzz

#: Examples per fuzz test (SLICESAM_FUZZ_EXAMPLES raises it, as for the NIfTI/TIFF fuzzers).
EXAMPLES = int(os.environ.get("SLICESAM_FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize="SLICESAM_FUZZ_EXAMPLES" not in os.environ,
)


def _series_blobs() -> list[bytes]:
    with tempfile.TemporaryDirectory() as folder:
        files = write_series(Path(folder), ct_stack((3, 6, 5), seed=9), step=2.0)
        rle = make_slice(
            ct_stack((1, 6, 5), seed=8)[0],
            ipp=(-20.0, -30.0, 46.0),
            series_uid=str(pydicom.dcmread(files[0]).SeriesInstanceUID),
            syntax=RLELossless,
        )
        buf = io.BytesIO()
        rle.save_as(buf, enforce_file_format=True)
        return [f.read_bytes() for f in files] + [buf.getvalue()]


BASE = _series_blobs()


@st.composite
def damaged_series(draw: st.DrawFn) -> list[bytes]:
    """The four files of a small series (one RLE-compressed), one or two of them damaged:
    bytes overwritten (header area first), truncated, or a piece inserted."""
    blobs = [bytearray(b) for b in BASE]
    for _ in range(draw(st.integers(1, 2))):
        idx = draw(st.integers(0, len(blobs) - 1))
        blob = blobs[idx]
        if not blob:
            continue
        head = min(len(blob), 700)  # preamble, file meta and the dataset's geometry
        for pos, byte in draw(
            st.lists(st.tuples(st.integers(0, head - 1), st.integers(0, 255)), max_size=8)
        ):
            blob[pos] = byte
        for pos, byte in draw(
            st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=3)
        ):
            blob[pos] = byte
        if draw(st.booleans()):
            del blob[draw(st.integers(0, len(blob))) :]
        if draw(st.integers(0, 5)) == 0:
            pos = draw(st.integers(0, len(blob)))
            blob[pos:pos] = draw(st.binary(min_size=1, max_size=12))
    return [bytes(b) for b in blobs]


@pytest.fixture(scope="module")
def fuzz_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="slicesam-dicom-fuzz-") as folder:
        yield Path(folder)


@FUZZ
@given(blobs=damaged_series())
def test_fuzz_dicom_reader(fuzz_dir: Path, blobs: list[bytes]) -> None:
    """A damaged series loads as a valid Volume or raises a SliceSamError whose one-line
    message shows no patient identifier; never another exception."""
    shutil.rmtree(fuzz_dir, ignore_errors=True)
    fuzz_dir.mkdir()
    for k, blob in enumerate(blobs):
        (fuzz_dir / f"slice{k}").write_bytes(blob)
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            vol = load_volume(fuzz_dir, max_bytes=64 * 1024**2)
        except SliceSamError as exc:
            msg = str(exc)
            assert msg.strip() and "Traceback" not in msg and "\n" not in msg
            for secret in SECRETS:
                assert secret not in msg, msg
            event("refused: " + msg.replace(str(fuzz_dir), "<dir>")[:60])
            return
    event("loaded")
    assert isinstance(vol, Volume)
    assert vol.data.ndim == 3 and all(n > 0 for n in vol.shape)
    assert vol.data.flags.c_contiguous
    assert all(np.isfinite(s) and s > 0 for s in vol.spacing), vol.spacing


def test_fuzz_base_loads(fuzz_dir: Path) -> None:
    """The unmutated fuzz seed is a valid series (so the fuzzing starts from real data)."""
    shutil.rmtree(fuzz_dir, ignore_errors=True)
    fuzz_dir.mkdir()
    for k, blob in enumerate(BASE):
        (fuzz_dir / f"slice{k}").write_bytes(blob)
    vol = load_volume(fuzz_dir)
    assert vol.shape == (4, 6, 5) and vol.meta["transfer_syntaxes"] == sorted(
        [ExplicitVRLittleEndian, RLELossless]
    )


@pytest.mark.parametrize("case", ["axial", "axial_descending", "sagittal", "oblique"])
def test_labels_saved_as_nifti_sit_on_the_series_in_world(tmp_path, case) -> None:
    """save_labels(.nii.gz, like=<DICOM volume>) writes the series' own grid and world
    position (as dcm2niix would), and loads back unchanged and on the same grid."""
    from slicesam import save_labels

    iop, step = ORIENTATIONS[case]
    write_series(tmp_path / "dcm", ct_stack((5, 6, 7), seed=2), iop=iop, step=step)
    vol = load_volume(tmp_path / "dcm")
    labels = np.zeros(vol.shape, np.uint16)
    labels[1:3, 2:4, 1:5] = 7
    out = save_labels(tmp_path / "seg.nii.gz", labels, like=vol)
    written = nib.load(str(out))
    np.testing.assert_allclose(written.affine, vol.geometry.affine, atol=1e-5)
    assert written.shape == vol.geometry.shape  # (columns, rows, slices)
    back = load_volume(out, like=vol)
    np.testing.assert_array_equal(back.data, labels)
    np.testing.assert_allclose(back.geometry.zyx_affine, vol.geometry.zyx_affine, atol=1e-4)


def test_cli_info_lists_the_series_of_a_folder_and_segment_takes_series(tmp_path, capsys):
    """`slicesam info DIR` lists every series; --series picks one for shape and window;
    `slicesam segment DIR --series UID` segments that series (a box; the weight-free grabcut)."""
    import json

    from slicesam.cli import main

    folder, ct_uid, mr_uid = two_series(tmp_path)
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "2 DICOM series" in out and ct_uid in out and mr_uid in out
    assert "'T1 axial'" in out and "--series" in out and "shape (z, y, x)" not in out
    assert main(["info", str(folder), "--series", mr_uid]) == 0
    out = capsys.readouterr().out
    assert "shape (z, y, x) = (4, 6, 6)" in out and "modality: MR" in out

    prompts = tmp_path / "p.json"
    box = {"z": 1, "box": [1, 1, 3, 2]}
    prompts.write_text(json.dumps({"objects": [{"id": 1, "boxes": [box]}]}))
    out_path = tmp_path / "seg.nii.gz"
    code = main(
        ["segment", str(folder), "--series", ct_uid, "--prompts", str(prompts),
         "--out", str(out_path), "--model", "grabcut", "--quiet", "--no-propagate"]
    )  # fmt: skip
    assert code == 0
    back = load_volume(out_path, like=load_volume(folder, series=ct_uid))
    assert back.shape == (3, 4, 5)


def test_an_autosaved_session_on_a_dicom_series_restores(tmp_path) -> None:
    """The sidecar of a session on one series of a folder (several series) sits next to the
    folder, records the series, and restores the labels and objects from it."""
    from slicesam.engine.session import Session

    folder, ct_uid, _mr_uid = two_series(tmp_path)
    vol = load_volume(folder, series=ct_uid)
    sess = Session(vol, model="grabcut", autosave=True)
    obj = sess.new_object("lesion")
    sess.add_box(obj, 1, (1, 1, 3, 2))
    sess.autosave.close()
    (sidecar,) = tmp_path.glob("study.series-*.slicesam")
    back = Session.restore(folder, model="grabcut", resume=False)
    assert back.object_ids == [obj] and back.objects[obj].name == "lesion"
    np.testing.assert_array_equal(back.labels, sess.labels)
    assert back.volume.geometry.series_uid == ct_uid


def test_each_series_of_a_folder_keeps_its_own_autosave(tmp_path) -> None:
    """Two series in one folder: a session on the second does not push the first one's
    sidecar aside, and each restores from its own."""
    from slicesam import find_autosave
    from slicesam.engine.session import Session

    folder, ct_uid, mr_uid = two_series(tmp_path)
    sessions = {}
    for uid, name in ((ct_uid, "liver"), (mr_uid, "kidney")):
        sess = Session(load_volume(folder, series=uid), model="grabcut", autosave=True)
        obj = sess.new_object(name)
        sess.add_box(obj, 1, (1, 1, 3, 2))
        sess.autosave.close()
        sessions[uid] = sess
    sidecars = sorted(tmp_path.glob("study.series-*.slicesam"))
    assert len(sidecars) == 2 and not list(tmp_path.glob("*-previous"))
    for uid, sess in sessions.items():
        sidecar = find_autosave(load_volume(folder, series=uid))
        back = Session.restore(sidecar, model="grabcut", resume=False)
        assert back.volume.geometry.series_uid == uid
        np.testing.assert_array_equal(back.labels, sess.labels)


def test_a_read_only_pacs_export_keeps_its_session_and_embeddings_in_the_user_cache(
    tmp_path, monkeypatch
) -> None:
    """A series in a folder the user may not write (a PACS export, a CD): the sidecar goes to
    the user cache, restoring from the folder finds it there, and a second session on the
    series starts with every embedding from the disk cache."""
    import slicesam.engine.autosave as autosave_mod
    from fakes import PackingModel
    from slicesam.engine.session import Session

    cache = tmp_path / "cache"
    monkeypatch.setenv("SLICESAM_CACHE_DIR", str(cache))
    export = tmp_path / "pacs" / "CT"
    stack = np.zeros((6, 16, 16), np.uint16)
    stack[1:5, 4:12, 5:11] = 1300
    write_series(export, stack)
    monkeypatch.setattr(
        autosave_mod, "_writable_dir", lambda folder: not str(folder).startswith(str(export.parent))
    )
    before = sorted(p.name for p in export.parent.iterdir())
    vol = load_volume(export)
    first = PackingModel()
    sess = Session(vol, model=first, autosave=True, disk_cache=True)
    obj = sess.new_object("block")
    sess.add_box(obj, 3, (4, 3, 11, 12))
    sess.propagate(obj)
    sess.autosave.close()
    assert sorted(p.name for p in export.parent.iterdir()) == before, "nothing in the export"
    assert str(sess.autosave.path).startswith(str(cache))

    back = Session.restore(export, model=PackingModel(), resume=False)
    np.testing.assert_array_equal(back.labels, sess.labels)
    second = PackingModel()
    again = Session(load_volume(export), model=second, disk_cache=True)
    for z in range(again.shape[0]):
        again.embed(z)
    assert second.embed_calls == [], "every slice came from the disk cache"


def test_series_sidecars_in_the_user_cache_are_found_but_not_their_backups(
    tmp_path, monkeypatch
) -> None:
    """A read-only folder with two series: the sidecars go to the user cache, one per series;
    restoring from the folder path finds them and never picks a backup."""
    import slicesam.engine.autosave as autosave_mod
    from slicesam import find_autosave
    from slicesam.engine.session import Session

    monkeypatch.setenv("SLICESAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(autosave_mod, "_writable_dir", lambda folder: False)
    folder, ct_uid, _mr_uid = two_series(tmp_path)
    vol = load_volume(folder, series=ct_uid)
    for name in ("first", "second"):  # the second moves the first aside as its backup
        sess = Session(vol, model="grabcut", autosave=True)
        sess.add_box(sess.new_object(name), 1, (1, 1, 3, 2))
        sess.autosave.close()
    assert sess.autosave.backup is not None and sess.autosave.backup.is_dir()
    assert find_autosave(vol) == sess.autosave.path
    found = find_autosave(folder)
    assert found == sess.autosave.path, found
    back = Session.restore(folder, model="grabcut", resume=False)
    assert [o.name for o in back.objects.values()] == ["second"]
