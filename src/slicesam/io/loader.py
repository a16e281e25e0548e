"""``load_volume``: read a NIfTI or TIFF file into a :class:`Volume` (dispatch by extension)."""

from __future__ import annotations

import math
import os

import numpy as np

from slicesam.errors import VolumeReadError
from slicesam.io._common import (
    as_path,
    check_channel_arg,
    file_format,
    format_suffix,
    supported_list,
)
from slicesam.io.modality import detect_modality, normalize_modality
from slicesam.io.nifti import read_nifti
from slicesam.io.tiff import read_tiff
from slicesam.io.volume import Volume


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
            "(e.g. load_volume(path, fill_nonfinite=0))"
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


def load_volume(
    path: str | os.PathLike[str],
    *,
    channel: int | None = None,
    modality: str | None = None,
    fill_nonfinite: float | None = None,
) -> Volume:
    """Read a 3D volume from a NIfTI (``.nii``, ``.nii.gz``) or TIFF (``.tif``, ``.tiff``) file.

    Args:
        path: the file. The format is chosen by its (case-insensitive) ending.
        channel: for 4D / multichannel files (NIfTI 4th dimension, TIFF ``C``/``S``/``T``
            axes), the index to take; required there, must be ``None`` or 0 otherwise.
        modality: "CT", "MR" or "microscopy" (case-insensitive); ``None`` detects it
            (NIfTI: "CT" when values are signed with minimum <= -500, else "MR";
            TIFF: "microscopy").
        fill_nonfinite: value that replaces NaN/inf voxels (data become float32). By default
            such voxels are an error.

    Returns:
        A :class:`Volume` whose ``data`` is (z, y, x), fully read into memory (C-contiguous):
        NIfTI reoriented to the closest canonical LPS orientation (z inferior->superior,
        y anterior->posterior, x right->left), file dtype when unscaled, float32 when the
        header scales; TIFF as stored (ZYX, bool -> uint8). ``spacing`` is (z, y, x) in
        ``unit``; ``geometry`` is a ``NiftiGeometry`` or ``TiffGeometry`` for
        :func:`save_labels`; ``meta`` has "format", "source_shape", the source axes/axcodes
        and the channel taken.

    Raises:
        VolumeReadError: missing, unsupported, corrupt or truncated file; a 2D image;
            multichannel without (or with an out-of-range) ``channel``; non-finite voxels
            without ``fill_nonfinite``; an unknown ``modality``.
    """
    p = as_path(path)
    wanted_modality = normalize_modality(modality)
    channel = check_channel_arg(channel)
    fill = _check_fill(fill_nonfinite)
    if not p.exists():
        raise VolumeReadError(f"{p}: no such file")
    if p.is_dir():
        raise VolumeReadError(f"{p} is a directory, not a volume file")
    fmt = file_format(p)
    if fmt is None:
        suffix = format_suffix(p) or "(no extension)"
        raise VolumeReadError(
            f"{p}: unsupported file type {suffix!r}; supported: {supported_list()}"
        )
    reader = read_nifti if fmt == "nifti" else read_tiff
    data, spacing, unit, geometry, meta = reader(p, channel)
    if any(n == 0 for n in data.shape):
        raise VolumeReadError(f"{p} is empty (shape {tuple(data.shape)})")
    data = _handle_nonfinite(data, p, fill)
    found = wanted_modality or detect_modality(data, fmt)
    return Volume(
        data=data,
        spacing=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        modality=found,
        path=p,
        geometry=geometry,
        unit=unit,
        meta=meta,
    )
