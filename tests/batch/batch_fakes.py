"""Helpers of the batch tests: model loaders a dask worker calls (module-level functions, so
the worker plugin pickles them by reference) and generated volumes with their prompts."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import tifffile

from fakes import PackingModel, ball
from slicesam.errors import CheckpointError

#: One entry per model load, on any worker of this process (in-process test clusters).
LOADS: list[str] = []


def fake_loader(name, checkpoint, device):
    """A box-only :class:`~fakes.PackingModel` (as LiteMedSAM), counted in :data:`LOADS`."""
    LOADS.append(name)
    return PackingModel(box_only=True)


def failing_loader(name, checkpoint, device):
    raise CheckpointError(f"no weights for {name} on this worker")


SHAPE = (16, 40, 48)


def ball_volume(center, radius, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """(CT-like int16 (z, y, x) volume: a 200 HU ball on -1000, the ball's bool mask)."""
    mask = ball(shape, center, radius)
    return np.where(mask, 200, -1000).astype(np.int16), mask


def box_prompts(mask: np.ndarray, name: str = "ball") -> dict:
    """A prompts document: one object, the tight box of ``mask`` on its largest slice."""
    z = int(np.argmax(mask.sum(axis=(1, 2))))
    ys, xs = np.nonzero(mask[z])
    box = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
    return {"objects": [{"id": 1, "name": name, "boxes": [{"z": z, "box": box}]}]}


def write_nifti(path: Path, data: np.ndarray) -> None:
    """Save a (z, y, x) array so that load_volume gives it back unchanged (an LPS affine)."""
    affine = np.diag([-1.0, -1.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), affine), path)


def make_jobs(folder: Path) -> dict[str, np.ndarray]:
    """A jobs folder: ``a.nii.gz``, ``b.nii.gz`` (CT balls), ``c.tif`` (a bright ball, uint8)
    and ``broken.nii.gz`` (not a NIfTI file), each with ``NAME.prompts.json``. Returns the
    reference mask of each good volume by name."""
    folder.mkdir(parents=True, exist_ok=True)
    masks = {}
    for name, center, radius in (("a", (8, 20, 22), 6), ("b", (7, 18, 26), 5)):
        data, mask = ball_volume(center, radius)
        write_nifti(folder / f"{name}.nii.gz", data)
        masks[name] = mask
    mask = ball(SHAPE, (8, 22, 24), 7)
    tifffile.imwrite(folder / "c.tif", np.where(mask, 220, 15).astype(np.uint8))
    masks["c"] = mask
    (folder / "broken.nii.gz").write_bytes(b"this is not a NIfTI file")
    for name, mask in masks.items():
        (folder / f"{name}.prompts.json").write_text(json.dumps(box_prompts(mask)))
    (folder / "broken.prompts.json").write_text(json.dumps(box_prompts(masks["a"])))
    return masks
