"""``load_volume``: read a NIfTI or TIFF file (dispatch by extension) or a DICOM series folder
into a :class:`Volume`."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from slicesam.errors import VolumeReadError
from slicesam.io._common import (
    as_path,
    check_channel_arg,
    check_max_bytes,
    content_mismatch_hint,
    file_format,
    format_suffix,
    single_channel,
    sniff_format,
    supported_list,
)
from slicesam.io.dicom import DicomGeometry, read_dicom_series
from slicesam.io.lazy import LazyArray, NonFiniteGuard, slice_sample
from slicesam.io.modality import detect_modality, normalize_modality
from slicesam.io.nifti import NiftiGeometry, read_nifti
from slicesam.io.tiff import read_tiff
from slicesam.io.volume import Volume
from slicesam.io.zarr_volume import is_zarr_store, read_zarr


def _handle_nonfinite(data: np.ndarray, path: object, fill_nonfinite: float | None) -> np.ndarray:
    """Refuse NaN/inf voxels, or replace them with ``fill_nonfinite`` (returns float32)."""
    if not np.issubdtype(data.dtype, np.floating):
        return data
    finite = np.isfinite(data)
    if finite.all():
        return data
    n_bad = int(data.size - np.count_nonzero(finite))
    if fill_nonfinite is None:
        n_nan = int(np.count_nonzero(np.isnan(data)))
        raise VolumeReadError(
            f"{path} contains {n_bad} non-finite voxels ({n_nan} NaN, {n_bad - n_nan} inf) "
            f"out of {data.size}; pass fill_nonfinite=<value> to replace them "
            "(e.g. load_volume(path, fill_nonfinite=0); command line: --fill-nonfinite 0)"
        )
    out = data.astype(np.float32, copy=True)
    out[~finite] = np.float32(fill_nonfinite)
    return out


def _check_fill(fill_nonfinite: float | None) -> float | None:
    if fill_nonfinite is None:
        return None
    try:
        value = float(fill_nonfinite)
    except (TypeError, ValueError):
        raise VolumeReadError(
            f"fill_nonfinite must be a finite number, got {fill_nonfinite!r}"
        ) from None
    if not math.isfinite(value):
        raise VolumeReadError(f"fill_nonfinite must be a finite number, got {fill_nonfinite!r}")
    return value


def _check_grid(p: object, volume: Volume, like: Volume) -> None:
    """Raise unless ``volume`` lies on the voxel grid of ``like`` (shape, then geometry)."""
    src = f" ({like.path.name})" if like.path is not None else ""
    if volume.shape != like.shape:
        raise VolumeReadError(
            f"{p} has shape {volume.shape} (z, y, x) but the image{src} has {like.shape}: "
            "labels must have one value per image voxel; resample them onto the image grid"
        )
    a, b = volume.geometry, like.geometry
    if isinstance(a, (NiftiGeometry, DicomGeometry)) and isinstance(
        b, (NiftiGeometry, DicomGeometry)
    ):
        diff = float(np.abs(a.zyx_affine - b.zyx_affine).max())
        if diff > 1e-3:
            raise VolumeReadError(
                f"{p} has the image's shape {like.shape} but a different voxel-to-world affine "
                f"(up to {diff:.3g} mm apart): the labels are not on the image{src} grid; "
                "resample them onto the image grid"
            )
        return
    sa = np.asarray(volume.spacing, dtype=float)
    sb = np.asarray(like.spacing, dtype=float)
    same_unit = volume.unit == like.unit or "px" in (volume.unit, like.unit)
    if same_unit and not np.allclose(sa, sb, rtol=1e-4, atol=0):
        raise VolumeReadError(
            f"{p} has the image's shape {like.shape} but voxel size {tuple(sa.tolist())} "
            f"{volume.unit}, the image{src} has {tuple(sb.tolist())} {like.unit}: "
            "the labels are not on the image grid; resample them onto it"
        )


def _check_series(series: str | None) -> str | None:
    if series is None:
        return None
    if not isinstance(series, str) or not series.strip():
        raise VolumeReadError(
            f"series must be a SeriesInstanceUID string such as '1.2.840.113619.2...', "
            f"got {series!r}"
        )
    return series.strip()


def load_volume(
    path: str | os.PathLike[str],
    *,
    series: str | None = None,
    channel: int | None = None,
    modality: str | None = None,
    fill_nonfinite: float | None = None,
    max_bytes: int | None = None,
    like: Volume | None = None,
    lazy: bool | None = None,
) -> Volume:
    """Read a 3D volume from a NIfTI (``.nii``, ``.nii.gz``) or TIFF (``.tif``, ``.tiff``) file,
    a zarr / OME-Zarr store (a folder; see :mod:`slicesam.io.zarr_volume`), or a folder
    holding a DICOM series.

    Args:
        path: the file (the format is chosen by its case-insensitive ending), or a folder of
            DICOM files (one single-frame slice per file, any file names; see
            :func:`slicesam.io.dicom.read_dicom_series`).
        series: for a DICOM folder holding several image series, the SeriesInstanceUID of the
            one to load (the error for a folder with several lists them).
        channel: for 4D / multichannel files (NIfTI 4th dimension, TIFF ``C``/``S``/``T``
            axes), the index to take; required there, must be ``None`` or 0 otherwise.
        modality: "CT", "MR" or "microscopy" (case-insensitive); ``None`` detects it
            (NIfTI: "CT" when values are signed with minimum <= -500, else "MR";
            TIFF: "microscopy"; DICOM: the header's Modality when CT or MR, else None).
        fill_nonfinite: value that replaces NaN/inf voxels (data become float32). By default
            such voxels are an error.
        max_bytes: the most memory (bytes) reading may take; ``None`` means the memory
            available now (psutil, ``/proc/meminfo`` or ``os.sysconf``; no check when it
            cannot be found). The check uses the header/tags only, before any voxel is read;
            only the requested channel is read (nibabel array proxy, TIFF memory map).
        like: for a label file, the image :class:`Volume` it belongs to: the labels must lie
            on its voxel grid (same (z, y, x) shape; NIfTI or DICOM on both sides: same
            voxel-to-world affine of the (z, y, x) grid within 1e-3 mm; otherwise the same
            voxel size), else an error.
        lazy: zarr and OME-Zarr stores are always read lazily; TIFF and NIfTI files are
            read lazily when their (z, y, x) voxels take more than 1 GiB
            (:data:`slicesam.io.lazy.LAZY_BYTES`; ``lazy=None``, the default), because
            below that one whole read is quicker than per-slice decoding and keeps every
            in-memory figure as it was; ``True`` reads them lazily at any size, ``False``
            never (DICOM series are always read whole). A lazy ``data`` is a
            :class:`~slicesam.io.lazy.LazyArray`: only the slices indexed are read, NaN/inf
            voxels are refused (or filled) slice by slice when read, and the modality is
            detected from a sample of slices; napari shows it through
            :func:`slicesam.io.lazy.layer_data` (a dask array).

    Returns:
        A :class:`Volume` whose ``data`` is (z, y, x), fully read into memory (C-contiguous)
        unless read lazily (``lazy``):
        NIfTI and DICOM reoriented to the closest canonical LPS orientation (z
        inferior->superior, y anterior->posterior, x right->left), file dtype when unscaled,
        float32 when the header scales (DICOM: int16 when the rescale is integral and fits,
        e.g. CT in HU); TIFF as stored (ZYX, bool -> uint8). ``spacing`` is (z, y, x) in
        ``unit``; ``geometry`` is a ``NiftiGeometry``, ``DicomGeometry`` or ``TiffGeometry``
        for :func:`save_labels`; ``meta`` has "format", "source_shape", the source axes/axcodes,
        the "channel" taken, "n_channels" (1 for a plain 3D file) and "channel_axis" (a
        description such as "NIfTI dimension 4" or "axis 'C', channel"; None without one).

    Raises:
        VolumeReadError: missing, empty, unsupported, corrupt or truncated file (or one whose
            contents do not match its name); a DICOM folder the reader refuses (see
            :func:`~slicesam.io.dicom.read_dicom_series`); ``series=`` with a file; a 2D
            image; multichannel without (or with an out-of-range) ``channel``; non-finite
            voxels without ``fill_nonfinite``; an unknown ``modality``; more memory needed
            than ``max_bytes``; a grid unlike ``like``'s.
    """
    p = as_path(path)
    series = _check_series(series)
    wanted_modality = normalize_modality(modality)
    channel = check_channel_arg(channel)
    fill = _check_fill(fill_nonfinite)
    limit = check_max_bytes(max_bytes)
    if like is not None and not isinstance(like, Volume):
        raise VolumeReadError(
            f"like= must be the image Volume (from load_volume), got {type(like).__name__}"
        )
    if lazy is not None and not isinstance(lazy, bool):
        raise VolumeReadError(f"lazy must be True, False or None, got {lazy!r}")
    if not p.exists():
        raise VolumeReadError(f"{p}: no such file")
    if file_format(p) == "zarr" or is_zarr_store(p):
        if series is not None:
            raise VolumeReadError(f"series= picks a DICOM series; {p} is a zarr store")
        if not p.is_dir():
            raise VolumeReadError(
                f"{p} is a file, but a zarr store is a folder (zipped stores are not read): "
                "unzip it first"
            )
        data, spacing, unit, geometry, meta = read_zarr(p, channel)
        return _finish(p, "zarr", data, spacing, unit, geometry, meta, fill, wanted_modality, like)
    if p.is_dir():
        single_channel(p, channel)
        data, spacing, unit, geometry, meta = read_dicom_series(p, series, limit)
        return _finish(p, "dicom", data, spacing, unit, geometry, meta, fill, wanted_modality, like)
    if series is not None:
        raise VolumeReadError(
            f"series= picks a series in a folder of DICOM files, but {p} is a file; "
            "pass the folder, or leave series= out"
        )
    if not p.is_file():
        raise VolumeReadError(f"{p} is not a regular file")
    fmt = file_format(p)
    if fmt in (None, "dicom-seg") and sniff_format(p) == "DICOM":
        raise VolumeReadError(
            f"{p} is a single DICOM file; slicesam reads a DICOM series from its folder: "
            f"load_volume({str(p.parent)!r}) (add series=<SeriesInstanceUID> when the folder "
            "holds several series); a DICOM-SEG reads with "
            "load_labels(path, like=load_volume(<its series folder>))"
        )
    if fmt in (None, "dicom-seg"):
        suffix = format_suffix(p) or "(no extension)"
        hint = content_mismatch_hint(p, "none")
        tail = f" ({hint})" if hint and sniff_format(p) in ("nifti", "nifti-gz", "tiff") else ""
        raise VolumeReadError(
            f"{p}: unsupported file type {suffix!r}; supported: {supported_list()}{tail}"
        )
    if sniff_format(p) == "empty":
        raise VolumeReadError(
            f"{p} is empty (0 bytes): the export or copy did not finish; re-export or re-copy it"
        )
    reader = read_nifti if fmt == "nifti" else read_tiff
    data, spacing, unit, geometry, meta = reader(p, channel, limit, lazy)
    return _finish(p, fmt, data, spacing, unit, geometry, meta, fill, wanted_modality, like)


def _finish(
    p: Path,
    fmt: str,
    data: np.ndarray,
    spacing: tuple,
    unit: str,
    geometry: object,
    meta: dict,
    fill: float | None,
    wanted_modality: str | None,
    like: Volume | None,
) -> Volume:
    """The :class:`Volume` of what a reader returned (checks shared by all formats)."""
    if any(n == 0 for n in data.shape):
        raise VolumeReadError(f"{p} is empty (shape {tuple(data.shape)})")
    if isinstance(data, LazyArray):
        if np.issubdtype(data.dtype, np.floating):
            data = NonFiniteGuard(data, fill, str(p))
    else:
        data = _handle_nonfinite(data, p, fill)
    if fmt == "dicom":  # the header's Modality (CT, MR), else unknown
        found = wanted_modality or meta.get("modality")
    elif wanted_modality or fmt == "zarr":
        found = wanted_modality or detect_modality(data, fmt)
    else:  # a lazy volume: from a sample of slices
        found = detect_modality(slice_sample(data), fmt)
    volume = Volume(
        data=data,
        spacing=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        modality=found,
        path=p,
        geometry=geometry,
        unit=unit,
        meta=meta,
    )
    if like is not None:
        _check_grid(p, volume, like)
    return volume
