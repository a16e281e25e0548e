"""``save_labels``: write a (z, y, x) label volume onto the grid of a source :class:`Volume`."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from slicesam.errors import VolumeWriteError
from slicesam.io._common import as_path, file_format, format_suffix, supported_list
from slicesam.io.dicom import DicomGeometry
from slicesam.io.dicom_seg import build_dicom_seg, check_seg_possible
from slicesam.io.nifti import NiftiGeometry, write_nifti
from slicesam.io.tiff import TiffGeometry, write_tiff
from slicesam.io.volume import Volume
from slicesam.io.zarr_labels import write_ome_zarr_labels


def _smallest_unsigned(max_value: int) -> np.dtype:
    """uint16 when the values fit, else uint32 (the label dtypes of the design)."""
    if max_value <= np.iinfo(np.uint16).max:
        return np.dtype(np.uint16)
    if max_value <= np.iinfo(np.uint32).max:
        return np.dtype(np.uint32)
    raise VolumeWriteError(f"label value {max_value} does not fit in uint32")


def as_label_array(labels: object) -> np.ndarray:
    """Validate and convert labels to a non-negative unsigned integer array.

    - unsigned integers keep their dtype (uint64 becomes uint16/uint32 when the values fit);
    - bool becomes uint8;
    - signed integers become the unsigned type of the same size (int64 -> uint16/uint32);
    - floats must be finite and integral, and become uint16 or uint32;
    - negative values and other dtypes raise :class:`VolumeWriteError`.
    """
    arr = np.asarray(labels)
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    kind = arr.dtype.kind
    if kind not in "uif":
        raise VolumeWriteError(f"labels must be an integer array, got dtype {arr.dtype}")
    if arr.size == 0:
        return arr.astype(np.uint16)
    if kind == "f":
        if not np.isfinite(arr).all():
            raise VolumeWriteError("labels contain NaN or inf; labels must be integers")
        if not np.array_equal(arr, np.round(arr)):
            raise VolumeWriteError(
                f"labels are {arr.dtype} with non-integral values; labels must be integers"
            )
    lo = arr.min()
    if lo < 0:
        raise VolumeWriteError(f"labels must be non-negative; found minimum {lo}")
    if kind == "u" and arr.dtype.itemsize <= 4:
        return arr
    hi = int(arr.max())
    if kind == "i" and arr.dtype.itemsize <= 4:
        return arr.astype(np.dtype(f"uint{8 * arr.dtype.itemsize}"))
    return arr.astype(_smallest_unsigned(hi))


def _temp_path(target: Path) -> Path:
    """A new, empty file next to ``target`` with the same format ending (mode from umask)."""
    suffix = format_suffix(target)
    stem = target.name[: len(target.name) - len(suffix)] if suffix else target.name
    for _ in range(100):
        tmp = target.with_name(f".{stem}.tmp-{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise VolumeWriteError(f"could not create a temporary file next to {target}")


def save_labels(
    path: str | os.PathLike[str],
    labels: np.ndarray,
    *,
    like: Volume,
    names: Mapping[int, str] | None = None,
    colors: Mapping[int, tuple[int, int, int]] | None = None,
) -> Path:
    """Write a label volume with the geometry of ``like``, atomically.

    Args:
        path: output file; the format follows its ending (``.nii``/``.nii.gz``,
            ``.tif``/``.tiff``, or ``.dcm`` for a DICOM-SEG of a volume loaded from a DICOM
            series; ``.zarr``/``.ome.zarr`` for an OME-Zarr label image, written into the
            ``labels`` group when the path is the OME-Zarr image itself, see
            :func:`slicesam.io.zarr_labels.write_ome_zarr_labels`). Missing parent folders
            are created.
        labels: (z, y, x) integer array with ``like.data.shape`` (0 = background). See
            :func:`as_label_array` for accepted dtypes (bool -> uint8, integral floats ->
            uint16/uint32, signed -> unsigned; negative values are an error).
        like: the volume the labels belong to.
        names: label value -> object name, written as the DICOM-SEG segment labels (NIfTI
            and TIFF files have no place for them and ignore them).
        colors: label value -> RGB 0-255 display colour of the DICOM-SEG segments.

    NIfTI output from a NIfTI ``like``: the array is returned to the source's on-disk
    orientation and shape and written with the source header, so affine, qform/sform (codes and
    values) and pixdim equal the source's bit for bit. TIFF output: ZYX with ``like``'s voxel
    size (ImageJ for uint8/uint16, plain TIFF with shaped metadata for uint32). Across formats
    the (z, y, x) array is written so that :func:`load_volume` gives it back unchanged (NIfTI
    from TIFF: LPS affine ``diag(-sx, -sy, sz)``; NIfTI from a DICOM series: the series' own
    grid and world position, as dcm2niix writes it). DICOM-SEG output: one BINARY segment per
    label value present, referencing the series' slices, with patient and study attributes
    copied from them (see :mod:`slicesam.io.dicom_seg`).

    The file is written to a temporary name in the same folder and moved into place with
    ``os.replace``, so readers never see a half-written file.

    Returns:
        The path written.

    Raises:
        VolumeWriteError: shape mismatch, bad dtype/values, unsupported ending, I/O failure.
    """
    p = as_path(path)
    fmt = file_format(p)
    if fmt is None:
        suffix = format_suffix(p) or "(no extension)"
        raise VolumeWriteError(
            f"{p}: cannot write labels as {suffix!r}; supported: {supported_list(labels=True)}"
        )
    if not isinstance(like, Volume):
        raise VolumeWriteError(
            f"like= must be the image Volume the labels belong to (from load_volume), "
            f"got {type(like).__name__}; nothing was written"
        )
    if fmt == "dicom-seg":
        check_seg_possible(like.geometry, p)
    if fmt == "zarr":  # streamed slice by slice (labels may be a store larger than memory)
        return write_ome_zarr_labels(p, labels, like, names=names, colors=colors)
    arr = np.asarray(labels)
    expected = tuple(int(s) for s in like.data.shape)
    if arr.shape != expected:
        raise VolumeWriteError(
            f"labels shape {tuple(arr.shape)} does not match the image shape {expected} "
            f"(z, y, x); nothing was written to {p.name}. Labels need one value per image voxel"
        )
    arr = np.ascontiguousarray(as_label_array(arr))
    geometry = like.geometry
    seg = build_dicom_seg(p, arr, geometry, names, colors) if fmt == "dicom-seg" else None
    if isinstance(geometry, TiffGeometry):
        spacing, unit = geometry.spacing, geometry.unit
    else:
        spacing, unit = tuple(float(s) for s in like.spacing), like.unit

    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_path(p)
    except OSError as exc:
        raise VolumeWriteError(f"cannot write {p}: {exc}") from exc
    try:
        if seg is not None:
            seg.save_as(tmp)
        elif fmt == "nifti":
            nifti_geometry = geometry if isinstance(geometry, NiftiGeometry) else None
            if isinstance(geometry, DicomGeometry):
                nifti_geometry = geometry.nifti_geometry()
            write_nifti(tmp, arr, nifti_geometry, spacing, unit)  # type: ignore[arg-type]
        else:
            tiff_geometry = geometry if isinstance(geometry, TiffGeometry) else None
            write_tiff(tmp, arr, spacing, unit, tiff_geometry)  # type: ignore[arg-type]
        os.replace(tmp, p)
    except VolumeWriteError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    except Exception as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise VolumeWriteError(f"could not write {p}: {type(exc).__name__}: {exc}") from exc
    return p
