"""Slice-to-slice propagation: prompt the next slice from the current mask, stop when unsure.

The walker is independent of the session and the model: it asks a ``predict(z, box)`` callable
for the mask on slice z given a box and decides, from the result, whether to go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..metrics import dice
from ..models.base import Prediction
from .confidence import stability
from .masks import BoxXYXY, expand_box, mask_bbox


@dataclass(frozen=True)
class PropagationParams:
    """Knobs of the stop rule and of the next-slice prompt.

    Attributes:
        margin_model_px: box margin around the previous mask, in model-input pixels
            (MedSAM's 3D inference uses 3).
        min_score: stop when the model's predicted IoU falls below this.
        max_growth: stop when the area grows by more than this factor from one slice to the next.
        min_shrink: stop when the area falls below this fraction of the previous slice's.
        min_overlap: stop when the Dice with the previous slice's mask falls below this.
        min_area_px: stop when the mask has fewer pixels than this.
        converged_dice: a re-propagation from a correction stops where the new mask has at
            least this Dice with the mask already there.
        interpolate_below: between two anchors, slices whose confidence is below this (and
            slices no walk reached) are filled by shape-based interpolation instead; 0 fills
            only the unreached ones.
    """

    margin_model_px: float = 3.0
    min_score: float = 0.5
    max_growth: float = 2.0
    min_shrink: float = 0.15
    min_overlap: float = 0.3
    min_area_px: int = 4
    converged_dice: float = 0.98
    interpolate_below: float = 0.0


@dataclass
class Step:
    """The result for one slice of a walk."""

    z: int
    mask: np.ndarray
    score: float
    low_res_logits: np.ndarray
    evidence: dict[str, float]


@dataclass
class Stop:
    """Why a walk ended, and at which slice (the first slice not written)."""

    z: int
    reason: str


def walk(
    start_z: int,
    start_mask: np.ndarray,
    direction: int,
    last_z: int,
    predict: Callable[[int, BoxXYXY], Prediction],
    *,
    margin_px: float,
    params: PropagationParams,
    constrained: bool = False,
    fallback_box: BoxXYXY | None = None,
) -> Iterator[Step | Stop]:
    """Walk from ``start_z`` (exclusive) towards ``last_z`` (inclusive), one slice at a time.

    Args:
        start_z: the seed slice; its mask is ``start_mask`` (y, x) bool.
        direction: +1 (towards larger z) or -1.
        last_z: the last slice the walk may write.
        predict: returns the model's prediction for slice z prompted with a box.
        margin_px: box margin around the previous mask, in slice pixels.
        params: stop-rule thresholds.
        constrained: the user gave a z range: the object is known to span it, so only the
            range ends the walk; an empty mask is retried with ``fallback_box``.
        fallback_box: the box to use where the previous mask is empty (constrained walks).

    Yields:
        a :class:`Step` per written slice, then one :class:`Stop`.
    """
    prev = start_mask
    prev_area = int(prev.sum())
    z = start_z + direction
    shape = start_mask.shape
    while (z <= last_z) if direction > 0 else (z >= last_z):
        box = mask_bbox(prev)
        if box is None:
            if not (constrained and fallback_box is not None):
                yield Stop(z, "object vanished")
                return
            box = fallback_box
        else:
            box = expand_box(box, margin_px, shape)
        pred = predict(z, box)
        mask = pred.masks[0]
        score = float(pred.scores[0])
        area = int(mask.sum())
        if not constrained:
            reason = None
            if area < params.min_area_px:
                reason = "object vanished"
            elif score < params.min_score:
                reason = f"low confidence ({score:.2f})"
            elif prev_area and area > params.max_growth * prev_area:
                reason = f"area jumped x{area / prev_area:.1f}"
            elif prev_area and area < params.min_shrink * prev_area:
                reason = f"area fell to {area / prev_area:.0%}"
            elif dice(mask, prev) < params.min_overlap:
                reason = "object moved away from the previous slice"
            if reason is not None:
                yield Stop(z, reason)
                return
        evidence = {
            "iou": score,
            "stability": stability(pred.low_res_logits[0]),
            "agreement": dice(mask, prev),
        }
        yield Step(z, mask, score, pred.low_res_logits[0], evidence)
        if area:
            prev, prev_area = mask, area
        elif constrained:
            prev, prev_area = mask, 0
        z += direction
    yield Stop(z, "end of range")
