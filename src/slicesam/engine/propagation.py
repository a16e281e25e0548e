"""Slice-to-slice propagation: prompt the next slice from the current mask, stop when unsure.

The walker is independent of the session and the model: it asks a ``predict(z, box)`` callable
for the mask on slice z given a box and decides, from the result, whether to go on. The next
slice's box is the bounding box of the current mask plus a margin; a walk without a z range
stops at the first of its stop rules (:func:`stop_rules`) that fires: the mask vanished, the
model's score, the area (growth, shrink, relative to the walk's largest), the overlap with the
previous mask, the mean intensity under the mask.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..metrics import dice
from ..models.base import Prediction
from . import presets
from .confidence import stability
from .masks import (
    BoxXYXY,
    clamp_box,
    erode_mask,
    expand_box,
    mask_bbox,
    pixel_extent,
    shorter_side,
)


@dataclass(frozen=True)
class PropagationParams:
    """Knobs of the stop rules and of the next-slice prompt.

    A next slice is prompted with a box alone (the bounding box of the current mask plus the
    margin): box-trained models walk worse with mask logits or points as extra prompts.

    Attributes:
        margin_model_px: box margin around the previous mask, in model-input pixels: a box
            without margin cuts off the part of the object that grew since the last slice.
        margin_rel: with this above 0, a next-slice box's margin is at most this fraction of
            the box's shorter side (:func:`next_box_margin`): a fixed margin inflates a
            structure a few pixels across on every slice, since the model fills its box; 0 = off.
        min_score: stop when the model's predicted IoU falls below this (the model no longer
            recognises the object).
        max_growth: stop when the area grows by more than this factor from one slice to the
            next (the mask leaked into a neighbour).
        min_shrink: stop when the area falls below this fraction of the previous slice's (the
            mask lost the object).
        min_overlap: stop when the Dice with the previous slice's mask falls below this (the
            mask jumped to another structure).
        min_area_px: stop when the mask has fewer pixels than this (the object ended).
        min_rel_area: stop when the area falls below this fraction of the largest area of the
            walk so far: an object ends by shrinking, and what the model finds after that is
            usually a neighbour.
        max_intensity_drop: stop when the mean intensity inside the mask (window scaled to
            0-1) falls by more than this below the seed slice's (the mask left the object).
        max_intensity_rise: stop when that mean intensity rises by more than this above the
            lowest one of the walk so far, the seed slice's included (the mask slid into a
            brighter neighbour across a dimmer gap); 0 = off.
        converged_dice: a re-propagation from a correction stops where the new mask has at
            least this Dice with the mask already there (a correction changes only the slices
            it improves).
        keep_surer_by: a re-propagation from a correction also stops where the mask already
            there has a confidence higher than the new one's by more than this, so a re-walk
            does not overwrite good propagated slices with worse ones (negative: off).
        bound_by_box: in a ranged propagation (the user gave a z range: a 3D box), no
            next-slice box may leave the anchor's box (plus the margin), so a walk cannot
            drift out of the box the user drew.
        rewalk_reference: a re-propagation from a corrected slice compares its area and
            intensity-fall rules with the object's largest slice rather than with the
            corrected one (:class:`WalkReference`): a correction near the object's end would
            otherwise start from a small, dim slice against which a neighbour looks like more
            object.
        removal_within_extent: the re-walk of a negative correction (click, scribble or
            lasso) writes only between the object's first and last slices: a prompt that
            removes voxels near an object's end would otherwise start a walk past that end and
            add slices the user never asked for.
        max_overshoot_erosion_px: where the model's mask on a slice the user boxed reaches
            past the box (a box prompt is tight: the object touches its sides, no more) by k
            pixels on average over the four sides (the nearest whole number, halves rounded
            down), that mask and every mask propagated for the object are eroded by k pixels,
            at most this many (:func:`~slicesam.engine.masks.overshoot_erosion`): a model that
            draws a small structure a pixel too wide all round would do so on every slice;
            0 = off.
        max_small_growth: where a next-slice box is at most ``small_side_px`` pixels across
            (its shorter side) and the mask it gives holds more than 1 + this times the
            previous slice's pixels, the mask's logits are thresholded higher, from 0.5 to 3
            in steps of 0.5, until it holds no more (:func:`within_growth`): the model fills
            the box it gets, so the walk's margin would make a small structure's every mask
            about a pixel too wide all round. First walks only: a re-walk from a correction
            may grow the object, which is what a positive click asks for. 0 = off.
        small_box_inset: in a first walk, where the mask a next-slice box is made from is at
            most ``small_side_px`` pixels across (its pixel extent's shorter side, before the
            margin) and the object's masks are not eroded (``erode_px`` 0), the box's margin
            is this many pixels less (not below 0): with 0.5 the box runs from the mask's
            outermost pixel centres, as a tight user box does, so a small structure is not
            drawn out to a box a pixel too wide. Re-walks keep the full margin; 0 = off.
        small_side_px: see ``max_small_growth`` (which measures the next-slice box, margin
            included) and ``small_box_inset`` (which measures the mask's extent).

    The per-modality values are in :mod:`slicesam.engine.presets`. Sessions record these
    fields in their autosave journal; a journal written by a version with fields that no
    longer exist is read without them (:func:`~slicesam.engine.autosave.params_of`).
    """

    margin_model_px: float = 3.0
    margin_rel: float = 0.0
    min_score: float = 0.5
    max_growth: float = 2.0
    min_shrink: float = 0.15
    min_overlap: float = 0.3
    min_area_px: int = 4
    min_rel_area: float = 0.25
    max_intensity_drop: float = 0.1
    max_intensity_rise: float = 0.0
    converged_dice: float = 0.98
    keep_surer_by: float = 0.1
    bound_by_box: bool = True
    rewalk_reference: bool = False
    removal_within_extent: bool = True
    max_overshoot_erosion_px: int = 2
    max_small_growth: float = 0.0
    small_box_inset: float = 0.0
    small_side_px: float = 12.0


#: The logit thresholds :func:`within_growth` tries, in order.
GROWTH_THRESHOLDS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)


def default_params(modality: str | None) -> PropagationParams:
    """The propagation settings a session on a volume of this modality starts with: the
    defaults with the modality's overrides from :data:`slicesam.engine.presets.PROPAGATION`."""
    return dataclasses.replace(
        PropagationParams(), **presets.overrides(presets.PROPAGATION, modality)
    )


# -- stop rules ----------------------------------------------------------------------------------
@dataclass
class Candidate:
    """A walk's candidate mask for its next slice, with what the stop rules compare it with.

    Attributes:
        mask: the (y, x) bool mask the model predicted.
        score: the model's predicted IoU for it.
        prev: the previous slice's mask.
        prev_area, max_area: the previous and the largest area of the walk (pixels).
        intensity: the mean intensity (0-1) under ``mask``; None: no intensity rules.
        start_intensity, lowest_intensity: the walk's seed intensity and its lowest so far.
    """

    mask: np.ndarray
    score: float
    prev: np.ndarray
    prev_area: int
    max_area: int
    intensity: float | None
    start_intensity: float
    lowest_intensity: float

    @functools.cached_property
    def area(self) -> int:
        return int(self.mask.sum())


class StopRule(Protocol):
    """One reason to end an unconstrained walk: ``check`` returns why, or None."""

    def check(self, c: Candidate) -> str | None: ...


@dataclass(frozen=True)
class Vanished:
    """The mask holds fewer than ``min_area_px`` pixels."""

    min_area_px: int

    def check(self, c: Candidate) -> str | None:
        return "object vanished" if c.area < self.min_area_px else None


@dataclass(frozen=True)
class ScoreBelow:
    """The model's predicted IoU is below ``min_score``."""

    min_score: float

    def check(self, c: Candidate) -> str | None:
        return f"low confidence ({c.score:.2f})" if c.score < self.min_score else None


@dataclass(frozen=True)
class AreaJump:
    """The area grew by more than ``max_growth`` times the previous slice's."""

    max_growth: float

    def check(self, c: Candidate) -> str | None:
        if c.prev_area and c.area > self.max_growth * c.prev_area:
            return f"area jumped x{c.area / c.prev_area:.1f}"
        return None


@dataclass(frozen=True)
class AreaFall:
    """The area fell below ``min_shrink`` times the previous slice's."""

    min_shrink: float

    def check(self, c: Candidate) -> str | None:
        if c.prev_area and c.area < self.min_shrink * c.prev_area:
            return f"area fell to {c.area / c.prev_area:.0%}"
        return None


@dataclass(frozen=True)
class OverlapBelow:
    """The Dice with the previous slice's mask is below ``min_overlap``."""

    min_overlap: float

    def check(self, c: Candidate) -> str | None:
        if dice(c.mask, c.prev) < self.min_overlap:
            return "object moved away from the previous slice"
        return None


@dataclass(frozen=True)
class BelowLargest:
    """The area fell below ``min_rel_area`` times the walk's largest."""

    min_rel_area: float

    def check(self, c: Candidate) -> str | None:
        if c.area < self.min_rel_area * c.max_area:
            return f"area fell to {c.area / c.max_area:.0%} of the largest"
        return None


@dataclass(frozen=True)
class IntensityFall:
    """The mean intensity under the mask fell more than ``max_drop`` below the seed's."""

    max_drop: float

    def check(self, c: Candidate) -> str | None:
        if c.intensity is not None and c.start_intensity - c.intensity > self.max_drop:
            return "the mask's intensity fell"
        return None


@dataclass(frozen=True)
class IntensityRise:
    """The mean intensity under the mask rose more than ``max_rise`` above the walk's
    lowest."""

    max_rise: float

    def check(self, c: Candidate) -> str | None:
        if c.intensity is not None and c.intensity - c.lowest_intensity > self.max_rise:
            return "the mask's intensity rose (a neighbour)"
        return None


def stop_rules(params: PropagationParams) -> list[StopRule]:
    """The stop rules of an unconstrained walk, in the order they are checked."""
    rules: list[StopRule] = [
        Vanished(params.min_area_px),
        ScoreBelow(params.min_score),
        AreaJump(params.max_growth),
        AreaFall(params.min_shrink),
        OverlapBelow(params.min_overlap),
        BelowLargest(params.min_rel_area),
        IntensityFall(params.max_intensity_drop),
    ]
    if params.max_intensity_rise:
        rules.append(IntensityRise(params.max_intensity_rise))
    return rules


def stop_reason(rules: list[StopRule], candidate: Candidate) -> str | None:
    """Why a walk ends at ``candidate`` (the first rule that fires), or None: it goes on."""
    for rule in rules:
        reason = rule.check(candidate)
        if reason is not None:
            return reason
    return None


@dataclass
class Step:
    """The result for one slice of a walk."""

    z: int
    mask: np.ndarray
    score: float
    low_res_logits: np.ndarray
    evidence: dict[str, float]


@dataclass(frozen=True)
class WalkReference:
    """What a re-walk from a corrected slice knows of the object beyond that slice.

    A walk's relative stop rules compare each slice with the walk's own start: the largest
    area so far, the seed's intensity. A correction near an object's end would start a
    re-walk from a small, dim slice, against which the next neighbour looks like more
    object; so a re-walk compares with the whole object instead.

    Attributes:
        max_area: the object's largest area on one slice (pixels).
        intensity: the mean intensity (0-1) inside the object on that slice.
    """

    max_area: int
    intensity: float


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
    predict: Callable[..., Prediction],
    *,
    margin_px: float,
    params: PropagationParams,
    constrained: bool = False,
    fallback_box: BoxXYXY | None = None,
    bound: BoxXYXY | None = None,
    image: Callable[[int], np.ndarray] | None = None,
    reference: WalkReference | None = None,
    erode_px: int = 0,
) -> Iterator[Step | Stop]:
    """Walk from ``start_z`` (exclusive) towards ``last_z`` (inclusive), one slice at a time.

    Args:
        start_z: the seed slice; its mask is ``start_mask`` (y, x) bool.
        direction: +1 (towards larger z) or -1.
        last_z: the last slice the walk may write.
        predict: ``predict(z, box=...)``: the model's prediction for slice z.
        margin_px: box margin around the previous mask, in slice pixels.
        params: stop-rule thresholds.
        constrained: the user gave a z range: the object is known to span it, so only the
            range ends the walk; an empty mask is retried with ``fallback_box``.
        fallback_box: the box (inclusive pixel indices) to use where the previous mask is
            empty (constrained walks).
        bound: a pixel-extent box no next-slice box may leave (the user's 3D box).
        image: ``image(z)`` -> the (y, x) slice as the model sees it, scaled to 0-1 (for the
            intensity stop rules).
        reference: the object's largest area and its intensity there, for a re-walk from a
            corrected slice: the area rules and the intensity-fall rule compare with these
            rather than with the seed slice (:class:`WalkReference`).
        erode_px: every predicted mask is eroded by this many pixels before the stop rules
            see it (``PropagationParams.max_overshoot_erosion_px``).

    Yields:
        a :class:`Step` per written slice, then one :class:`Stop`.
    """
    prev = start_mask
    prev_area = max_area = int(prev.sum())
    start_intensity = mean_in(image(start_z), start_mask) if image is not None else 0.0
    lowest_intensity = start_intensity
    if reference is not None:
        max_area = max(max_area, reference.max_area)
        start_intensity = reference.intensity
    z = start_z + direction
    shape = start_mask.shape
    rules = stop_rules(params)

    def in_range(zz: int) -> bool:
        return (zz <= last_z) if direction > 0 else (zz >= last_z)

    def small(box: BoxXYXY) -> bool:
        """Whether a box is that of a small structure (``params.small_side_px``)."""
        return shorter_side(box) <= params.small_side_px

    def grown(part: BoxXYXY) -> BoxXYXY:
        """A next-slice box: a mask's inclusive-index box as a pixel extent, plus the margin
        (less ``params.small_box_inset`` on a small structure)."""
        extent = pixel_extent(part)
        margin = next_box_margin(extent, margin_px, params.margin_rel)
        if params.small_box_inset > 0 and erode_px == 0 and small(extent):
            margin = max(0.0, margin - params.small_box_inset)
        return expand_box(extent, margin, shape, edge=1.0)

    def finish(mask: np.ndarray) -> np.ndarray:
        return erode_mask(mask, erode_px, params.min_area_px)

    while in_range(z):
        box = mask_bbox(prev)
        if box is None:
            if not (constrained and fallback_box is not None):
                yield Stop(z, "object vanished")
                return
            box = pixel_extent(fallback_box)
        else:
            box = grown(box)
            if bound is not None:
                box = clamp_box(box, bound)

        pred = predict_box(functools.partial(predict, z), box)
        limit = float("inf")
        if params.max_small_growth > 0 and prev_area and small(box):
            limit = (1.0 + params.max_small_growth) * prev_area
        pred.mask = within_growth(pred, finish, limit)
        intensity = None
        if not constrained:
            if image is not None:
                intensity = mean_in(image(z), pred.mask)
            candidate = Candidate(
                pred.mask,
                pred.score,
                prev,
                prev_area,
                max_area,
                intensity,
                start_intensity,
                lowest_intensity,
            )
            reason = stop_reason(rules, candidate)
            if reason is not None:
                yield Stop(z, reason)
                return
        mask, score = pred.mask, pred.score
        area = int(mask.sum())
        evidence = {
            "iou": score,
            "stability": stability(pred.low_res_logits),
            "agreement": dice(mask, prev),
        }
        yield Step(z, mask, score, pred.low_res_logits, evidence)
        if intensity is not None and area:
            lowest_intensity = min(lowest_intensity, intensity)
        if area:
            prev, prev_area = mask, area
            max_area = max(max_area, area)
        elif constrained:
            prev, prev_area = mask, 0
        z += direction
    yield Stop(z, "end of range")


def within_growth(
    pred: BoxPrediction, finish: Callable[[np.ndarray], np.ndarray], limit: float
) -> np.ndarray:
    """``finish(pred.mask)``, or where that holds more than ``limit`` pixels and the
    prediction has logits, the finished mask of its logits thresholded at the first of
    :data:`GROWTH_THRESHOLDS` that holds no more (at the highest one whose mask is not empty
    when none does). ``finish``: the walk's erosion of a raw (y, x) mask. See
    :attr:`PropagationParams.max_small_growth`."""
    mask = finish(pred.mask)
    if mask.sum() <= limit or pred.logits is None:
        return mask
    for threshold in GROWTH_THRESHOLDS:
        higher = finish(pred.at(threshold))  # type: ignore[arg-type]
        if not higher.any():
            break
        mask = higher
        if mask.sum() <= limit:
            break
    return mask


def next_box_margin(extent: BoxXYXY, margin_px: float, rel: float) -> float:
    """The margin (slice pixels) to grow a next-slice box of pixel extent ``extent`` by:
    ``margin_px``, at most ``rel`` times the box's shorter side when ``rel`` > 0
    (:attr:`PropagationParams.margin_rel`)."""
    if rel <= 0:
        return margin_px
    return min(margin_px, rel * shorter_side(extent))


@dataclass
class BoxPrediction:
    """One slice's result from :func:`predict_box`.

    Attributes:
        mask: (y, x) bool mask.
        score: the model's predicted IoU.
        low_res_logits: (h, w) low-resolution logits.
        logits: the (y, x) full-resolution logits, when the model gives them
            (:attr:`~slicesam.models.base.Prediction.logits`); None otherwise.
    """

    mask: np.ndarray
    score: float
    low_res_logits: np.ndarray
    logits: np.ndarray | None = None

    def at(self, threshold: float) -> np.ndarray | None:
        """The (y, x) bool mask with the logits thresholded at ``threshold`` instead of 0,
        or None without logits."""
        if self.logits is None:
            return None
        return self.logits > threshold


def predict_box(predict: Callable[..., Prediction], box: BoxXYXY) -> BoxPrediction:
    """The model's prediction for a pixel-extent ``box`` (``predict(box=...)`` for the
    slice)."""
    p = predict(box=box)
    logits = p.logits[0] if p.logits is not None else None
    return BoxPrediction(np.array(p.masks[0]), float(p.scores[0]), p.low_res_logits[0], logits)


def mean_in(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean of ``image`` over a (y, x) mask (0 for an empty mask)."""
    return float(image[mask].mean()) if mask.any() else 0.0
