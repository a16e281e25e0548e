"""How clicks become masks.

Models that understand points (SAM) get the slice's box, all its clicks and the previous
low-res logits in one prompt. Box-only models (LiteMedSAM ignores points on their own) get the
region under the click from boxes centred on it at a few scales; a positive click adds that
region to the current mask, a negative click removes it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..models.base import Prediction
from ..prompts import Point
from .masks import BoxXYXY, clip_box, disk

#: Half widths, in model-input pixels, of the boxes tried around a click on box-only models.
CLICK_BOX_HALF_WIDTHS = (4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0)


def points_arrays(points: list[Point]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) float (x, y) coordinates and (N,) int labels (1 positive, 0 negative)."""
    coords = np.array([[p.x, p.y] for p in points], dtype=np.float64).reshape(-1, 2)
    labels = np.array([1 if p.positive else 0 for p in points], dtype=np.int64)
    return coords, labels


def region_at_click(
    predict: Callable[..., Prediction],
    shape: tuple[int, int],
    y: float,
    x: float,
    model_px: float,
) -> tuple[np.ndarray, float]:
    """The structure a click lands on, for box-only models.

    Tries boxes centred on the click with the half widths of ``CLICK_BOX_HALF_WIDTHS`` (model
    pixels; ``model_px`` slice pixels each) and keeps the mask that contains the click with the
    best predicted IoU. Falls back to a small disk when no mask contains the click. On the
    sample CT, one click at the centre of each of 7 organs gives a mean 2D Dice of 0.836 with
    these 9 scales against 0.664 with 4 (6, 12, 24, 48); a batched decoder call was slower on
    CPU than 9 single ones (~0.85 s against ~0.46 s per click).

    Returns:
        ((y, x) bool mask, confidence)
    """
    yi, xi = int(round(y)), int(round(x))
    best: tuple[float, np.ndarray] | None = None
    coords = np.array([[x, y]], dtype=np.float64)
    labels = np.ones(1, dtype=np.int64)
    for half in CLICK_BOX_HALF_WIDTHS:
        hw = half * model_px
        box = clip_box((x - hw, y - hw, x + hw, y + hw), shape)
        if box is None:
            continue
        pred = predict(box=box, points=coords, point_labels=labels)
        mask = pred.masks[0]
        score = float(pred.scores[0])
        if mask[yi, xi] and (best is None or score > best[0]):
            best = (score, mask)
    if best is None:
        return disk(shape, y, x, max(1.0, 2.0 * model_px)), 0.0
    return best[1], best[0]


def box_only_click(
    predict: Callable[..., Prediction],
    current: np.ndarray,
    point: Point,
    model_px: float,
) -> tuple[np.ndarray, float]:
    """New mask after one click on a box-only model: current +/- the region under the click."""
    region, score = region_at_click(predict, current.shape, point.y, point.x, model_px)
    if point.positive:
        return current | region, score
    out = current & ~region
    yi, xi = int(round(point.y)), int(round(point.x))
    out[yi, xi] = False
    return out, score


def point_model_click(
    predict: Callable[..., Prediction],
    box: BoxXYXY | None,
    points: list[Point],
    mask_input: np.ndarray | None,
) -> Prediction:
    """Prediction for all of a slice's clicks (and box) on a model that understands points."""
    coords, labels = points_arrays(points)
    single = box is None and len(points) == 1 and mask_input is None
    pred = predict(
        box=box, points=coords, point_labels=labels, mask_input=mask_input, multimask=single
    )
    if single:  # one click is ambiguous: keep the candidate the model trusts most
        best = int(np.argmax(pred.scores))
        pred = Prediction(
            pred.masks[best : best + 1],
            pred.scores[best : best + 1],
            pred.low_res_logits[best : best + 1],
        )
    return pred
