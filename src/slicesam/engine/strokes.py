"""Scribbles (polylines) and lassos (closed polygons) as prompts.

What each becomes was chosen with ``benchmarks/scribbles_lassos.py``:

- **box-only models** (LiteMedSAM): a positive scribble on a slice without a mask asks the
  model for a square around the scribble :data:`SCRIBBLE_BOX_RELATIVE` times its length wide
  (a box grown by a fixed margin misses much of a large object a short scribble marks), and
  adds the scribble's own pixels; every other scribble edits the mask with disks along it,
  as clicks do (:func:`slicesam.engine.clicks.local_edit`);
- **every model**: a positive lasso adds the pixels it encloses (the user drew the outline:
  the model's mask for the lasso's box would spill past it or fall short); a negative lasso
  removes them;
- **models that take points** (SAM, MobileSAM): a scribble becomes points sampled along it
  (:data:`SCRIBBLE_POINTS`) with its polarity.

Coordinates are (y, x) slice pixels; masks are (y, x) bool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
from scipy import ndimage

from ..errors import PromptError
from ..models.base import Prediction
from ..prompts import Point
from .clicks import local_edit
from .masks import expand_box, pixel_extent

#: Points sampled along a scribble for models that take point prompts.
SCRIBBLE_POINTS = 6
#: Growth (model pixels) of a first positive scribble's box on box-only models.
SCRIBBLE_BOX_MARGIN = 8.0
#: ... or, when set, a square this many times the stroke's length wide around its centre.
SCRIBBLE_BOX_RELATIVE: float | None = 3.0
#: A positive lasso keeps the model's mask inside the lasso grown by this (model pixels).
LASSO_SLACK = 2.0


def as_polyline(points: Sequence[Sequence[float]]) -> np.ndarray:
    """(N, 2) float (y, x) array of a stroke's vertices (at least one)."""
    arr = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if arr.shape[0] == 0:
        raise ValueError("a stroke needs at least one (y, x) vertex")
    return arr


def stroke_on_slice(points, shape: tuple[int, int], z: int, what: str) -> np.ndarray:
    """A stroke's (N, 2) (y, x) vertices clipped to a (height, width) slice ``z``; a
    :class:`~slicesam.errors.PromptError` naming the ``what`` when they are not vertices or
    none of them lies on the slice."""
    try:
        line = as_polyline(points)
    except (TypeError, ValueError) as exc:
        raise PromptError(f"a {what} needs (y, x) vertices: {exc}") from None
    if not np.isfinite(line).all():
        raise PromptError(f"a {what} has non-finite coordinates")
    h, w = shape
    inside = (line[:, 0] >= 0) & (line[:, 0] <= h - 1) & (line[:, 1] >= 0) & (line[:, 1] <= w - 1)
    if not inside.any():
        raise PromptError(f"the {what} lies outside slice {z} (y 0..{h - 1}, x 0..{w - 1})")
    return np.clip(line, 0, [h - 1, w - 1])


def sample_along(polyline: np.ndarray, n: int) -> np.ndarray:
    """``n`` (y, x) points equally spaced along the polyline's length (its ends included)."""
    if len(polyline) == 1 or n <= 1:
        return polyline[:1].repeat(max(n, 1), axis=0)
    seg = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] == 0:
        return polyline[:1].repeat(n, axis=0)
    at = np.linspace(0.0, cum[-1], n)
    return np.stack([np.interp(at, cum, polyline[:, i]) for i in (0, 1)], axis=1)


def _cv_points(polyline: np.ndarray) -> np.ndarray:
    return np.round(polyline[:, ::-1]).astype(np.int32).reshape(-1, 1, 2)  # (x, y) for OpenCV


def stroke_mask(polyline: np.ndarray, shape: tuple[int, int], width: int = 1) -> np.ndarray:
    """The pixels a scribble passes over (``width`` pixels wide)."""
    out = np.zeros(shape, np.uint8)
    cv2.polylines(out, [_cv_points(polyline)], False, 1, thickness=max(1, int(width)))
    if len(polyline) == 1:
        y, x = np.round(polyline[0]).astype(int)
        if 0 <= y < shape[0] and 0 <= x < shape[1]:
            out[y, x] = 1
    return out.astype(bool)


def polygon_mask(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The pixels inside a closed polygon (its outline included)."""
    out = np.zeros(shape, np.uint8)
    cv2.fillPoly(out, [_cv_points(polygon)], 1)
    cv2.polylines(out, [_cv_points(polygon)], True, 1)
    return out.astype(bool)


def _stroke_box(polyline: np.ndarray, grow: float, shape: tuple[int, int]) -> tuple[float, ...]:
    y0, x0 = polyline.min(axis=0)
    y1, x1 = polyline.max(axis=0)
    return expand_box(pixel_extent((x0, y0, x1, y1)), grow, shape, edge=1.0)


def box_only_scribble(
    predict: Callable[..., Prediction],
    current: np.ndarray,
    polyline: np.ndarray,
    positive: bool,
    model_px: float,
    margin: float = SCRIBBLE_BOX_MARGIN,
    relative: float | None = SCRIBBLE_BOX_RELATIVE,
) -> tuple[np.ndarray, float | None]:
    """New mask after a scribble on a box-only model, and the model's confidence (None when
    the model was not asked); see the module docstring. The first scribble's box is the
    stroke's box grown by ``margin`` model pixels, or with ``relative`` a square around the
    stroke's centre ``relative`` times the stroke's length wide (at least its box + margin)."""
    line = stroke_mask(polyline, current.shape)
    if positive and not current.any():
        box = _stroke_box(polyline, margin * model_px, current.shape)
        if relative:
            cy, cx = (polyline.min(axis=0) + polyline.max(axis=0)) / 2
            half = relative * max(_length(polyline), 1.0) / 2
            square = (cx - half, cy - half, cx + half, cy + half)
            grown = (min(box[0], square[0]), min(box[1], square[1]),
                     max(box[2], square[2]), max(box[3], square[3]))  # fmt: skip
            box = expand_box(grown, 0.0, current.shape, edge=1.0)
        pred = predict(box=box)
        return pred.masks[0] | line, float(pred.scores[0])
    mask = current
    for y, x in sample_along(polyline, max(2, int(np.ceil(_length(polyline) / 2.0)))):
        mask = local_edit(mask, Point(0, float(y), float(x), positive))
    mask = (mask | line) if positive else (mask & ~line)
    return mask, None


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def _length(polyline: np.ndarray) -> float:
    if len(polyline) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(polyline, axis=0), axis=1).sum())


#: What a positive lasso adds (see :func:`lasso_mask`).
LASSO_MODES = ("auto", "model_in_lasso", "model", "lasso")
#: "auto": the model's mask inside the lasso unless it covers less than this IoU of the lasso.
LASSO_MIN_IOU = 0.5


def lasso_mask(
    predict: Callable[..., Prediction],
    current: np.ndarray,
    polygon: np.ndarray,
    positive: bool,
    model_px: float,
    mode: str = "lasso",
    slack: float = LASSO_SLACK,
) -> tuple[np.ndarray, float | None]:
    """New mask after a lasso (any model: only its box is a prompt); see the module docstring.

    A positive lasso adds, by ``mode``: "lasso" (default) the enclosed pixels; "model_in_lasso"
    the model's mask for the lasso's box kept inside the lasso grown by ``slack`` model pixels
    (the lasso itself when the model finds nothing there); "model" that mask unrestricted;
    "auto" "model_in_lasso" unless its IoU with the lasso is below :data:`LASSO_MIN_IOU` (the
    model disagrees with the outline: the outline wins). A negative lasso removes the enclosed
    pixels.
    """
    if mode not in LASSO_MODES:
        raise ValueError(f"unknown lasso mode {mode!r}; choose from {LASSO_MODES}")
    inside = polygon_mask(polygon, current.shape)
    if not positive:
        return current & ~inside, None
    if mode == "lasso":
        return current | inside, None
    pred = predict(box=_stroke_box(polygon, 0.0, current.shape))
    found = pred.masks[0]
    if mode in ("model_in_lasso", "auto"):
        grow = max(1, int(round(slack * model_px)))
        found = found & ndimage.binary_dilation(inside, iterations=grow)
    if not found.any() or (mode == "auto" and _iou(found, inside) < LASSO_MIN_IOU):
        found = inside
    return current | found, float(pred.scores[0])
