"""Imaging modality: validation of a user-given name and detection from the data."""

from __future__ import annotations

import numpy as np

from slicesam.errors import VolumeReadError
from slicesam.io.volume import MODALITIES

#: Values at or below this (with a signed dtype) mean Hounsfield units, i.e. CT (air is -1000).
CT_MIN_THRESHOLD = -500.0

_ALIASES = {"ct": "CT", "mr": "MR", "mri": "MR", "microscopy": "microscopy"}


def normalize_modality(modality: str | None) -> str | None:
    """Return the canonical name ("CT", "MR", "microscopy") of a case-insensitive ``modality``.

    ``None`` stays ``None`` (meaning: detect). ``"mri"`` is accepted as "MR". Anything else
    raises :class:`VolumeReadError` listing the choices.
    """
    if modality is None:
        return None
    key = str(modality).strip().lower()
    if key not in _ALIASES:
        choices = ", ".join(repr(m) for m in MODALITIES)
        raise VolumeReadError(
            f"unknown modality {modality!r}; choose one of {choices} (case-insensitive) "
            "or leave it out to detect it"
        )
    return _ALIASES[key]


def detect_modality(data: np.ndarray, file_format: str) -> str | None:
    """Guess the modality of a loaded volume.

    Args:
        data: the (z, y, x) voxel array as loaded (scaling applied).
        file_format: ``"nifti"``, ``"tiff"`` or ``"zarr"``.

    Returns:
        ``"microscopy"`` for TIFF and zarr/OME-Zarr; for NIfTI ``"CT"`` when the dtype is
        signed (signed integer or float) and the minimum is at or below -500 (Hounsfield
        units), else ``"MR"``; ``None`` for an unknown format.
    """
    if file_format in ("tiff", "zarr"):
        return "microscopy"
    if file_format != "nifti":
        return None
    signed = np.issubdtype(data.dtype, np.signedinteger) or np.issubdtype(data.dtype, np.floating)
    if signed and data.size and float(np.nanmin(data)) <= CT_MIN_THRESHOLD:
        return "CT"
    return "MR"


#: At most this many distinct values (background 0 included) for a volume to read as labels.
MAX_LABEL_VALUES = 500
#: At least this fraction of neighbouring voxel pairs along x that touch the foreground must be
#: equal for a volume to read as labels (labels are piecewise constant; images are not: the
#: sample label files score 0.82-0.90, the sample images 0.02-0.03).
MIN_LABEL_FLATNESS = 0.5


def label_ids(data: np.ndarray) -> list[int] | None:
    """The object ids (sorted, background 0 left out) when ``data`` looks like a label volume,
    else None.

    The rule: an integer dtype, no negative values, background 0 present, at most
    :data:`MAX_LABEL_VALUES` distinct values (0 included), and piecewise constant: at least
    :data:`MIN_LABEL_FLATNESS` of the neighbouring voxel pairs along x that touch a non-zero
    voxel hold equal values. A CT (negative Hounsfield units), an MR or a microscopy image has
    noise in its foreground, so neighbouring voxels rarely agree.
    """
    if data.size == 0 or not np.issubdtype(data.dtype, np.integer):
        return None
    if int(data.min()) != 0:  # negative values (CT) or no background
        return None
    if data.shape[-1] > 1:
        a, b = data[..., 1:], data[..., :-1]
        touching = (a != 0) | (b != 0)
        if touching.any() and float((a == b)[touching].mean()) < MIN_LABEL_FLATNESS:
            return None
    values = np.unique(data)
    if len(values) > MAX_LABEL_VALUES:
        return None
    return [int(v) for v in values if v != 0]
