"""Prompts simulated from the ground truth (BENCHMARK.md): boxes and error-driven clicks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

Box = tuple[float, float, float, float]


def tight_box(mask: np.ndarray) -> Box | None:
    """Inclusive (x0, y0, x1, y1) of a (y, x) mask or of the 2D extent of a (z, y, x) mask."""
    if mask.ndim == 3:
        mask = mask.any(axis=0)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])


def z_extent(gt: np.ndarray) -> tuple[int, int]:
    """(first, last) slice where the (z, y, x) mask is non-empty."""
    zs = np.flatnonzero(gt.any(axis=(1, 2)))
    return int(zs[0]), int(zs[-1])


def largest_slice(gt: np.ndarray) -> int:
    """The slice where the (z, y, x) mask has the largest area (first one on ties)."""
    return int(np.argmax(gt.sum(axis=(1, 2))))


@dataclass(frozen=True)
class Click:
    """A simulated click: slice, pixel, and whether it adds (False negative region) or removes."""

    z: int
    y: int
    x: int
    positive: bool


def _click_in_slice(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, bool] | None:
    """Centre (distance-transform maximum) of the largest connected error region of a slice."""
    best: tuple[int, np.ndarray, bool] | None = None
    for region_mask, positive in ((gt & ~pred, True), (pred & ~gt, False)):
        if not region_mask.any():
            continue
        comp, n = ndimage.label(region_mask)
        sizes = np.bincount(comp.ravel())[1:]
        k = int(np.argmax(sizes))
        if best is None or sizes[k] > best[0]:
            best = (int(sizes[k]), comp == k + 1, positive)
    if best is None:
        return None
    region = np.pad(best[1], 1)
    dist = ndimage.distance_transform_edt(region)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(y), int(x), best[2]


def next_click_3d(pred: np.ndarray, gt: np.ndarray) -> Click | None:
    """P3's rule on (z, y, x) bool arrays: slice with the most wrong voxels, then its largest
    error region's innermost pixel. None when the prediction is perfect."""
    wrong = (pred != gt).sum(axis=(1, 2))
    if not wrong.any():
        return None
    z = int(np.argmax(wrong))
    found = _click_in_slice(pred[z], gt[z])
    assert found is not None
    return Click(z, *found)


def next_click_2d(pred: np.ndarray, gt: np.ndarray, z: int) -> Click | None:
    """P4's rule on one (y, x) slice. None when the prediction is perfect."""
    found = _click_in_slice(pred, gt)
    return None if found is None else Click(z, *found)
