"""Small mask and box helpers on (y, x) boolean slices."""

from __future__ import annotations

import numpy as np

BoxXYXY = tuple[float, float, float, float]


def mask_bbox(mask: np.ndarray) -> BoxXYXY | None:
    """Inclusive (x0, y0, x1, y1) of a (y, x) boolean mask, None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])


def expand_box(box: BoxXYXY, margin: float, shape: tuple[int, int]) -> BoxXYXY:
    """Grow ``box`` by ``margin`` pixels on each side, clipped to a (height, width) slice."""
    x0, y0, x1, y1 = box
    h, w = shape
    return (
        max(0.0, x0 - margin),
        max(0.0, y0 - margin),
        min(w - 1.0, x1 + margin),
        min(h - 1.0, y1 + margin),
    )


def clip_box(box: BoxXYXY, shape: tuple[int, int]) -> BoxXYXY | None:
    """Clip an inclusive box to a (height, width) slice; None when it lies fully outside."""
    x0, y0, x1, y1 = box
    h, w = shape
    if x1 < 0 or y1 < 0 or x0 > w - 1 or y0 > h - 1:
        return None
    return max(0.0, x0), max(0.0, y0), min(w - 1.0, x1), min(h - 1.0, y1)


def disk(shape: tuple[int, int], y: float, x: float, radius: float) -> np.ndarray:
    """(y, x) boolean disk of ``radius`` pixels around (y, x)."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - y) ** 2 + (xx - x) ** 2 <= radius**2


def paint(
    slice_labels: np.ndarray,
    label_id: int,
    mask: np.ndarray,
    claimable: frozenset[int] | set[int] = frozenset(),
) -> np.ndarray:
    """A copy of a (y, x) label slice where object ``label_id`` covers exactly ``mask``.

    Voxels of other objects are not overwritten, except those of the objects in ``claimable``;
    where ``mask`` is False the object's previous voxels become background.
    """
    out = slice_labels.copy()
    own = out == label_id
    out[own & ~mask] = 0
    free = out == 0
    if claimable:
        free |= np.isin(out, list(claimable))
    out[mask & free] = label_id
    return out
