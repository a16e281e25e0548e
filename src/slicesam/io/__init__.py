"""Reading volumes (NIfTI, TIFF, DICOM series) into (z, y, x) arrays; writing and reading
label volumes (NIfTI, TIFF, DICOM-SEG).

Public API: :func:`load_volume`, :func:`save_labels`, :func:`load_labels`, :class:`Volume`.
No torch or napari here; pydicom and highdicom are imported only when DICOM is read or
written.
"""

from __future__ import annotations

from slicesam.io._common import SUPPORTED_SUFFIXES
from slicesam.io.dicom import DicomGeometry
from slicesam.io.labels import load_labels
from slicesam.io.loader import load_volume
from slicesam.io.modality import detect_modality, normalize_modality
from slicesam.io.nifti import NiftiGeometry
from slicesam.io.tiff import TiffGeometry
from slicesam.io.volume import MODALITIES, Volume
from slicesam.io.writer import save_labels

__all__ = [
    "MODALITIES",
    "DicomGeometry",
    "SUPPORTED_SUFFIXES",
    "NiftiGeometry",
    "TiffGeometry",
    "Volume",
    "detect_modality",
    "load_labels",
    "load_volume",
    "normalize_modality",
    "save_labels",
]
