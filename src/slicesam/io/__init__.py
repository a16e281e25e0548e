"""Reading volumes (NIfTI, TIFF) into (z, y, x) arrays and writing label volumes back.

Public API: :func:`load_volume`, :func:`save_labels`, :class:`Volume`. No torch or napari here.
"""

from __future__ import annotations

from slicesam.io._common import SUPPORTED_SUFFIXES
from slicesam.io.loader import load_volume
from slicesam.io.modality import detect_modality, normalize_modality
from slicesam.io.nifti import NiftiGeometry
from slicesam.io.tiff import TiffGeometry
from slicesam.io.volume import MODALITIES, Volume
from slicesam.io.writer import save_labels

__all__ = [
    "MODALITIES",
    "SUPPORTED_SUFFIXES",
    "NiftiGeometry",
    "TiffGeometry",
    "Volume",
    "detect_modality",
    "load_volume",
    "normalize_modality",
    "save_labels",
]
