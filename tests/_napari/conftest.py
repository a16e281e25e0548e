"""Fixtures for the napari hook tests: small synthetic NIfTI / TIFF volumes in ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile

#: Axis-aligned (not oblique) but non-trivial RAS affine: 0.8 x 0.7 x 2.5 mm, origin shifted.
CT_AFFINE = np.array(
    [
        [0.8, 0.0, 0.0, -100.0],
        [0.0, 0.7, 0.0, -80.0],
        [0.0, 0.0, 2.5, 40.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


@pytest.fixture
def ct_nifti(tmp_path: Path) -> Path:
    """CT-like int16 NIfTI (on-disk (i, j, k) = (12, 10, 6), RAS): air -1024, a 40 HU blob."""
    rng = np.random.default_rng(0)
    data = np.full((12, 10, 6), -1024, dtype=np.int16)
    data[3:9, 2:8, 1:5] = 40 + rng.integers(-5, 5, size=(6, 6, 4)).astype(np.int16)
    img = nib.Nifti1Image(data, CT_AFFINE)
    img.header.set_xyzt_units("mm")
    img.header.set_qform(CT_AFFINE, code=1)
    img.header.set_sform(CT_AFFINE, code=2)
    path = tmp_path / "ct_case.nii.gz"
    nib.save(img, str(path))
    return path


@pytest.fixture
def tiff_stack(tmp_path: Path) -> Path:
    """ImageJ uint16 ZYX stack (5, 8, 9), voxel 2.0 x 0.5 x 0.5 um."""
    rng = np.random.default_rng(1)
    data = rng.integers(100, 4000, size=(5, 8, 9), dtype=np.uint16)
    path = tmp_path / "cells.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.5, 1 / 0.5),
        metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"},
    )
    return path


@pytest.fixture(autouse=True)
def _no_modal_restore_dialog(monkeypatch):
    """A test never blocks on the widget's "restore the autosaved session?" question: the
    answer is No unless a test sets ``widget.ask_restore`` itself."""
    try:
        from slicesam._napari.widget import SliceSamWidget
    except ImportError:  # pragma: no cover - napari/Qt missing: the GUI tests skip anyway
        return
    monkeypatch.setattr(SliceSamWidget, "ask_restore", lambda self, sidecar: False)
