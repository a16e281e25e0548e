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
        file_format: ``"nifti"`` or ``"tiff"``.

    Returns:
        ``"microscopy"`` for TIFF; for NIfTI ``"CT"`` when the dtype is signed (signed integer
        or float) and the minimum is at or below -500 (Hounsfield units), else ``"MR"``;
        ``None`` for an unknown format.
    """
    if file_format == "tiff":
        return "microscopy"
    if file_format != "nifti":
        return None
    signed = np.issubdtype(data.dtype, np.signedinteger) or np.issubdtype(data.dtype, np.floating)
    if signed and data.size and float(np.nanmin(data)) <= CT_MIN_THRESHOLD:
        return "CT"
    return "MR"
