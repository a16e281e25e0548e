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
from .masks import BoxXYXY, clip_box, disk, expand_box, mask_bbox, pixel_extent

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


#: Ways a click on a box-only model can become a mask (see :func:`box_only_click`).
CLICK_STRATEGIES = ("region", "refit", "consistent")


def _honours(mask: np.ndarray, clicks: list[Point]) -> int:
    """How many of ``clicks`` a (y, x) mask agrees with (positive inside, negative outside)."""
    h, w = mask.shape
    ok = 0
    for c in clicks:
        yi, xi = min(max(int(round(c.y)), 0), h - 1), min(max(int(round(c.x)), 0), w - 1)
        ok += bool(mask[yi, xi]) == c.positive
    return ok


def _refit_box(
    current: np.ndarray, clicks: list[Point], hint: np.ndarray | None, margin: float
) -> BoxXYXY | None:
    """A box around the current mask (or, where it is empty, the hint mask) and every positive
    click, grown by ``margin`` pixels."""
    base = current if current.any() else hint
    xs: list[float] = [c.x for c in clicks if c.positive]
    ys: list[float] = [c.y for c in clicks if c.positive]
    xs += [c.x + 1.0 for c in clicks if c.positive]
    ys += [c.y + 1.0 for c in clicks if c.positive]
    if base is not None and base.any():
        box = pixel_extent(mask_bbox(base))  # type: ignore[arg-type]
        xs += [box[0], box[2]]
        ys += [box[1], box[3]]
    if not xs:
        return None
    box = (min(xs), min(ys), max(xs), max(ys))
    return expand_box(box, margin, current.shape, edge=1.0)


def _cut_boxes(box: BoxXYXY, point: Point) -> list[BoxXYXY]:
    """The four pixel-extent boxes left when ``box`` (a pixel extent) is cut beside the
    clicked pixel (left, right, top, bottom part), largest first; those thinner than 2 pixels
    are dropped."""
    x0, y0, x1, y1 = box
    px, py = round(point.x), round(point.y)
    parts = [
        (x0, y0, px, y1),
        (px + 1.0, y0, x1, y1),
        (x0, y0, x1, py),
        (x0, py + 1.0, x1, y1),
    ]
    parts = [b for b in parts if b[2] - b[0] >= 2 and b[3] - b[1] >= 2]
    return sorted(parts, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))


def box_only_click(
    predict: Callable[..., Prediction],
    current: np.ndarray,
    point: Point,
    model_px: float,
    *,
    clicks: list[Point] | None = None,
    hint: np.ndarray | None = None,
    strategy: str = "consistent",
) -> tuple[np.ndarray, float]:
    """New (y, x) mask after one click on a box-only model, and its confidence.

    Strategies:

    - ``"region"``: the current mask plus (positive) or minus (negative) the structure under
      the click (:func:`region_at_click`);
    - ``"refit"``: a positive click re-fits the box around the current mask and the click
      (the ``hint`` mask, e.g. the neighbour slice's, stands in for an empty current mask); a
      negative click falls back to ``"region"``;
    - ``"consistent"``: all of the candidates above, plus for a negative click the boxes left
      when the current mask's box is cut beside the click; the candidate that agrees with the
      most of the slice's clicks wins, ties going to the model's predicted IoU.

    Whatever the strategy, the clicked pixel ends up on the side the click asks for.

    Args:
        predict: ``predict(box=..., points=..., point_labels=...)`` on the slice.
        current: the object's (y, x) bool mask on the slice before the click.
        point: the new click.
        model_px: slice pixels per model-input pixel.
        clicks: every click on the slice so far, ``point`` included (default: ``[point]``).
        hint: a (y, x) bool mask suggesting the object's size where ``current`` is empty.
        strategy: one of :data:`CLICK_STRATEGIES`.
    """
    if strategy not in CLICK_STRATEGIES:
        raise ValueError(f"unknown click strategy {strategy!r}; choose from {CLICK_STRATEGIES}")
    clicks = list(clicks) if clicks else [point]
    region, region_score = region_at_click(predict, current.shape, point.y, point.x, model_px)
    candidates = [
        (current | region if point.positive else current & ~region, region_score),
    ]
    if strategy != "region":
        margin = 3.0 * model_px
        coords, labels = points_arrays([c for c in clicks if c.positive])
        if point.positive:
            box = _refit_box(current, clicks, hint, margin)
            if box is not None:
                pred = predict(box=box, points=coords, point_labels=labels)
                candidates.append((pred.masks[0], float(pred.scores[0])))
        elif strategy == "consistent" and current.any():
            box = pixel_extent(mask_bbox(current))  # type: ignore[arg-type]
            for part in _cut_boxes(box, point):
                pred = predict(box=part)
                candidates.append((pred.masks[0], float(pred.scores[0])))
    if strategy == "consistent":
        mask, score = max(candidates, key=lambda c: (_honours(c[0], clicks), c[1]))
    else:
        mask, score = candidates[-1] if point.positive else candidates[0]
    mask = mask.copy()
    yi, xi = int(round(point.y)), int(round(point.x))
    mask[yi, xi] = point.positive
    return mask, score


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
