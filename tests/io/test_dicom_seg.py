"""DICOM-SEG: labels of a DICOM series written with highdicom and read back voxel for voxel.

Every series is synthetic (``dicom_factory``); nothing reads ``../shared``.
"""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from dicom_factory import AXIAL, SECRETS, cosines, ct_stack, write_series
from pydicom.uid import JPEG2000Lossless, generate_uid

from slicesam.errors import VolumeReadError, VolumeWriteError
from slicesam.io import load_labels, load_volume, save_labels
from slicesam.io.dicom_seg import read_dicom_seg, seg_reference

ORIENTATIONS = {
    "axial": (AXIAL, 2.5),
    "axial_descending": (AXIAL, -2.5),
    "sagittal_flipped": ((0, -1, 0, 0, 0, -1), -1.5),
    "coronal": ((1, 0, 0, 0, 0, -1), 2.0),
    "oblique": (cosines(20.0), 2.2),
}


def labels_for(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Three objects with label values 1, 3 and 7 (not consecutive) in a (z, y, x) volume."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint16)
    for value in (1, 3, 7):
        z0, y0, x0 = (int(rng.integers(0, max(1, n - 2))) for n in shape)
        labels[z0 : z0 + 2, y0 : y0 + 3, x0 : x0 + 3] = value
    labels[0, 0, 0] = 7  # one voxel alone on a slice edge
    return labels


def series(tmp_path: Path, case: str = "axial", **kwargs) -> Path:
    iop, step = ORIENTATIONS[case]
    folder = tmp_path / f"series_{case}"
    write_series(folder, ct_stack((6, 9, 8)), iop=iop, step=step, **kwargs)
    return folder


@pytest.mark.parametrize("case", sorted(ORIENTATIONS))
def test_round_trip_voxel_for_voxel(tmp_path, case) -> None:
    vol = load_volume(series(tmp_path, case))
    labels = labels_for(vol.shape)
    out = save_labels(
        tmp_path / "seg.dcm", labels, like=vol, names={1: "liver", 3: "spleen", 7: "kidney"}
    )
    np.testing.assert_array_equal(load_labels(out, like=vol), labels)
    back = read_dicom_seg(out, vol.geometry)
    assert back.names == {1: "liver", 3: "spleen", 7: "kidney"}
    assert back.series_uid == vol.geometry.series_uid


def test_highdicom_and_pydicom_read_what_was_written(tmp_path) -> None:
    folder = series(tmp_path)
    vol = load_volume(folder)
    labels = labels_for(vol.shape)
    out = save_labels(tmp_path / "seg.dcm", labels, like=vol, names={3: "spleen"})

    seg = hd.seg.segread(out)
    assert seg.SegmentationType == "BINARY"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["label 1", "spleen", "label 7"]
    source = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    # patient and study copied from the source, never made up; the SEG is a new series
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "FrameOfReferenceUID"):
        assert seg.get(keyword) == source.get(keyword), keyword
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID
    ref = seg_reference(out)
    assert ref.series_uid == source.SeriesInstanceUID
    assert ref.sop_instance_uids == set(vol.geometry.sop_instance_uids)
    # highdicom's own reading by source instance gives the frames of the source grid
    frames = seg.get_pixels_by_source_instance(
        list(vol.geometry.sop_instance_uids),
        combine_segments=True,
        assert_missing_frames_are_empty=True,
    )
    expected = vol.geometry.to_source(labels)
    lut = np.array([0, 1, 0, 2, 0, 0, 0, 3])
    np.testing.assert_array_equal(frames, lut[expected])

    plain = pydicom.dcmread(out)
    assert plain.Modality == "SEG" and plain.NumberOfFrames >= 1


def test_colours_are_written_and_read(tmp_path) -> None:
    vol = load_volume(series(tmp_path))
    labels = labels_for(vol.shape)
    out = save_labels(tmp_path / "seg.dcm", labels, like=vol, colors={1: (255, 0, 0)})
    colors = read_dicom_seg(out, vol.geometry).colors
    assert set(colors) == {1, 3, 7}
    assert np.allclose(colors[1], (255, 0, 0), atol=2)
    assert len(set(colors.values())) == 3


def test_compressed_source_series(tmp_path) -> None:
    from pydicom.pixels import get_decoder

    if not get_decoder(JPEG2000Lossless).is_available:
        pytest.fail("the JPEG 2000 decoder (pylibjpeg-openjpeg, a dependency) is missing")
    folder = series(tmp_path, syntax=JPEG2000Lossless)
    vol = load_volume(folder)
    labels = labels_for(vol.shape, seed=3)
    out = save_labels(tmp_path / "seg.dcm", labels, like=vol)
    np.testing.assert_array_equal(load_labels(out, like=vol), labels)


def test_series_folder_with_its_seg_still_loads(tmp_path) -> None:
    folder = series(tmp_path)
    vol = load_volume(folder)
    labels = labels_for(vol.shape)
    save_labels(folder / "seg.dcm", labels, like=vol)
    again = load_volume(folder)
    np.testing.assert_array_equal(again.data, vol.data)
    np.testing.assert_array_equal(load_labels(folder / "seg.dcm", like=again), labels)


def test_empty_labels_are_refused_and_nothing_is_written(tmp_path) -> None:
    vol = load_volume(series(tmp_path))
    with pytest.raises(VolumeWriteError, match="labels are empty"):
        save_labels(tmp_path / "out" / "seg.dcm", np.zeros(vol.shape, np.uint8), like=vol)
    assert not any((tmp_path / "out").glob("*"))


def test_a_volume_not_from_dicom_is_refused(tmp_path) -> None:
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.eye(4)), tmp_path / "ct.nii.gz")
    vol = load_volume(tmp_path / "ct.nii.gz")
    labels = np.ones(vol.shape, np.uint8)
    with pytest.raises(VolumeWriteError, match="not loaded from one"):
        save_labels(tmp_path / "seg.dcm", labels, like=vol)
    assert not (tmp_path / "seg.dcm").exists()


@pytest.mark.parametrize("blank", ["StudyInstanceUID", "SeriesInstanceUID"])
def test_blank_uids_are_not_invented(tmp_path, blank) -> None:
    folder = series(tmp_path)
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        setattr(ds, blank, "")
        ds.save_as(f)
    vol = load_volume(folder)
    with pytest.raises(VolumeWriteError) as info:
        save_labels(tmp_path / "seg.dcm", labels_for(vol.shape), like=vol)
    msg = str(info.value)
    assert blank in msg and "does not invent" in msg and "seg.dcm" in msg
    assert not any(p.suffix == ".dcm" for p in tmp_path.iterdir())
    for secret in SECRETS:
        assert secret not in msg


def test_blank_sop_uids_are_taken_from_the_file_meta(tmp_path) -> None:
    """Anonymisers that blank SOPInstanceUID leave it in the file meta (the shared CT)."""
    folder = series(tmp_path)
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.SOPInstanceUID = ""
        ds.save_as(f)
    vol = load_volume(folder)
    labels = labels_for(vol.shape)
    out = save_labels(tmp_path / "seg.dcm", labels, like=vol)
    np.testing.assert_array_equal(load_labels(out, like=vol), labels)


def test_changed_source_files_are_refused(tmp_path) -> None:
    folder = series(tmp_path)
    vol = load_volume(folder)
    first = vol.geometry.source_files[0]
    ds = pydicom.dcmread(first)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(first)
    with pytest.raises(VolumeWriteError, match="not the slice it was"):
        save_labels(tmp_path / "seg.dcm", labels_for(vol.shape), like=vol)


def test_a_seg_of_another_series_is_refused(tmp_path) -> None:
    one = load_volume(series(tmp_path, "axial"))
    other = load_volume(series(tmp_path, "coronal"))
    out = save_labels(tmp_path / "seg.dcm", labels_for(one.shape), like=one)
    with pytest.raises(VolumeReadError, match="segments another series"):
        load_labels(out, like=other)


def test_a_single_dcm_file_tells_how_to_load_it(tmp_path) -> None:
    vol = load_volume(series(tmp_path))
    out = save_labels(tmp_path / "seg.dcm", labels_for(vol.shape), like=vol)
    with pytest.raises(VolumeReadError, match="load_labels"):
        load_volume(out)
    image = tmp_path / "slice.dcm"
    image.write_bytes(vol.geometry.source_files[0].read_bytes())
    with pytest.raises(VolumeReadError, match="not a Segmentation"):
        load_labels(image, like=vol)


def test_a_seg_from_another_tool_reads_its_segment_numbers(tmp_path) -> None:
    """3D Slicer / OHIF SEGs carry no slicesam TrackingID: segment number = label value."""
    folder = series(tmp_path)
    vol = load_volume(folder)
    labels = labels_for(vol.shape)
    out = save_labels(tmp_path / "seg.dcm", labels, like=vol)
    ds = pydicom.dcmread(out)
    for item in ds.SegmentSequence:
        del item.TrackingID
        del item.TrackingUID
    ds.save_as(out)
    expected = np.array([0, 1, 0, 2, 0, 0, 0, 3])[labels]
    np.testing.assert_array_equal(load_labels(out, like=vol), expected)


def test_segment_cli_writes_a_seg(tmp_path, capsys, monkeypatch) -> None:
    from fakes import FakeModel
    from slicesam.cli import main
    from slicesam.models import registry

    monkeypatch.setattr(registry, "load_model", lambda *a, **k: FakeModel(box_only=True))
    stack = np.zeros((8, 24, 24), np.uint16)
    stack[2:6, 6:16, 8:18] = 1300  # a 276 HU block the fake model segments
    folder = tmp_path / "CT"
    write_series(folder, stack, series_uid=generate_uid())
    vol = load_volume(folder)
    z = vol.shape[0] // 2
    ys, xs = np.nonzero(vol.data[z] > 0)
    box = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
    prompts = tmp_path / "p.json"
    objects = [{"id": 1, "name": "block", "boxes": [{"z": z, "box": box}]}]
    prompts.write_text(json.dumps({"objects": objects}))
    out = tmp_path / "seg.dcm"
    code = main(["segment", str(folder), "--prompts", str(prompts), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    back = read_dicom_seg(out, vol.geometry)
    assert back.names == {1: "block"}
    assert (back.labels == 1).sum() > 0
    assert ((back.labels == 1) & (vol.data <= 0)).sum() == 0


def test_segment_cli_refuses_an_impossible_seg_before_loading_the_model(
    tmp_path, capsys, monkeypatch
) -> None:
    from slicesam.cli import main
    from slicesam.models import registry

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(registry, "load_model", no_model)
    folder = series(tmp_path)
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = ""
        ds.save_as(f)
    prompts = tmp_path / "p.json"
    prompts.write_text(
        json.dumps({"objects": [{"id": 1, "boxes": [{"z": 1, "box": [1, 1, 4, 4]}]}]})
    )
    code = main(
        ["segment", str(folder), "--prompts", str(prompts), "--out", str(tmp_path / "s.dcm")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "StudyInstanceUID" in err and "does not invent" in err
    assert not (tmp_path / "s.dcm").exists()


def test_sparse_and_large_label_values_round_trip(tmp_path) -> None:
    vol = load_volume(series(tmp_path))
    labels = np.zeros(vol.shape, np.uint32)
    labels[1, 2:4, 2:4] = 5
    labels[3, 4:7, 1:3] = 70_000  # beyond uint16: kept exactly through the TrackingID
    out = save_labels(tmp_path / "seg.dcm", labels, like=vol, names={70_000: "big"})
    back = load_labels(out, like=vol)
    np.testing.assert_array_equal(back, labels)
    assert read_dicom_seg(out, vol.geometry).names == {5: "label 5", 70_000: "big"}
