"""Slice-to-slice propagation: prompt the next slice from the current mask, stop when unsure.

The walker is independent of the session and the model: it asks a ``predict(z, box)`` callable
for the mask on slice z given a box and decides, from the result, whether to go on. The next
slice's box is the bounding box of the current mask plus a margin; a walk without a z range
stops on the model's score, the area (growth, shrink, vanishing, relative to the walk's
largest), the overlap with the previous mask or the mean intensity under the mask
(:func:`stop_reason`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..metrics import dice
from ..models.base import Prediction
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
    """Knobs of the stop rule and of the next-slice prompt.

    A next slice is prompted with a box alone (the bounding box of the current mask plus the
    margin): LiteMedSAM was trained on boxes, and mask logits or points as extra prompts
    made its walks worse.

    Attributes:
        margin_model_px: box margin around the previous mask, in model-input pixels
            (MedSAM's 3D inference uses 3).
        margin_rel: with this above 0, a next-slice box's margin is at most this fraction of
            the box's shorter side (:func:`next_box_margin`): LiteMedSAM fills a box around
            a structure a few pixels across whatever its edges, so a margin of a fixed size
            inflates small structures by it on every slice and their next boxes with them
            (the CT spinal cord, 5 pixels across: 3 model pixels are 1.4 of its pixels a
            side, a box 8 pixels wide, masks 20-55 % too large); 0 = off (the default;
            :func:`default_params` sets :data:`CT_MR_MARGIN_REL` for CT and MR, not for
            microscopy, whose blurred nuclei want their wide margin).
        min_score: stop when the model's predicted IoU falls below this.
        max_growth: stop when the area grows by more than this factor from one slice to the next.
        min_shrink: stop when the area falls below this fraction of the previous slice's.
        min_overlap: stop when the Dice with the previous slice's mask falls below this.
        min_area_px: stop when the mask has fewer pixels than this.
        min_rel_area: stop when the area falls below this fraction of the largest area of the
            walk so far (an object ends by shrinking; what the model finds after that is
            usually a neighbour).
        max_intensity_drop: stop when the mean intensity inside the mask (window scaled to
            0-1) falls by more than this below the seed slice's (the mask left the object).
        max_intensity_rise: stop when that mean intensity rises by more than this above the
            lowest one of the walk so far, the seed slice's included (the mask slid into a
            brighter neighbour: between two nuclei the intensity dips, then rises); 0 = off
            (the default; :func:`default_params` turns it on for microscopy and MR).
        converged_dice: a re-propagation from a correction stops where the new mask has at
            least this Dice with the mask already there.
        keep_surer_by: a re-propagation from a correction also stops where the mask already
            there has a confidence higher than the new one's by more than this (negative:
            off). 0.1: every P3 figure equal or better (MR after 3 clicks 0.785 -> 0.789,
            Arabidopsis NoC85 7.4 -> 7.0); 0 lowers MR after 5 clicks (0.800 -> 0.777).
        bound_by_box: in a ranged propagation (the user gave a z range: a 3D box), no
            next-slice box may leave the anchor's box (plus the margin).
        rewalk_reference: a re-propagation from a corrected slice compares its area and
            intensity-fall rules with the object's largest slice rather than with the
            corrected one (:class:`WalkReference`); off by default (:func:`default_params`
            turns it on for microscopy).
        max_overshoot_erosion_px: where the model's mask on a slice the user boxed reaches
            past the box (a box prompt is tight: the object touches its sides, no more) by k
            pixels on average over the four sides (the nearest whole number, halves rounded
            down), that mask and every mask propagated for the object are eroded by k
            pixels, at most this many (:func:`~slicesam.engine.masks.overshoot_erosion`):
            LiteMedSAM draws small structures about a pixel too wide all round (the MR
            aorta, 7 pixels across: 2D Dice 0.77 -> 0.91 on its largest slice; the CT spinal
            cord, 4 pixels across: 0.62 -> 0.89); 0 = off.
        max_small_growth: where a next-slice box is at most ``small_side_px`` pixels across
            (its shorter side) and the mask it gives holds more than 1 + this times the
            previous slice's pixels, the mask's logits are thresholded higher, from 0.5 to 3
            in steps of 0.5, until it holds no more (:func:`within_growth`): LiteMedSAM fills
            the box it gets, and on a structure a few pixels across the walk's margin makes
            every mask about a pixel too wide all round (the CT aorta, 7 pixels across: with
            its tight box 2D Dice 0.93-0.99 on z 19-29, with the box grown by the walk's 1.4
            pixels 0.80-0.93; its logits at 2 instead of 0 give back 0.935 on average).
            First walks only: a re-walk from a correction may grow the object, which is
            what a positive click asks for. 0 = off (the default; :func:`default_params`
            sets :data:`CT_MAX_SMALL_GROWTH` for CT).
        small_box_inset: in a first walk, where the mask a next-slice box is made from is at
            most ``small_side_px`` pixels across (its pixel extent's shorter side, before the
            margin) and the object's masks are not eroded (``erode_px`` 0: its mask
            on the boxed slice did not reach past the user's box), the box's margin is this
            many pixels less (not below 0): with 0.5 the box runs from the mask's outermost
            pixel centres, as a tight user box does (BENCHMARK.md), rather than from their
            outer edges, and LiteMedSAM draws a small structure out to its box's edges (the
            CT aorta's P2 0.853 -> 0.887, the IVC's 0.880 -> 0.904). Re-walks from a
            correction keep the full margin, as for ``max_small_growth``. 0 = off (the
            default; :func:`default_params` sets :data:`CT_SMALL_BOX_INSET` for CT).
        small_side_px: see ``max_small_growth`` (which measures the next-slice box, margin
            included) and ``small_box_inset`` (which measures the mask's extent).

    Sessions record these fields in their autosave journal; a journal written by a version
    with fields that no longer exist (rules deleted since) is read without them
    (:func:`~slicesam.engine.autosave.params_of`).
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
    max_overshoot_erosion_px: int = 2
    max_small_growth: float = 0.0
    small_box_inset: float = 0.0
    small_side_px: float = 12.0


#: :attr:`PropagationParams.max_intensity_rise` for microscopy (:func:`default_params`).
MICROSCOPY_INTENSITY_RISE = 0.05

#: :attr:`PropagationParams.max_intensity_rise` for MR (:func:`default_params`).
MR_INTENSITY_RISE = 0.2

#: :attr:`PropagationParams.margin_model_px` for microscopy (:func:`default_params`).
MICROSCOPY_MARGIN_MODEL_PX = 6.0

#: :attr:`PropagationParams.margin_rel` for CT and MR (:func:`default_params`).
CT_MR_MARGIN_REL = 0.2

#: :attr:`PropagationParams.max_small_growth` for CT (:func:`default_params`).
CT_MAX_SMALL_GROWTH = 0.1

#: :attr:`PropagationParams.small_box_inset` for CT (:func:`default_params`).
CT_SMALL_BOX_INSET = 0.5

#: The logit thresholds :func:`within_growth` tries, in order.
GROWTH_THRESHOLDS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)


def default_params(modality: str | None) -> PropagationParams:
    """The propagation settings a session on a volume of this modality starts with.

    Microscopy adds the intensity-rise stop rule (:data:`MICROSCOPY_INTENSITY_RISE`): nuclei
    that touch in z are separated by a dimmer, blurred gap, so a walk whose mask grows
    brighter again has entered the next nucleus. On the two nuclei datasets it lifts P2
    (0.721 -> 0.724, 0.628 -> 0.650) and P3 after 5 clicks (0.781 -> 0.806, 0.743 -> 0.772);
    on CT, where intensity varies inside an organ, it lowers P3 (after 3 clicks 0.780 ->
    0.763), so CT keeps the plain settings (BENCHMARKS.md). MR uses it with a wider margin
    (:data:`MR_INTENSITY_RISE`): a walk off the end of the left kidney into brighter tissue
    is stopped (P2 0.688 -> 0.712, P3 after 3 clicks 0.778 -> 0.785). Re-walks from a
    correction use the same threshold as first walks.

    Microscopy also re-walks from a correction against the whole object
    (``rewalk_reference``): Arabidopsis P3 after 3 clicks 0.805 -> 0.826, NoC85 8.6 -> 7.3;
    synthetic nuclei 0.735 -> 0.747; on CT it lowers P3 after 3 clicks (0.780 -> 0.772).
    Its next-slice boxes get a wider margin (:data:`MICROSCOPY_MARGIN_MODEL_PX`): the nuclei
    volumes' slices are small (about 60 and 100 px), so the model sees them enlarged 2.5-4x
    and their blurred borders wide; 3 model pixels are less than one slice pixel there, and
    the boxes cut into the nuclei (P1 / P2 0.710 / 0.668 -> 0.744 / 0.704 on the synthetic
    nuclei, 0.776 / 0.724 -> 0.782 / 0.739 on Arabidopsis, every P3 figure higher).

    CT and MR cap the margin of small structures' boxes (:data:`CT_MR_MARGIN_REL`); CT also
    limits the growth of small structures and boxes them from their pixel centres
    (:data:`CT_MAX_SMALL_GROWTH`, :data:`CT_SMALL_BOX_INSET`).
    """
    if modality == "MR":
        return PropagationParams(
            max_intensity_rise=MR_INTENSITY_RISE,
            margin_rel=CT_MR_MARGIN_REL,
        )
    if modality == "microscopy":
        return PropagationParams(
            max_intensity_rise=MICROSCOPY_INTENSITY_RISE,
            rewalk_reference=True,
            margin_model_px=MICROSCOPY_MARGIN_MODEL_PX,
        )
    if modality == "CT":
        return PropagationParams(
            margin_rel=CT_MR_MARGIN_REL,
            max_small_growth=CT_MAX_SMALL_GROWTH,
            small_box_inset=CT_SMALL_BOX_INSET,
        )
    return PropagationParams()


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
            reason = stop_reason(
                pred.mask,
                pred.score,
                prev,
                params,
                prev_area=prev_area,
                max_area=max_area,
                intensity=intensity,
                start_intensity=start_intensity,
                lowest_intensity=lowest_intensity,
            )
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


def stop_reason(
    mask: np.ndarray,
    score: float,
    prev: np.ndarray,
    params: PropagationParams,
    *,
    prev_area: int,
    max_area: int,
    intensity: float | None,
    start_intensity: float,
    lowest_intensity: float,
) -> str | None:
    """Why an unconstrained walk ends at a slice whose (y, x) bool ``mask`` the model predicted
    with ``score`` from the previous slice's mask ``prev`` (None: it goes on).

    ``prev_area``, ``max_area``: the previous and the largest area of the walk (pixels);
    ``intensity``: the mean intensity (0-1) under ``mask`` (None: no intensity rules),
    compared with the walk's ``start_intensity`` and ``lowest_intensity``.
    """
    area = int(mask.sum())
    if area < params.min_area_px:
        return "object vanished"
    if score < params.min_score:
        return f"low confidence ({score:.2f})"
    if prev_area and area > params.max_growth * prev_area:
        return f"area jumped x{area / prev_area:.1f}"
    if prev_area and area < params.min_shrink * prev_area:
        return f"area fell to {area / prev_area:.0%}"
    if dice(mask, prev) < params.min_overlap:
        return "object moved away from the previous slice"
    if area < params.min_rel_area * max_area:
        return f"area fell to {area / max_area:.0%} of the largest"
    if intensity is not None and start_intensity - intensity > params.max_intensity_drop:
        return "the mask's intensity fell"
    if (
        intensity is not None
        and params.max_intensity_rise
        and intensity - lowest_intensity > params.max_intensity_rise
    ):
        return "the mask's intensity rose (a neighbour)"
    return None


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
