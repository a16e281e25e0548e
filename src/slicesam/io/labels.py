"""``load_labels``: a label file (NIfTI, TIFF or DICOM-SEG) read onto the grid of its image."""

from __future__ import annotations

import os

import numpy as np

from slicesam.errors import VolumeReadError
from slicesam.io._common import as_path, file_format
from slicesam.io.dicom import DicomGeometry
from slicesam.io.dicom_seg import read_dicom_seg
from slicesam.io.lazy import is_lazy
from slicesam.io.loader import load_volume
from slicesam.io.volume import Volume


def load_labels(path: str | os.PathLike[str], *, like: Volume) -> np.ndarray:
    """Read labels that belong to the image ``like`` as a (z, y, x) array on its grid.

    Args:
        path: a NIfTI or TIFF label file on ``like``'s grid, or a DICOM-SEG (``.dcm``) of
            the DICOM series ``like`` was loaded from.
        like: the image :class:`Volume`.

    Returns:
        (z, y, x) labels with ``like.shape`` (0 = background): a numpy array, or for a zarr
        store or a file over 1 GiB a lazy array read slice by slice; for a DICOM-SEG, each
        segment's label value (what :func:`save_labels` wrote, else the segment number).

    Raises:
        VolumeReadError: an unreadable file, a grid unlike ``like``'s, a SEG of another
            series, or non-integer voxels.
    """
    p = as_path(path)
    if not isinstance(like, Volume):
        raise VolumeReadError(
            f"like= must be the image Volume the labels belong to, got {type(like).__name__}"
        )
    if file_format(p) == "dicom-seg":
        if not isinstance(like.geometry, DicomGeometry):
            raise VolumeReadError(
                f"{p.name} is a DICOM-SEG: like= must be the DICOM series it segments "
                "(load_volume(<series folder>))"
            )
        return read_dicom_seg(p, like.geometry).labels
    data = load_volume(p, like=like).data
    if is_lazy(data):  # read slice by slice (zarr, big files): the dtype is what can be checked
        if data.dtype.kind not in "ub":
            raise VolumeReadError(f"{p} holds {data.dtype} values, not label numbers")
        return data
    if data.dtype.kind not in "ub" and not (
        data.dtype.kind in "if" and np.array_equal(data, np.round(data)) and data.min() >= 0
    ):
        raise VolumeReadError(f"{p} holds {data.dtype} values that are not label numbers")
    return data
