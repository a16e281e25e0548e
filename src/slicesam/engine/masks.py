"""Small mask and box helpers on (y, x) boolean slices."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BoxXYXY = tuple[float, float, float, float]


def mask_bbox(mask: np.ndarray) -> BoxXYXY | None:
    """Inclusive (x0, y0, x1, y1) of a (y, x) boolean mask, None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])


def pixel_extent(box: BoxXYXY) -> BoxXYXY:
    """An inclusive-index box (x0, y0, x1, y1) as the continuous extent of its pixels,
    (x0, y0, x1 + 1, y1 + 1): what a box prompt means to a SAM-family model, whose
    coordinates are continuous (pixel i covers [i, i + 1)). A tight box on the last pixel
    index cuts that pixel's far half off, which can make the model miss the object almost
    entirely."""
    x0, y0, x1, y1 = box
    return x0, y0, x1 + 1.0, y1 + 1.0


def shorter_side(box: BoxXYXY) -> float:
    """The shorter of a box's width and height (same units as the box)."""
    return min(box[2] - box[0], box[3] - box[1])


def expand_box(box: BoxXYXY, margin: float, shape: tuple[int, int], edge: float = 0.0) -> BoxXYXY:
    """Grow ``box`` by ``margin`` pixels on each side, clipped to a (height, width) slice
    (its last pixel index plus ``edge``: 1 for a box in pixel-extent coordinates)."""
    x0, y0, x1, y1 = box
    h, w = shape
    return (
        max(0.0, x0 - margin),
        max(0.0, y0 - margin),
        min(w - 1.0 + edge, x1 + margin),
        min(h - 1.0 + edge, y1 + margin),
    )


def clamp_box(box: BoxXYXY, bound: BoxXYXY) -> BoxXYXY:
    """``box`` intersected with ``bound``; ``bound`` itself when they do not overlap."""
    x0, y0 = max(box[0], bound[0]), max(box[1], bound[1])
    x1, y1 = min(box[2], bound[2]), min(box[3], bound[3])
    if x1 <= x0 or y1 <= y0:
        return bound
    return x0, y0, x1, y1


def clip_box(box: BoxXYXY, shape: tuple[int, int]) -> BoxXYXY | None:
    """Clip an inclusive box to a (height, width) slice; None when it lies fully outside."""
    x0, y0, x1, y1 = box
    h, w = shape
    if x1 < 0 or y1 < 0 or x0 > w - 1 or y0 > h - 1:
        return None
    return max(0.0, x0), max(0.0, y0), min(w - 1.0, x1), min(h - 1.0, y1)


def overshoot(mask: np.ndarray, box: BoxXYXY) -> float | None:
    """How far a (y, x) bool mask's bounding box reaches past an inclusive-index ``box``, in
    pixels, averaged over the four sides (negative: it falls short); None for an empty mask."""
    bb = mask_bbox(mask)
    if bb is None:
        return None
    return ((box[0] - bb[0]) + (box[1] - bb[1]) + (bb[2] - box[2]) + (bb[3] - box[3])) / 4


def overshoot_erosion(overshoot_px: float, max_px: int) -> int:
    """Pixels to erode a model's masks by when they overshoot their boxes by ``overshoot_px``
    on average: the nearest whole number, halves rounded down, from 0 to ``max_px``."""
    return min(max_px, max(0, int(np.ceil(overshoot_px - 0.5))))


def erode_mask(mask: np.ndarray, px: int, min_area_px: int = 1) -> np.ndarray:
    """A (y, x) bool mask eroded by ``px`` pixels (3x3 cross steps); the mask itself when
    ``px`` is 0 or the eroded mask would have fewer than ``min_area_px`` pixels."""
    if px <= 0 or not mask.any():
        return mask
    eroded = ndimage.binary_erosion(mask, iterations=px)
    return eroded if int(eroded.sum()) >= min_area_px else mask


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
