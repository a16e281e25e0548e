"""DICOM series reading: a folder of single-frame slices -> (z, y, x) in canonical LPS orientation.

The files are read with pydicom (imported here, lazily, so ``import slicesam`` never imports
it). A series is the set of image objects of a folder that share a SeriesInstanceUID; its slices
are ordered by their position along the slice normal (the cross product of the two
ImageOrientationPatient direction cosines, dotted with ImagePositionPatient), never by file name
or InstanceNumber, and the slice spacing comes from those positions (not SliceThickness).

Orientation convention: DICOM positions are LPS+ millimetres. The source grid is
(i, j, k) = (column, row, slice in position order); its voxel-to-world affine is converted to
RAS+ (what nibabel and :class:`~slicesam.io.nifti.NiftiGeometry` use) and the array is then
flipped/permuted exactly as the NIfTI reader does (``nibabel.orientations``, closest canonical
LPS orientation) and transposed to (z, y, x). So a DICOM series and a NIfTI file of the same
data on the same world grid load to the same ``Volume.data``:

- z runs inferior -> superior,
- y runs anterior -> posterior,
- x runs right -> left (axial slices as radiologists read them).

:class:`DicomGeometry` keeps what a writer needs to map labels back onto the source slices
(the SOP Instance UIDs in position order, the series/study/frame-of-reference UIDs, the affine
and the flips/permutation applied). Nothing from the header other than UIDs, the series
description, the modality and image geometry goes into messages: no patient identifiers.

Finding the series of a folder is :mod:`slicesam.io.dicom_folder`, reading headers
:mod:`slicesam.io.dicom_headers`, decoding pixels :mod:`slicesam.io.dicom_pixels`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.orientations import (
    apply_orientation,
    io_orientation,
    ornt_transform,
)

from slicesam.errors import VolumeReadError
from slicesam.io._common import check_fits
from slicesam.io.dicom_folder import choose_series
from slicesam.io.dicom_headers import (
    header_text,
    header_uid,
    object_kind,
    sop_class_name,
    valid_uid,
)
from slicesam.io.dicom_pixels import decoder_problem, read_pixels, rescaled
from slicesam.io.modality import normalize_modality
from slicesam.io.nifti import LPS_ORNT, NiftiGeometry, ReorientedGrid

#: Two slices' direction cosines may differ by this much (about 0.006 degrees) and count as one
#: orientation (scanners write them with 5-6 decimals).
ORIENTATION_ATOL = 1e-4
#: A slice step may differ from the median step by max(SPACING_RTOL * median, SPACING_ATOL_MM)
#: before the series counts as having missing or extra slices.
SPACING_RTOL = 0.01
SPACING_ATOL_MM = 0.01
#: A slice may lie off the line through the first slice along the normal by
#: TILT_ATOL_MM + TILT_RTOL * (its distance from the first slice) before the stack counts as
#: sheared (gantry tilt); TILT_RTOL = 1e-3 is a tilt of about 0.06 degrees.
TILT_ATOL_MM = 0.01
TILT_RTOL = 1e-3


@dataclass(eq=False)
class DicomGeometry(ReorientedGrid):
    """Source geometry of a DICOM series, enough to map labels back onto its slices.

    The source grid is (i, j, k) = (column, row, slice), slices in order of their position
    along the slice normal (which is also the order of ``sop_instance_uids``).

    Attributes:
        affine: (4, 4) float64, source voxel (i, j, k) -> RAS+ world mm (the DICOM LPS
            affine with x and y negated; see :attr:`lps_affine`). Built from
            ImageOrientationPatient, PixelSpacing, the first slice's ImagePositionPatient and
            the mean step between slice positions along the normal.
        shape: source shape (i, j, k) = (Columns, Rows, number of slices).
        ornt: (3, 2) nibabel orientation transform from the source axes (i, j, k) to LPS
            axes: the flips and the permutation applied on load.
        series_uid: SeriesInstanceUID (``None`` when the files have none, e.g. blanked by an
            anonymiser).
        sop_instance_uids: SOPInstanceUID of each slice, slice k of the source grid first
            (the file meta's MediaStorageSOPInstanceUID when the dataset's is blank; "" when
            both are).
        study_uid: StudyInstanceUID (``None`` when absent).
        frame_of_reference_uid: FrameOfReferenceUID (``None`` when absent).
        sop_class_uid: SOPClassUID of the slices (e.g. CT Image Storage; the file meta's
            MediaStorageSOPClassUID when the dataset's is blank).
        modality: the header's Modality as written ("CT", "MR", "PT", ...).
        source_files: the slice files, slice k of the source grid first (a DICOM-SEG writer
            reads their headers again to reference them and copy patient/study attributes).
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    ornt: np.ndarray
    series_uid: str | None
    sop_instance_uids: tuple[str, ...]
    study_uid: str | None = None
    frame_of_reference_uid: str | None = None
    sop_class_uid: str | None = None
    modality: str | None = None
    source_files: tuple[Path, ...] = ()

    @property
    def lps_affine(self) -> np.ndarray:
        """(4, 4) source voxel (i, j, k) -> DICOM patient (LPS+) world mm."""
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.affine

    def to_zyx(self, frames: np.ndarray) -> np.ndarray:
        """Source frames (slice k, row j, column i) -> (z, y, x) view in canonical LPS."""
        return apply_orientation(frames.transpose(2, 1, 0), self.ornt).transpose(2, 1, 0)

    def to_source(self, zyx: np.ndarray) -> np.ndarray:
        """(z, y, x) array -> source frames (slice k, row j, column i): ``[k]`` belongs to the
        slice ``sop_instance_uids[k]`` (inverse of :meth:`to_zyx`)."""
        back = ornt_transform(LPS_ORNT, io_orientation(self.affine))
        return apply_orientation(zyx.transpose(2, 1, 0), back).transpose(2, 1, 0)

    def nifti_geometry(self) -> NiftiGeometry:
        """The source grid as NIfTI geometry: voxel (i, j, k) = (column, row, slice) and
        :attr:`affine` as qform and sform (what dcm2niix writes for a series), so labels saved
        as NIfTI sit where the series does in any viewer."""
        header = nib.Nifti1Header()
        header.set_data_shape(self.shape)
        header.set_qform(self.affine, code=1)
        header.set_sform(self.affine, code=1)
        header.set_xyzt_units(xyz="mm")
        return NiftiGeometry(header, self.affine.copy(), tuple(self.shape), self.ornt.copy())


# --------------------------------------------------------------------------- header checks


def _numbers(ds: Any, keyword: str, n: int, path: Path) -> np.ndarray:
    """``n`` finite floats of a multi-valued attribute, or an error naming it."""
    try:
        value = ds.get(keyword)
        if value is None:
            raise VolumeReadError(
                f"{path} has no {keyword}: slicesam cannot place its slice in space"
            )
        single = isinstance(value, (str, bytes)) or not hasattr(value, "__iter__")
        values = [float(value)] if single else [float(v) for v in value]
    except VolumeReadError:
        raise
    except Exception as exc:
        raise VolumeReadError(
            f"{path} has an unreadable {keyword} ({type(exc).__name__}); remove or replace it"
        ) from exc
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise VolumeReadError(
            f"{path} has an invalid {keyword} ({len(values)} values, need {n} finite numbers)"
        )
    return arr


def _number(ds: Any, keyword: str, default: float, path: Path) -> float:
    """A single finite float attribute (``default`` when absent)."""
    try:
        value = ds.get(keyword)
        out = default if value is None or value == "" else float(value)
    except Exception as exc:
        raise VolumeReadError(
            f"{path} has an unreadable {keyword} ({type(exc).__name__}); remove or replace it"
        ) from exc
    if not math.isfinite(out):
        raise VolumeReadError(f"{path} has a non-finite {keyword}")
    return out


def _integer(ds: Any, keyword: str, default: int, path: Path) -> int:
    try:
        value = ds.get(keyword)
        return default if value is None or value == "" else int(value)
    except Exception as exc:
        raise VolumeReadError(
            f"{path} has an unreadable {keyword} ({type(exc).__name__}); remove or replace it"
        ) from exc


@dataclass
class _Slice:
    path: Path
    ds: Any
    rows: int
    columns: int
    iop: np.ndarray
    ipp: np.ndarray
    pixel_spacing: np.ndarray  # (row spacing, column spacing) mm
    slope: float
    intercept: float
    transfer_syntax: str
    position: float = 0.0  # along the slice normal


def _slice_info(path: Path, ds: Any) -> _Slice:
    """Check one header of the chosen series and extract its geometry."""
    try:
        enhanced = any(
            k in ds for k in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")
        )
    except Exception:
        enhanced = False
    frames = _integer(ds, "NumberOfFrames", 1, path)
    if frames > 1 or enhanced:
        what = f"{frames} frames" if frames > 1 else "an enhanced (functional groups) object"
        raise VolumeReadError(
            f"{path} is a multi-frame DICOM object ({what}); slicesam reads series of "
            "single-frame slices (one file per slice). Convert it first (e.g. with dcm2niix "
            "to NIfTI)"
        )
    samples = _integer(ds, "SamplesPerPixel", 1, path)
    if samples != 1:
        raise VolumeReadError(
            f"{path} is a colour image ({samples} samples per pixel); slicesam reads "
            "greyscale series"
        )
    rows, columns = _integer(ds, "Rows", 0, path), _integer(ds, "Columns", 0, path)
    if rows <= 0 or columns <= 0:
        raise VolumeReadError(
            f"{path} has no valid image size (Rows {rows or 'missing'}, Columns "
            f"{columns or 'missing'}): a damaged or incomplete header"
        )
    iop = _numbers(ds, "ImageOrientationPatient", 6, path)
    ipp = _numbers(ds, "ImagePositionPatient", 3, path)
    spacing = _numbers(ds, "PixelSpacing", 2, path)
    if not (spacing > 0).all():
        raise VolumeReadError(f"{path} has a non-positive PixelSpacing {tuple(spacing.tolist())}")
    row_dir, col_dir = iop[:3], iop[3:]
    norms = (np.linalg.norm(row_dir), np.linalg.norm(col_dir))
    if (
        min(norms) < 1e-6
        or abs(norms[0] - 1) > 1e-2
        or abs(norms[1] - 1) > 1e-2
        or abs(float(row_dir @ col_dir)) > 1e-2
    ):
        raise VolumeReadError(
            f"{path} has an invalid ImageOrientationPatient (direction cosines "
            f"{tuple(round(float(v), 6) for v in iop)} are not two perpendicular unit vectors)"
        )
    slope = _number(ds, "RescaleSlope", 1.0, path)
    intercept = _number(ds, "RescaleIntercept", 0.0, path)
    if slope == 0:
        raise VolumeReadError(f"{path} has RescaleSlope 0: every voxel would be the same value")
    try:
        syntax = str(ds.file_meta.TransferSyntaxUID)
    except Exception as exc:
        raise VolumeReadError(
            f"{path} has no readable TransferSyntaxUID in its file meta information"
        ) from exc
    return _Slice(path, ds, rows, columns, iop, ipp, spacing, slope, intercept, syntax)


def _same(values: list, describe: Any, what: str, folder: Path, series_uid: str) -> None:
    """Refuse when the slices disagree on ``what`` (``describe`` maps a value to text)."""
    counts: dict[str, int] = {}
    for v in values:
        counts[describe(v)] = counts.get(describe(v), 0) + 1
    if len(counts) > 1:
        parts = ", ".join(f"{k} ({n} slice{'s' if n != 1 else ''})" for k, n in counts.items())
        raise VolumeReadError(
            f"the slices of series {series_uid} in {folder} differ in {what}: {parts}; "
            "slicesam reads a series whose slices share one grid"
        )


def _check_orientation(slices: list[_Slice], folder: Path, uid: str) -> np.ndarray:
    """The common ImageOrientationPatient, or an error (non-parallel slices, localizer)."""
    keys = [tuple(np.round(s.iop / ORIENTATION_ATOL).astype(np.int64).tolist()) for s in slices]
    common = Counter(keys).most_common(1)[0][0]
    ref = slices[keys.index(common)].iop  # the orientation most slices share
    worst = max(float(np.abs(s.iop - ref).max()) for s in slices)
    if worst > ORIENTATION_ATOL:
        n_other = sum(float(np.abs(s.iop - ref).max()) > ORIENTATION_ATOL for s in slices)
        raise VolumeReadError(
            f"the slices of series {uid} in {folder} are not parallel: {n_other} of "
            f"{len(slices)} have another ImageOrientationPatient (direction cosines differ by up "
            f"to {worst:.3g}), e.g. a localizer or a re-angled stack in the same series; "
            "slicesam reads stacks of parallel slices"
        )
    return ref


def _sort_and_step(
    slices: list[_Slice], normal: np.ndarray, folder: Path, uid: str
) -> tuple[list[_Slice], float]:
    """Slices in order along ``normal`` and the slice step (mm) from their positions."""
    for s in slices:
        s.position = float(s.ipp @ normal)
    ordered = sorted(slices, key=lambda s: s.position)
    n = len(ordered)
    if n == 1:
        return ordered, 0.0
    positions = np.array([s.position for s in ordered])
    steps = np.diff(positions)
    median = float(np.median(steps))
    tol = max(SPACING_RTOL * median, SPACING_ATOL_MM)
    dup = int(np.count_nonzero(steps <= SPACING_ATOL_MM))
    if dup:
        where = int(np.argmin(steps))
        raise VolumeReadError(
            f"series {uid} in {folder} has duplicated slices: {dup} of {n} slices share a "
            f"position with another (e.g. {ordered[where].path.name} and "
            f"{ordered[where + 1].path.name} at {positions[where]:.3f} mm along the slice "
            "normal); several acquisitions, echoes or copies in one series? Remove the extra "
            "files or export one acquisition per series"
        )
    first = ordered[0].ipp
    off = [
        float(np.linalg.norm((s.ipp - first) - (s.position - ordered[0].position) * normal))
        for s in ordered
    ]
    limits = [TILT_ATOL_MM + TILT_RTOL * abs(s.position - ordered[0].position) for s in ordered]
    bad = [k for k in range(n) if off[k] > limits[k]]
    if bad:
        k = bad[-1]
        span = abs(ordered[k].position - ordered[0].position)
        angle = math.degrees(math.atan2(off[k], span)) if span > 0 else 90.0
        raise VolumeReadError(
            f"series {uid} in {folder} is not a straight stack: slice positions move sideways "
            f"along the stack ({off[k]:.3g} mm over {span:.3g} mm, a gantry tilt of about "
            f"{angle:.2g} degrees); slicesam reads stacks whose slices lie along their normal. "
            "Resample the series first (e.g. dcm2niix corrects gantry tilt)"
        )
    uneven = np.abs(steps - median) > tol
    if uneven.any():
        k = int(np.argmax(np.abs(steps - median)))
        missing = round(float(steps[k]) / median) - 1
        hint = (
            f"about {missing} slice{'s' if missing != 1 else ''} missing there"
            if missing >= 1
            else "slices from another acquisition mixed in?"
        )
        raise VolumeReadError(
            f"series {uid} in {folder} has uneven slice spacing: steps from "
            f"{float(steps.min()):.4g} to {float(steps.max()):.4g} mm (median {median:.4g} mm, "
            f"tolerance {tol:.2g} mm); the step furthest from the median is between "
            f"{ordered[k].path.name} and "
            f"{ordered[k + 1].path.name} ({hint}). Copy the complete series"
        )
    return ordered, float((positions[-1] - positions[0]) / (n - 1))


def _header_modality(text: str) -> str | None:
    """slicesam's modality for a DICOM Modality code (CT, MR), else None (detect/unknown)."""
    if text.upper() not in ("CT", "MR"):
        return None
    return normalize_modality(text)


def read_dicom_series(
    path: Path, series: str | None = None, max_bytes: int | None = None
) -> tuple[np.ndarray, tuple[float, float, float], str, DicomGeometry, dict]:
    """Read one DICOM series from a folder into a (z, y, x) array in canonical LPS orientation.

    Args:
        path: a folder holding the series' files (one single-frame image per file; any file
            names; files that are not DICOM and DICOMDIR indexes are skipped; subfolders are
            not searched).
        series: the SeriesInstanceUID to load when the folder holds several image series
            (Segmentation objects and other non-image series do not count).
        max_bytes: memory the read may use; ``None``: the memory available now. Checked
            from the headers before any pixel is read; only the chosen series' pixels are
            read.

    Returns:
        ``(data, spacing, unit, geometry, meta)``: ``data`` (z, y, x), C-contiguous, with
        RescaleSlope/RescaleIntercept applied (CT in Hounsfield units): the stored dtype when
        no slice is rescaled, int16 when the rescale is integral and the values fit, else
        float32; ``spacing`` (z, y, x) in mm from PixelSpacing and the slice positions (not
        SliceThickness); ``unit`` "mm"; ``geometry`` a :class:`DicomGeometry`; ``meta`` with
        "format" ("dicom"), "source_shape" (slices, rows, columns), "source_axcodes",
        "series_uid", "image_series_in_folder", "series_description", "dicom_modality",
        "modality" (slicesam's name for CT/MR, else None), "transfer_syntaxes", "rescaled",
        and the channel keys of the other readers ("channel" None, "n_channels" 1,
        "channel_axis" None).

    Raises:
        VolumeReadError: a folder with no DICOM series; several image series without
            ``series=`` or an unknown ``series=`` (both list the series: UID, description,
            modality, number of slices); a damaged file; multi-frame, colour or non-image
            objects; slices of different sizes, orientations (gantry tilt, localizers) or
            pixel spacings; duplicated or missing slices (uneven steps between positions);
            compressed pixel data no installed package can decode (naming the packages that
            would); more memory needed than ``max_bytes``.
    """
    try:
        import pydicom  # noqa: F401
    except ImportError as exc:
        raise VolumeReadError(
            f"cannot read the DICOM folder {path}: pydicom is not installed (pip install pydicom)"
        ) from exc

    chosen = choose_series(path, series)
    uid = chosen.label
    for f, ds in chosen.items:
        if object_kind(ds) != "image":
            raise VolumeReadError(
                f"{f} is not an image slice ({sop_class_name(ds)}) but belongs to the series "
                f"{uid} in {path}; slicesam reads series of image slices: move it out of the "
                "folder"
            )
    slices = [_slice_info(f, ds) for f, ds in chosen.items]
    _same([(s.rows, s.columns) for s in slices], lambda v: f"{v[0]}x{v[1]}", "size", path, uid)
    iop = _check_orientation(slices, path, uid)
    _same(
        [tuple(np.round(s.pixel_spacing, 4)) for s in slices],
        lambda v: f"PixelSpacing {v[0]:g}\\{v[1]:g}",
        "pixel spacing",
        path,
        uid,
    )
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    normal = normal / np.linalg.norm(normal)
    ordered, step = _sort_and_step(slices, normal, path, uid)
    n, rows, columns = len(ordered), ordered[0].rows, ordered[0].columns
    if n == 1:
        first = ordered[0].ds
        step = _number(first, "SpacingBetweenSlices", 0.0, ordered[0].path)
        if step <= 0:
            step = _number(first, "SliceThickness", 0.0, ordered[0].path)
        if step <= 0:
            step = 1.0

    syntaxes = sorted({s.transfer_syntax for s in ordered})
    for syntax in syntaxes:
        problem = decoder_problem(syntax)
        if problem:
            example = next(s.path for s in ordered if s.transfer_syntax == syntax)
            raise VolumeReadError(f"cannot read the series in {path}: {example} -- {problem}")

    bits = max(_integer(s.ds, "BitsAllocated", 16, s.path) for s in ordered)
    stored = max(1, math.ceil(bits / 8))
    scaled = any(s.slope != 1 or s.intercept != 0 for s in ordered)
    n_voxels = n * rows * columns
    check_fits(
        path,
        n_voxels * (stored + 2 * (4 if scaled else stored)),
        f"{n} slices of {rows}x{columns} ({bits}-bit)",
        max_bytes,
    )

    raw: np.ndarray | None = None
    for k, item in enumerate(ordered):
        pixels = read_pixels(item.path, item.rows, item.columns)
        if raw is None:
            raw = np.empty((n, rows, columns), dtype=pixels.dtype)
        elif pixels.dtype != raw.dtype:
            raw = raw.astype(np.result_type(raw.dtype, pixels.dtype))
        raw[k] = pixels
    assert raw is not None
    slopes = np.array([s.slope for s in ordered])
    intercepts = np.array([s.intercept for s in ordered])
    frames = rescaled(raw, slopes, intercepts)

    spacing_row, spacing_col = (float(v) for v in ordered[0].pixel_spacing)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * spacing_col  # column index i moves along the row direction
    lps[:3, 1] = col_dir * spacing_row  # row index j moves along the column direction
    lps[:3, 2] = normal * step
    lps[:3, 3] = ordered[0].ipp
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    ornt = ornt_transform(io_orientation(affine), LPS_ORNT)
    first_ds = ordered[0].ds
    geometry = DicomGeometry(
        affine=affine,
        shape=(columns, rows, n),
        ornt=ornt,
        series_uid=valid_uid(chosen.uid) or None,
        sop_instance_uids=tuple(
            header_uid(s.ds, "SOPInstanceUID", "MediaStorageSOPInstanceUID", s.path)
            for s in ordered
        ),
        study_uid=valid_uid(header_text(first_ds, "StudyInstanceUID", ordered[0].path)) or None,
        frame_of_reference_uid=valid_uid(
            header_text(first_ds, "FrameOfReferenceUID", ordered[0].path)
        )
        or None,
        sop_class_uid=header_uid(
            first_ds, "SOPClassUID", "MediaStorageSOPClassUID", ordered[0].path
        )
        or None,
        modality=chosen.modality or None,
        source_files=tuple(s.path for s in ordered),
    )
    zyx = np.ascontiguousarray(geometry.to_zyx(frames))
    zooms = (spacing_col, spacing_row, abs(step))
    lps_zooms = [1.0, 1.0, 1.0]
    for src_axis, (dst_axis, _flip) in enumerate(ornt):
        lps_zooms[int(dst_axis)] = zooms[src_axis]
    spacing = (lps_zooms[2], lps_zooms[1], lps_zooms[0])
    meta = {
        "format": "dicom",
        "source_shape": (n, rows, columns),
        "source_axcodes": "".join(geometry.source_axcodes),
        "series_uid": valid_uid(chosen.uid) or None,
        "image_series_in_folder": chosen.image_series_in_folder,
        "series_description": chosen.description,
        "dicom_modality": chosen.modality,
        "modality": _header_modality(chosen.modality),
        "transfer_syntaxes": syntaxes,
        "rescaled": scaled,
        "channel": None,
        "n_channels": 1,
        "channel_axis": None,
    }
    return zyx, spacing, "mm", geometry, meta
