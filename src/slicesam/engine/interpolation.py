"""Shape-based interpolation of masks between two slices (signed distance maps).

Used by :meth:`slicesam.engine.session.Session.interpolate` to fill the slices between two
user-prompted slices, and as the fallback where the model's confidence is low.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """(y, x) float32 signed distance to the mask border: > 0 inside, < 0 outside.

    An empty mask gives a constant large negative map, so interpolating towards it shrinks the
    other mask away instead of growing from nothing.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.full(mask.shape, -float(sum(mask.shape)), dtype=np.float32)
    if mask.all():
        return np.full(mask.shape, float(sum(mask.shape)), dtype=np.float32)
    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask)
    return (inside - outside + 0.0).astype(np.float32) - 0.5 * (~mask) + 0.5 * mask


def interpolate_masks(first: np.ndarray, last: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` (y, x) bool masks evenly between ``first`` and ``last`` (both excluded).

    Each is the zero level set of the linear blend of the two signed distance maps, after
    moving both shapes to the blended centroid, so a shape morphs smoothly into the other (it
    moves, grows and shrinks; it does not fade), even when the two do not overlap.
    """
    if count <= 0:
        return []
    first = np.asarray(first, dtype=bool)
    last = np.asarray(last, dtype=bool)
    da, db = signed_distance(first), signed_distance(last)
    if not (first.any() and last.any()):
        return [(1.0 - t) * da + t * db > 0 for t in _steps(count)]
    ca = np.array(ndimage.center_of_mass(first))
    cb = np.array(ndimage.center_of_mass(last))
    out = []
    for t in _steps(count):
        centre = (1.0 - t) * ca + t * cb
        sa = ndimage.shift(da, centre - ca, order=1, mode="nearest")
        sb = ndimage.shift(db, centre - cb, order=1, mode="nearest")
        out.append((1.0 - t) * sa + t * sb > 0)
    return out


def _steps(count: int) -> list[float]:
    return [i / (count + 1) for i in range(1, count + 1)]
