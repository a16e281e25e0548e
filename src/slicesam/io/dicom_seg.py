"""DICOM Segmentation objects (DICOM-SEG) for labels of a DICOM series, with highdicom.

Writing: one segment per label value present, named and coloured, BINARY, referencing the
source series' SOP instances and frame of reference; patient and study attributes are copied
from the source slices by highdicom, never made up. Only the SEG's own Series and SOP Instance
UIDs (and each segment's tracking UID) are new. A source series whose study, series or frame
of reference UID was blanked (some anonymisers do that) cannot be referenced: writing refuses
and says so.

Each segment carries its label value as TrackingID ``"slicesam label N"``, so reading the SEG
back gives the same label values voxel for voxel; a SEG made elsewhere (3D Slicer, OHIF) reads
with its segment numbers as label values.

Imports highdicom and pydicom lazily (``import slicesam`` never imports them).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slicesam import __version__
from slicesam.errors import VolumeReadError, VolumeWriteError
from slicesam.io.dicom import DicomGeometry
from slicesam.io.dicom_headers import SEGMENTATION_SOP_CLASSES

#: TrackingID of a segment written by slicesam: its label value.
_TRACKING_RE = re.compile(r"^slicesam label (\d+)$")
#: Default segment colours (RGB 0-255), cycled by label value, when none are given.
DEFAULT_COLORS: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
    (127, 127, 127),
)


#: Patient and study attributes of type 2 (present, may be empty) that a SEG copies from its
#: source; a source without one gets it empty (unknown), never a made-up value.
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


@dataclass
class SegLabels:
    """Labels read from a DICOM-SEG.

    Attributes:
        labels: (z, y, x) uint16 (uint32 when a value needs it) label volume on the grid of
            the series the SEG references, 0 = background.
        names: label value -> segment label.
        colors: label value -> recommended display colour, RGB 0-255 (segments without one
            are absent).
        series_uid: the SeriesInstanceUID the SEG references ("" when it names none).
    """

    labels: np.ndarray
    names: dict[int, str] = field(default_factory=dict)
    colors: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    series_uid: str = ""


def default_color(value: int) -> tuple[int, int, int]:
    """The colour a label value gets when none is given (a 10-colour cycle)."""
    return DEFAULT_COLORS[(int(value) - 1) % len(DEFAULT_COLORS)]


def _segment_label(value: int, names: Mapping[int, str] | None) -> str:
    """The segment's name as DICOM allows it (LO: 64 characters, no backslash or control
    characters); "label N" when no name is given."""
    name = (names or {}).get(int(value))
    text = re.sub(r"[\\\x00-\x1f\x7f]", " ", str(name)).strip() if name else ""
    return (text or f"label {int(value)}")[:64]


def check_seg_possible(geometry: Any, path: Path) -> None:
    """Fail before any work when labels on a volume of this ``geometry`` cannot become a
    DICOM-SEG at ``path``: the volume is not a DICOM series, or the series lacks a UID the SEG
    must reference.

    Raises:
        VolumeWriteError: naming what is missing and what to do instead.
    """
    if not isinstance(geometry, DicomGeometry):
        raise VolumeWriteError(
            f"cannot write {path.name} as DICOM-SEG: a segmentation object references the "
            "slices of a DICOM series, and this volume was not loaded from one (load the "
            "series folder, or save as .nii.gz); nothing was written"
        )
    missing = [
        what
        for what, value in (
            ("StudyInstanceUID", geometry.study_uid),
            ("SeriesInstanceUID", geometry.series_uid),
            ("FrameOfReferenceUID", geometry.frame_of_reference_uid),
        )
        if not value
    ]
    if not all(geometry.sop_instance_uids):
        missing.append("SOPInstanceUID")
    if missing:
        raise VolumeWriteError(
            f"cannot write {path.name} as DICOM-SEG: the source series has no "
            f"{' and '.join(missing)} (blank or removed, e.g. by an anonymiser), and a "
            "segmentation object must reference its series and study by these UIDs; slicesam "
            "does not invent them. Save as .nii.gz instead, or re-export the series with its "
            "UIDs; nothing was written"
        )


def _source_datasets(geometry: DicomGeometry, path: Path) -> list[Any]:
    """The headers of the series' slices in source order, checked against ``geometry``.

    Blank SOP Instance/Class UIDs of a dataset are taken from its file meta (the standard
    makes them equal) so highdicom can reference the slice, and absent type-2 patient/study
    attributes are added empty; nothing else is changed.
    """
    import pydicom

    check_seg_possible(geometry, path)
    if len(geometry.source_files) != len(geometry.sop_instance_uids):
        raise VolumeWriteError(
            f"cannot write {path.name} as DICOM-SEG: the volume does not record its slice "
            "files; load the series folder again with load_volume; nothing was written"
        )
    datasets = []
    for file, uid in zip(geometry.source_files, geometry.sop_instance_uids, strict=True):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(file, stop_before_pixels=True)
        except Exception as exc:
            raise VolumeWriteError(
                f"cannot write {path.name} as DICOM-SEG: the source slice {file} can no "
                f"longer be read ({type(exc).__name__}); nothing was written"
            ) from exc
        meta = getattr(ds, "file_meta", None) or {}
        for keyword, meta_keyword in (
            ("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
            ("SOPClassUID", "MediaStorageSOPClassUID"),
        ):
            value = meta.get(meta_keyword)
            if not str(ds.get(keyword, "") or "").strip() and value:
                setattr(ds, keyword, str(value))
        for keyword in _TYPE2_COPIED:
            if keyword not in ds:  # type 2: present, maybe empty; an empty value says "unknown"
                setattr(ds, keyword, "")
        if str(ds.get("SOPInstanceUID", "")).strip() != uid:
            raise VolumeWriteError(
                f"cannot write {path.name} as DICOM-SEG: {file} is not the slice it was when "
                "the series was loaded (its SOPInstanceUID changed); load the series again; "
                "nothing was written"
            )
        datasets.append(ds)
    return datasets


def build_dicom_seg(
    path: Path,
    labels: np.ndarray,
    geometry: DicomGeometry,
    names: Mapping[int, str] | None = None,
    colors: Mapping[int, tuple[int, int, int]] | None = None,
) -> Any:
    """A BINARY DICOM-SEG (a highdicom ``Segmentation``, saved with ``.save_as(file)``) of a
    (z, y, x) label volume of a DICOM series.

    Args:
        path: the file it is meant for (named in messages).
        labels: (z, y, x) unsigned integer labels on the series' loaded grid.
        geometry: the series' :class:`DicomGeometry` (from ``load_volume(folder).geometry``).
        names: label value -> segment name (default ``"label N"``).
        colors: label value -> RGB 0-255 display colour (default :func:`default_color`).

    Raises:
        VolumeWriteError: no label to write, the series lacks the UIDs a SEG references, its
            files changed or vanished since loading, or highdicom refuses the object.
    """
    values = [int(v) for v in np.unique(labels) if v != 0]
    if not values:
        raise VolumeWriteError(
            f"cannot write {path.name} as DICOM-SEG: the labels are empty (a segmentation "
            "object needs at least one segment); nothing was written"
        )
    sources = _source_datasets(geometry, path)

    import highdicom as hd
    from pydicom.sr.codedict import codes

    frames = np.ascontiguousarray(geometry.to_source(labels))
    # segment numbers 1..N in order of label value (values may be sparse: 1, 7, 40000)
    number_of = np.searchsorted(np.asarray(values, dtype=frames.dtype), frames) + 1
    dtype = np.uint16 if len(values) > 255 else np.uint8
    segment_numbers = np.where(frames > 0, number_of, 0).astype(dtype)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="napari-slicesam",
        family=codes.cid7162.ArtificialIntelligence,
        version=__version__,
    )
    descriptions = []
    for number, value in enumerate(values, start=1):
        rgb = (colors or {}).get(value) or default_color(value)
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=_segment_label(value, names),
                segmented_property_category=codes.SCT.Tissue,
                segmented_property_type=codes.SCT.Tissue,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
                algorithm_identification=algorithm,
                tracking_id=f"slicesam label {value}",
                tracking_uid=hd.UID(),
                display_color=hd.color.CIELabColor.from_rgb(*(int(c) for c in rgb[:3])),
            )
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seg = hd.seg.Segmentation(
                source_images=sources,
                pixel_array=segment_numbers,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=descriptions,
                series_instance_uid=hd.UID(),
                series_number=1,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer="napari-slicesam",
                manufacturer_model_name="slicesam",
                software_versions=__version__,
                device_serial_number="n/a",
                series_description="slicesam segmentation",
                content_label="SLICESAM",
                content_description="Segmentation made with napari-slicesam",
            )
    except Exception as exc:
        raise VolumeWriteError(
            f"highdicom could not build the DICOM-SEG {path.name}: {type(exc).__name__}: {exc}"
        ) from exc
    return seg


# --------------------------------------------------------------------------- reading


def _read_seg(path: Path) -> Any:
    """The Segmentation at ``path`` (highdicom), or a clear error."""
    import highdicom as hd
    import pydicom

    if not path.is_file():
        raise VolumeReadError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
    except Exception as exc:
        raise VolumeReadError(
            f"{path} is not a readable DICOM file ({type(exc).__name__}); a DICOM-SEG file "
            "was expected"
        ) from exc
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if sop_class not in SEGMENTATION_SOP_CLASSES:
        raise VolumeReadError(
            f"{path} is a DICOM file but not a Segmentation object (SOP class "
            f"{getattr(ds.get('SOPClassUID'), 'name', sop_class) or 'missing'}); to open an "
            "image series, give its folder"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return hd.seg.Segmentation.from_dataset(ds, copy=False)
    except Exception as exc:
        raise VolumeReadError(
            f"{path} is a damaged DICOM-SEG ({type(exc).__name__}: {exc})"
        ) from exc


@dataclass(frozen=True)
class SegReference:
    """What a DICOM-SEG refers to: the series UID and SOP instance UIDs of its source slices
    and its frame of reference ("" when absent)."""

    series_uid: str
    sop_instance_uids: frozenset[str]
    frame_of_reference_uid: str


def seg_reference(path: str | Path) -> SegReference:
    """The series a DICOM-SEG file references (header only)."""
    import pydicom

    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(p, stop_before_pixels=True)
    except Exception as exc:
        raise VolumeReadError(f"{p} is not a readable DICOM file ({type(exc).__name__})") from exc
    if str(ds.get("SOPClassUID", "") or "") not in SEGMENTATION_SOP_CLASSES:
        raise VolumeReadError(f"{p} is not a DICOM Segmentation object")
    return _reference_of(ds)


def _reference_of(ds: Any) -> SegReference:
    series_uid, uids = "", set()
    for item in ds.get("ReferencedSeriesSequence", []) or []:
        series_uid = series_uid or str(item.get("SeriesInstanceUID", "") or "")
        for inst in item.get("ReferencedInstanceSequence", []) or []:
            uids.add(str(inst.get("ReferencedSOPInstanceUID", "") or ""))
    uids.discard("")
    return SegReference(series_uid, frozenset(uids), str(ds.get("FrameOfReferenceUID", "") or ""))


def _label_value(description: Any) -> int:
    match = _TRACKING_RE.match(str(description.get("TrackingID", "") or ""))
    return int(match.group(1)) if match else int(description.SegmentNumber)


def _display_rgb(description: Any) -> tuple[int, int, int] | None:
    import highdicom as hd

    value = description.get("RecommendedDisplayCIELabValue")
    if value is None:
        return None
    try:
        rgb = hd.color.CIELabColor.from_dicom_value(list(value)).to_rgb()
    except Exception:
        return None
    return tuple(int(c) for c in rgb)  # type: ignore[return-value]


def read_dicom_seg(path: str | Path, geometry: DicomGeometry) -> SegLabels:
    """Read a DICOM-SEG onto the loaded grid of the series it references.

    Args:
        path: the SEG file.
        geometry: the geometry of the referenced series (``load_volume(folder).geometry``).

    Returns:
        :class:`SegLabels` whose ``labels`` has the series volume's (z, y, x) shape; BINARY
        and LABELMAP segments as stored, FRACTIONAL ones thresholded at one half.

    Raises:
        VolumeReadError: not a SEG, a SEG of another series or frame of reference, or segments
            that overlap (a label volume holds one object per voxel).
    """
    p = Path(path)
    seg = _read_seg(p)
    ref = _reference_of(seg)
    ours = set(geometry.sop_instance_uids)
    if (ref.series_uid and geometry.series_uid and ref.series_uid != geometry.series_uid) or (
        ref.sop_instance_uids and not ref.sop_instance_uids <= ours
    ):
        raise VolumeReadError(
            f"{p.name} segments another series ({ref.series_uid or 'unnamed'}), not the one "
            f"loaded ({geometry.series_uid or 'unnamed'}); open the series it references"
        )
    if (
        ref.frame_of_reference_uid
        and geometry.frame_of_reference_uid
        and ref.frame_of_reference_uid != geometry.frame_of_reference_uid
    ):
        raise VolumeReadError(
            f"{p.name} is in another frame of reference than the loaded series; open the "
            "series it references"
        )
    shape = (len(geometry.sop_instance_uids), geometry.shape[1], geometry.shape[0])
    frames: np.ndarray | None = None
    names: dict[int, str] = {}
    colors: dict[int, tuple[int, int, int]] = {}
    fractional = str(seg.get("SegmentationType", "")) == "FRACTIONAL"
    for description in seg.SegmentSequence:
        number = int(description.SegmentNumber)
        value = _label_value(description)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mask = seg.get_pixels_by_source_instance(
                    source_sop_instance_uids=list(geometry.sop_instance_uids),
                    segment_numbers=[number],
                    assert_missing_frames_are_empty=True,
                )[..., 0]
        except Exception as exc:
            raise VolumeReadError(
                f"could not read segment {number} of {p.name}: {type(exc).__name__}: {exc}"
            ) from exc
        mask = mask >= 0.5 if fractional else mask > 0
        if mask.shape != shape:
            raise VolumeReadError(
                f"{p.name}: segment {number} has frames of shape {mask.shape[1:]}, the series "
                f"{shape[1:]}"
            )
        if frames is None:
            frames = np.zeros(shape, np.uint32 if value > 65535 else np.uint16)
        elif value > np.iinfo(frames.dtype).max:
            frames = frames.astype(np.uint32)
        if (frames[mask] != 0).any():
            raise VolumeReadError(
                f"{p.name}: segment {number} ({description.SegmentLabel!r}) overlaps another "
                "segment; a label volume holds one object per voxel"
            )
        frames[mask] = value
        names[value] = str(description.SegmentLabel)
        rgb = _display_rgb(description)
        if rgb is not None:
            colors[value] = rgb
    if frames is None:
        frames = np.zeros(shape, np.uint16)
    labels = np.ascontiguousarray(geometry.to_zyx(frames))
    return SegLabels(labels, names, colors, ref.series_uid)
