"""The volume: voxel data in (z, y, x) (in memory, or lazy) plus what is needed to write labels
back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slicesam.io.lazy import LazyArray

MODALITIES = ("CT", "MR", "microscopy")


@dataclass(eq=False)
class Volume:
    """A 3D image in the slicing orientation.

    Attributes:
        data: (z, y, x) array: a ``numpy.ndarray`` in memory, or for large files and zarr
            stores a :class:`~slicesam.io.lazy.LazyArray` that reads only the slices
            indexed (``data[z]`` is a numpy (y, x) array either way). NIfTI volumes and
            DICOM series are reoriented to the closest canonical LPS orientation (z
            inferior->superior, y anterior->posterior, x right->left); TIFF stacks and zarr
            stores stay as stored (ZYX). The dtype is the file's (scaling applied for NIfTI;
            RescaleSlope/Intercept applied for DICOM).
        spacing: voxel size (z, y, x), in mm for NIfTI and DICOM and in the file's unit for
            TIFF and zarr.
        modality: "CT", "MR", "microscopy" or None when unknown.
        path: the file (or, for DICOM, the folder) the volume came from, if any.
        geometry: format-specific source geometry used by ``save_labels(like=...)`` to write
            a file whose geometry equals the source's (``NiftiGeometry``, ``DicomGeometry``,
            ``TiffGeometry`` or ``ZarrGeometry``).
        unit: physical unit of ``spacing`` ("mm", "um", ...).
    """

    data: np.ndarray | LazyArray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    modality: str | None = None
    path: Path | None = None
    geometry: Any = None
    unit: str = "mm"
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(z, y, x) shape of ``data``."""
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    def __repr__(self) -> str:
        src = f" from {self.path.name}" if self.path else ""
        return (
            f"Volume(shape={self.shape}, dtype={self.data.dtype}, spacing={self.spacing}, "
            f"modality={self.modality!r}{src})"
        )
