"""Fixtures for the io tests: synthetic NIfTI / TIFF files written into ``tmp_path``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

NiftiWriter = Callable[..., Path]


@pytest.fixture
def write_nifti(tmp_path: Path) -> NiftiWriter:
    """Factory: ``write_nifti(data, affine, name=..., qform_code=1, sform_code=1, nifti2=False,
    slope=None, inter=None, qform_affine=None)`` writes a NIfTI file (header geometry set
    explicitly) and returns its path. A form whose code is 0 is written as absent;
    ``qform_affine`` gives the qform its own affine (default: ``affine``)."""

    def _write(
        data: np.ndarray,
        affine: np.ndarray | None = None,
        *,
        name: str = "image.nii.gz",
        qform_code: int = 1,
        sform_code: int = 1,
        nifti2: bool = False,
        slope: float | None = None,
        inter: float | None = None,
        qform_affine: np.ndarray | None = None,
    ) -> Path:
        affine = np.eye(4) if affine is None else affine
        q_affine = affine if qform_affine is None else qform_affine
        klass = nib.Nifti2Image if nifti2 else nib.Nifti1Image
        hdr = klass.header_class()
        hdr.set_data_shape(data.shape)
        hdr.set_data_dtype(data.dtype)
        hdr.set_qform(q_affine if qform_code else None, code=qform_code)
        hdr.set_sform(affine if sform_code else None, code=sform_code)
        if not qform_code:
            # pixdim still carries the zooms when only the sform is set
            hdr.set_zooms(tuple(np.sqrt((affine[:3, :3] ** 2).sum(0))) + hdr.get_zooms()[3:])
        hdr.set_xyzt_units("mm")
        img = klass(data, None, header=hdr)
        if slope is not None:
            img.header.set_slope_inter(slope, inter)
        path = tmp_path / name
        nib.save(img, str(path))
        return path

    return _write
