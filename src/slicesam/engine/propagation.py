"""Slice-to-slice propagation: prompt the next slice from the current mask, stop when unsure.

The walker is independent of the session and the model: it asks a ``predict(z, box)`` callable
for the mask on slice z given a box and decides, from the result, whether to go on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..metrics import dice
from ..models.base import Prediction
from .confidence import stability
from .masks import (
    BoxXYXY,
    clamp_box,
    core_bbox,
    erode_mask,
    expand_box,
    part_boxes,
    pixel_extent,
    shorter_side,
)


@dataclass(frozen=True)
class PropagationParams:
    """Knobs of the stop rule and of the next-slice prompt.

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
        fall_contrast: with this above 0, a fall in intensity (``max_intensity_drop``) stops
            the walk only where the mask's contrast with its surroundings (its mean
            intensity minus that of a ring ``contrast_ring_px`` wide around it) is also
            below this fraction of the seed slice's: a nucleus dims towards its ends along
            z, but stays brighter than what surrounds it, while a mask that left it does
            not; 0 = the fall alone stops (the default; :func:`default_params` sets
            :data:`MICROSCOPY_FALL_CONTRAST` for microscopy).
        contrast_ring_px: the ring's width for ``fall_contrast``, in slice pixels.
        max_intensity_rise: stop when that mean intensity rises by more than this above the
            lowest one of the walk so far, the seed slice's included (the mask slid into a
            brighter neighbour: between two nuclei the intensity dips, then rises); 0 = off
            (the default; :func:`default_params` turns it on for microscopy and MR).
        rewalk_intensity_rise: a re-walk from a correction uses this ``max_intensity_rise``
            while it is inside the object's current run of slices (0: the same as every
            walk); past the object's current ends it keeps ``max_intensity_rise``: where the
            first walk ended the object is the first walk's decision, which a correction
            inside the object says nothing about (:func:`default_params` sets
            :data:`MICROSCOPY_REWALK_INTENSITY_RISE` for microscopy).
        max_regrowth: stop when, after the area has fallen below ``regrowth_after`` of the
            largest area of the walk, it grows again by more than this factor over the
            smallest area since (a convex object's cross-sections shrink monotonically away
            from its largest one; regrowth means the walk entered a neighbour); 0 = off.
        regrowth_after: see ``max_regrowth``.
        converged_dice: a re-propagation from a correction stops where the new mask has at
            least this Dice with the mask already there.
        keep_surer_by: a re-propagation from a correction also stops where the mask already
            there has a confidence higher than the new one's by more than this (negative:
            off). 0.1: every P3 figure equal or better (MR after 3 clicks 0.785 -> 0.789,
            Arabidopsis NoC85 7.4 -> 7.0); 0 lowers MR after 5 clicks (0.800 -> 0.777).
        interpolate_below: between two anchors, slices whose confidence is below this (and
            slices no walk reached) are filled by shape-based interpolation instead; 0 fills
            only the unreached ones.
        prompt: how the next slice is prompted from the current mask: "box" (its bounding
            box plus the margin), "box+mask" (also its low-res logits as mask input) or
            "box+points" (also ``n_points`` positive points at the mask's innermost pixels).
        n_points: points per slice for ``prompt="box+points"``.
        bound_by_box: in a ranged propagation (the user gave a z range: a 3D box), no
            next-slice box may leave the anchor's box (plus the margin).
        box_jitter_model_px: a user's box is predicted grown by each of these (model-input
            pixels) and the masks voted (:func:`predict_box`).
        jitter_model_px: the same for the next-slice boxes of a propagation.
        min_fragment: the next slice's box is the bounding box of the mask's connected parts
            that hold at least this fraction of its largest part's pixels
            (:func:`~slicesam.engine.masks.core_bbox`): a few stray pixels far from a small
            object would otherwise stretch the box over its neighbours; 0 keeps every part
            (the default: an organ's cross-section may split into parts of any size;
            :func:`default_params` sets 0.25 for microscopy).
        split_parts: when the current mask has two or more connected parts that each hold at
            least this fraction of its largest part's pixels, the next slice is also prompted
            with one box per such part (plain boxes), the masks united, and that result is
            kept when it agrees better (Dice) with the current mask than the one box's: a
            structure in two parts (both caudates, both lateral ventricles) is then not
            prompted with one box spanning the gap between them, which the model fills;
            0 = one box always (the default; :func:`default_params` sets 0.25 for MR).
        rewalk_reference: a re-propagation from a corrected slice compares its area and
            intensity-fall rules with the object's largest slice rather than with the
            corrected one (:class:`WalkReference`); off by default (:func:`default_params`
            turns it on for microscopy).
        bridge_gap: where an unconstrained walk would stop, the same box is tried on up to
            this many slices further on; the first that passes every stop rule continues
            the walk, and the slices stepped over are left as they are (:class:`Skip`): a
            structure that leaves the slab for a slice is found again beyond it; 0 = off
            (the default).
        max_overshoot_erosion_px: where the model's mask on a slice the user boxed reaches
            past the box (a box prompt is tight: the object touches its sides, no more) by k
            pixels on average over the four sides (the nearest whole number, halves rounded
            down), that mask and every mask propagated for the object are eroded by k
            pixels, at most this many (:func:`~slicesam.engine.masks.overshoot_erosion`):
            LiteMedSAM draws small structures about a pixel too wide all round (the MR
            aorta, 7 pixels across: 2D Dice 0.77 -> 0.91 on its largest slice; the CT spinal
            cord, 4 pixels across: 0.62 -> 0.89); 0 = off.
        trim_brighter: where the object's intensities are narrow (on its largest slice the
            user boxed, the 10th to 90th percentile within ``trim_max_spread``), the pixels
            brighter than their median by more than this are cut from every propagated mask
            and from a first click's mask on an empty slice (:func:`trim_brighter`): the
            model's masks of small soft-tissue structures take in the bright bone next to
            them (the CT spinal cord and the vertebral arch behind it), and the next slice's
            box follows the bone; 0 = off (the default; :func:`default_params` sets
            :data:`CT_TRIM_BRIGHTER` for CT).
        trim_max_spread: see ``trim_brighter``.
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

    The defaults were chosen with ``benchmarks/`` on the open datasets (BENCHMARKS.md): mask
    logits or interior points as extra prompts lower LiteMedSAM's P1 3D Dice on 4 of the 5
    datasets by 0.02-0.15 (it was trained on boxes; logits help only on the brain, where it
    fails anyway), box jitter helps user boxes but not propagation boxes, and the area and
    intensity rules stop walks that leave the object (P2); the regrowth rule (1.4 after
    0.5) lifts P2 on the synthetic nuclei from 0.586 to 0.628 and leaves the other datasets
    within 0.001 (0.5 rather than 0.75: CT P3 after 1 click 0.739 against 0.730).
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
    fall_contrast: float = 0.0
    contrast_ring_px: int = 3
    max_intensity_rise: float = 0.0
    rewalk_intensity_rise: float = 0.0
    max_regrowth: float = 1.4
    regrowth_after: float = 0.5
    converged_dice: float = 0.98
    keep_surer_by: float = 0.1
    interpolate_below: float = 0.0
    prompt: str = "box"
    n_points: int = 3
    bound_by_box: bool = True
    box_jitter_model_px: tuple[float, ...] = (0.0, 2.0, 4.0)
    jitter_model_px: tuple[float, ...] = (0.0,)
    rewalk_reference: bool = False
    min_fragment: float = 0.0
    split_parts: float = 0.0
    bridge_gap: int = 0
    max_overshoot_erosion_px: int = 2
    trim_brighter: float = 0.0
    trim_max_spread: float = 0.25
    max_small_growth: float = 0.0
    small_box_inset: float = 0.0
    small_side_px: float = 12.0


#: :attr:`PropagationParams.max_intensity_rise` for microscopy (:func:`default_params`).
MICROSCOPY_INTENSITY_RISE = 0.05

#: :attr:`PropagationParams.rewalk_intensity_rise` for microscopy (:func:`default_params`).
MICROSCOPY_REWALK_INTENSITY_RISE = 0.1

#: :attr:`PropagationParams.fall_contrast` for microscopy (:func:`default_params`).
MICROSCOPY_FALL_CONTRAST = 0.7

#: :attr:`PropagationParams.max_intensity_rise` for MR (:func:`default_params`).
MR_INTENSITY_RISE = 0.2

#: :attr:`PropagationParams.min_fragment` for microscopy (:func:`default_params`).
MICROSCOPY_MIN_FRAGMENT = 0.25

#: :attr:`PropagationParams.margin_model_px` for microscopy (:func:`default_params`).
MICROSCOPY_MARGIN_MODEL_PX = 6.0

#: :attr:`PropagationParams.split_parts` for MR (:func:`default_params`).
MR_SPLIT_PARTS = 0.25

#: :attr:`PropagationParams.bridge_gap` for MR (:func:`default_params`).
MR_BRIDGE_GAP = 2

#: :attr:`PropagationParams.trim_brighter` for CT (:func:`default_params`).
CT_TRIM_BRIGHTER = 0.3

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
    is stopped (P2 0.688 -> 0.712, P3 after 3 clicks 0.778 -> 0.785). MR walks also try one
    box per part of a mask in separate parts (:data:`MR_SPLIT_PARTS`): on the brain MR, whose
    caudates and lateral ventricles lie on both sides of the midline, P3 after 3 clicks
    0.194 -> 0.223 and after 5 clicks 0.223 -> 0.256 (the MR abdomen and the nuclei never
    split, identical figures); on CT it lowers P1 (the liver's lobes: 0.733 -> 0.702). And MR
    walks without a z range step over up to two slices where they would stop
    (:data:`MR_BRIDGE_GAP`; not the re-walks after a correction): a vertebra of the MR
    abdomen leaves its thick slab for a slice (P2 0.712 -> 0.740, that vertebra 0.61 ->
    0.80); on CT and the synthetic nuclei such walks resume in neighbouring structures.

    Microscopy also re-walks from a correction against the whole object
    (``rewalk_reference``): Arabidopsis P3 after 3 clicks 0.805 -> 0.826, NoC85 8.6 -> 7.3;
    synthetic nuclei 0.735 -> 0.747; on CT it lowers P3 after 3 clicks (0.780 -> 0.772).
    And its next-slice boxes ignore stray specks of the mask (``min_fragment``): a nucleus is
    one compact part, while an organ's cross-section may split (on CT it lowers P1 and P2:
    the pancreas loses its parts). Its next-slice boxes get a wider margin
    (:data:`MICROSCOPY_MARGIN_MODEL_PX`): the nuclei volumes' slices are small (about 60 and
    100 px), so the model sees them enlarged 2.5-4x and their blurred borders wide; 3 model
    pixels are less than one slice pixel there, and the boxes cut into the nuclei (P1 / P2
    0.710 / 0.668 -> 0.744 / 0.704 on the synthetic nuclei, 0.776 / 0.724 -> 0.782 / 0.739
    on Arabidopsis, every P3 figure higher). And a fall in the mask's intensity ends a
    microscopy walk only where its contrast with its surroundings has fallen too
    (:data:`MICROSCOPY_FALL_CONTRAST`): the nuclei dim towards their ends along z, and the
    fall alone ended most Arabidopsis walks 1-3 slices early (P2 0.739 -> 0.766, the
    synthetic nuclei 0.704 -> 0.710, P3 equal or higher but Arabidopsis after 10 clicks
    0.868 -> 0.867). Its first walks stop at a rise in intensity of 0.05 rather than 0.1
    (:data:`MICROSCOPY_INTENSITY_RISE`), while a re-walk from a correction keeps 0.1 inside
    the object's current slices (:data:`MICROSCOPY_REWALK_INTENSITY_RISE`) and 0.05 past
    them: P2 0.710 -> 0.718 on the synthetic nuclei, 0.766 -> 0.771 on Arabidopsis, every P3
    figure equal or higher (with 0.05 for the re-walks too, synthetic P3 after 5 clicks
    0.822 -> 0.814; with 0.1 past the ends, after 3 clicks 0.798 -> 0.793; 0.04 lowers P2,
    0.07 changes nothing).
    """
    if modality == "MR":
        return PropagationParams(
            max_intensity_rise=MR_INTENSITY_RISE,
            split_parts=MR_SPLIT_PARTS,
            bridge_gap=MR_BRIDGE_GAP,
            margin_rel=CT_MR_MARGIN_REL,
        )
    if modality == "microscopy":
        return PropagationParams(
            max_intensity_rise=MICROSCOPY_INTENSITY_RISE,
            rewalk_intensity_rise=MICROSCOPY_REWALK_INTENSITY_RISE,
            rewalk_reference=True,
            min_fragment=MICROSCOPY_MIN_FRAGMENT,
            margin_model_px=MICROSCOPY_MARGIN_MODEL_PX,
            fall_contrast=MICROSCOPY_FALL_CONTRAST,
        )
    if modality == "CT":
        return PropagationParams(
            trim_brighter=CT_TRIM_BRIGHTER,
            margin_rel=CT_MR_MARGIN_REL,
            max_small_growth=CT_MAX_SMALL_GROWTH,
            small_box_inset=CT_SMALL_BOX_INSET,
        )
    return PropagationParams()


def intensity_centre(image: np.ndarray, mask: np.ndarray, max_spread: float) -> float | None:
    """The median of ``image`` (0-1) over a (y, x) bool ``mask`` when the mask's intensities
    are narrow (10th to 90th percentile less than ``max_spread`` apart); None otherwise or for
    an empty mask (see ``PropagationParams.trim_brighter``)."""
    if not mask.any():
        return None
    values = image[mask]
    low, high = np.percentile(values, [10, 90])
    if high - low >= max_spread:
        return None
    return float(np.median(values))


def trim_brighter(
    image: np.ndarray, mask: np.ndarray, centre: float | None, tolerance: float
) -> np.ndarray:
    """The (y, x) bool ``mask`` without its pixels brighter than ``centre`` + ``tolerance``
    (``image`` 0-1); the mask itself when ``centre`` is None or ``tolerance`` is 0."""
    if centre is None or tolerance <= 0 or not mask.any():
        return mask
    return mask & (image <= centre + tolerance)


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
        contrast: that mean minus the mean of a ring around the object there
            (:func:`contrast_in`; for ``PropagationParams.fall_contrast``).
    """

    max_area: int
    intensity: float
    contrast: float


@dataclass
class Stop:
    """Why a walk ended, and at which slice (the first slice not written)."""

    z: int
    reason: str


@dataclass
class Skip:
    """A slice the walk stepped over (``PropagationParams.bridge_gap``): it is not written,
    and the walk goes on beyond it. ``reason``: why the walk would have stopped there."""

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
    start_logits: np.ndarray | None = None,
    bound: BoxXYXY | None = None,
    jitter_px: tuple[float, ...] = (0.0,),
    image: Callable[[int], np.ndarray] | None = None,
    reference: WalkReference | None = None,
    known_end: int | None = None,
    past_end_params: PropagationParams | None = None,
    erode_px: int = 0,
    centre: float | None = None,
) -> Iterator[Step | Skip | Stop]:
    """Walk from ``start_z`` (exclusive) towards ``last_z`` (inclusive), one slice at a time.

    Args:
        start_z: the seed slice; its mask is ``start_mask`` (y, x) bool.
        direction: +1 (towards larger z) or -1.
        last_z: the last slice the walk may write.
        predict: ``predict(z, box=..., points=..., point_labels=..., mask_input=...)``: the
            model's prediction for slice z.
        margin_px: box margin around the previous mask, in slice pixels.
        params: stop-rule thresholds.
        constrained: the user gave a z range: the object is known to span it, so only the
            range ends the walk; an empty mask is retried with ``fallback_box``.
        fallback_box: the box (inclusive pixel indices) to use where the previous mask is
            empty (constrained walks).
        start_logits: the seed slice's low-res logits, if known (for ``prompt="box+mask"``).
        bound: a pixel-extent box no next-slice box may leave (the user's 3D box).
        jitter_px: box offsets in slice pixels; with more than one, the slice's mask is the
            vote of the predictions for the box grown by each (:func:`predict_box`).
        image: ``image(z)`` -> the (y, x) slice as the model sees it, scaled to 0-1 (for the
            intensity stop rule).
        reference: the object's largest area and its intensity there, for a re-walk from a
            corrected slice: the area rules and the intensity-fall rule compare with these
            rather than with the seed slice (:class:`WalkReference`).
        known_end: for a re-walk, the last slice (in ``direction``) of the object's current
            run of slices; slices past it are judged with ``past_end_params`` (when given)
            rather than ``params``.
        erode_px: every predicted mask is eroded by this many pixels before the stop rules
            see it (``PropagationParams.max_overshoot_erosion_px``).
        centre: the object's median intensity (:func:`intensity_centre`; None: unknown or
            too spread): with ``params.trim_brighter`` and ``image``, every predicted mask
            loses its pixels brighter than it by more than that (:func:`trim_brighter`),
            and the intensity rules measure the seed without them.

    Yields:
        a :class:`Step` per written slice, a :class:`Skip` per slice stepped over
        (``params.bridge_gap``), then one :class:`Stop`.
    """
    prev = start_mask
    prev_logits = start_logits
    prev_area = max_area = int(prev.sum())
    if image is None or params.trim_brighter <= 0:
        centre = None
    start_pixels = image(start_z) if image is not None else None
    start_intensity = 0.0
    if start_pixels is not None:
        seed = trim_brighter(start_pixels, start_mask, centre, params.trim_brighter)
        start_intensity = mean_in(start_pixels, seed if seed.any() else start_mask)
    lowest_intensity = start_intensity
    with_contrast = image is not None and params.fall_contrast > 0
    ring = params.contrast_ring_px
    start_contrast = contrast_in(start_pixels, start_mask, ring) if with_contrast else None
    if reference is not None:
        max_area = max(max_area, reference.max_area)
        start_intensity = reference.intensity
        start_contrast = reference.contrast if with_contrast else None
    # the smallest area since the walk shrank below regrowth_after (0: not yet)
    shrunk_min = prev_area if 0 < prev_area < params.regrowth_after * max_area else 0
    z = start_z + direction
    shape = start_mask.shape

    def in_range(zz: int) -> bool:
        return (zz <= last_z) if direction > 0 else (zz >= last_z)

    def small(box: BoxXYXY) -> bool:
        """Whether a box is that of a small structure (``params.small_side_px``)."""
        return shorter_side(box) <= params.small_side_px

    def grown(part: BoxXYXY) -> BoxXYXY:
        """A next-slice box: a mask part's inclusive-index box as a pixel extent, plus the
        margin (less ``params.small_box_inset`` on a small structure)."""
        extent = pixel_extent(part)
        margin = next_box_margin(extent, margin_px, params.margin_rel)
        if params.small_box_inset > 0 and erode_px == 0 and small(extent):
            margin = max(0.0, margin - params.small_box_inset)
        return expand_box(extent, margin, shape, edge=1.0)

    def predict_from(zz: int, box: BoxXYXY) -> BoxPrediction:
        """Slice zz's prediction from ``box`` (and the current mask's parts)."""
        predict_z = functools.partial(predict, zz)
        pred = predict_box(
            predict_z, box, jitter_px, shape, extra=next_prompt(box, prev, prev_logits, params)
        )
        parts = part_boxes(prev, params.split_parts) if params.split_parts > 0 else []
        if len(parts) >= 2:
            boxes = [grown(b) for b in parts]
            if bound is not None:
                boxes = [clamp_box(b, bound) for b in boxes]
            split = unite([predict_box(predict_z, b, jitter_px, shape) for b in boxes])
            if dice(split.mask, prev) > dice(pred.mask, prev):
                pred = split
        return pred

    def slice_result(zz: int, box: BoxXYXY) -> tuple[BoxPrediction, str | None, float | None]:
        """Slice zz's prediction, why it ends the walk (None: it does not) and the mean
        intensity under its mask."""
        pred = predict_from(zz, box)
        # the windowed slice, for the trim and (unconstrained walks) the intensity rules
        pixels = (
            image(zz) if image is not None and (centre is not None or not constrained) else None
        )

        def finish(mask: np.ndarray) -> np.ndarray:
            mask = erode_mask(mask, erode_px, params.min_area_px)
            if centre is not None:
                mask = trim_brighter(pixels, mask, centre, params.trim_brighter)
            return mask

        limit = float("inf")
        if params.max_small_growth > 0 and prev_area and small(box):
            limit = (1.0 + params.max_small_growth) * prev_area
        pred.mask = within_growth(pred, finish, limit)
        if constrained:
            return pred, None, None
        intensity = mean_in(pixels, pred.mask) if pixels is not None else None
        contrast = contrast_in(pixels, pred.mask, ring) if with_contrast else None
        past_end = known_end is not None and (zz - known_end) * direction > 0
        reason = stop_reason(
            pred.mask,
            pred.score,
            prev,
            past_end_params if past_end and past_end_params is not None else params,
            prev_area=prev_area,
            max_area=max_area,
            shrunk_min=shrunk_min,
            intensity=intensity,
            start_intensity=start_intensity,
            lowest_intensity=lowest_intensity,
            contrast=contrast,
            start_contrast=start_contrast,
        )
        return pred, reason, intensity

    while in_range(z):
        box = core_bbox(prev, params.min_fragment)
        if box is None:
            if not (constrained and fallback_box is not None):
                yield Stop(z, "object vanished")
                return
            box = pixel_extent(fallback_box)
        else:
            box = grown(box)
            if bound is not None:
                box = clamp_box(box, bound)

        pred, reason, intensity = slice_result(z, box)
        if reason is not None:
            # a structure may leave the slab for a slice or two (a vertebra between two
            # discs): the same box further on may find it again, passing every rule
            failed = [reason]  # why each slice from z on would end the walk
            for k in range(1, params.bridge_gap + 1):
                zz = z + k * direction
                if not in_range(zz):
                    break
                far, far_reason, far_intensity = slice_result(zz, box)
                if far_reason is not None:
                    failed.append(far_reason)
                    continue
                for i, why in enumerate(failed):
                    yield Skip(z + i * direction, why)
                z, pred, reason, intensity = zz, far, None, far_intensity
                break
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
        if len(jitter_px) > 1:
            evidence["jitter"] = pred.agreement
        yield Step(z, mask, score, pred.low_res_logits, evidence)
        if intensity is not None and area:
            lowest_intensity = min(lowest_intensity, intensity)
        if area:
            prev, prev_area, prev_logits = mask, area, pred.low_res_logits
            max_area = max(max_area, area)
            if area < params.regrowth_after * max_area:
                shrunk_min = min(shrunk_min, area) if shrunk_min else area
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
    when none does). ``finish`` turns a raw (y, x) mask into the walk's (erosion, trim). See
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
    shrunk_min: int,
    intensity: float | None,
    start_intensity: float,
    lowest_intensity: float,
    contrast: float | None = None,
    start_contrast: float | None = None,
) -> str | None:
    """Why an unconstrained walk ends at a slice whose (y, x) bool ``mask`` the model predicted
    with ``score`` from the previous slice's mask ``prev`` (None: it goes on).

    ``prev_area``, ``max_area``: the previous and the largest area of the walk (pixels);
    ``shrunk_min``: the smallest area since the walk shrank below ``regrowth_after`` of the
    largest (0: not yet); ``intensity``: the mean intensity (0-1) under ``mask`` (None: no
    intensity rules), compared with the walk's ``start_intensity`` and ``lowest_intensity``;
    ``contrast``, ``start_contrast``: the mask's and the seed's :func:`contrast_in` (None:
    a fall in intensity stops the walk on its own; see ``PropagationParams.fall_contrast``).
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
        if contrast is None or start_contrast is None:
            return "the mask's intensity fell"
        if contrast < params.fall_contrast * start_contrast:
            return "the mask's intensity and contrast fell"
    if (
        intensity is not None
        and params.max_intensity_rise
        and intensity - lowest_intensity > params.max_intensity_rise
    ):
        return "the mask's intensity rose (a neighbour)"
    if params.max_regrowth and shrunk_min and area > params.max_regrowth * shrunk_min:
        return f"area grew x{area / shrunk_min:.1f} after shrinking (a neighbour)"
    return None


@dataclass
class BoxPrediction:
    """One slice's result from :func:`predict_box`.

    Attributes:
        mask: (y, x) bool mask (the majority vote over the jittered boxes).
        score: mean predicted IoU.
        low_res_logits: (h, w) logits of the prediction closest to the vote.
        agreement: mean pairwise Dice of the jittered predictions (1.0 for one box).
        logits: each jittered prediction's (y, x) full-resolution logits, when the model
            gives them (:attr:`~slicesam.models.base.Prediction.logits`); None otherwise.
    """

    mask: np.ndarray
    score: float
    low_res_logits: np.ndarray
    agreement: float
    logits: list[np.ndarray] | None = None

    def at(self, threshold: float) -> np.ndarray | None:
        """The (y, x) bool mask with the logits thresholded at ``threshold`` instead of 0
        (the majority vote over the jittered boxes), or None without logits."""
        if self.logits is None:
            return None
        return np.sum([lg > threshold for lg in self.logits], axis=0) * 2 > len(self.logits)


def predict_box(
    predict: Callable[..., Prediction],
    box: BoxXYXY,
    jitter_px: tuple[float, ...],
    shape: tuple[int, int],
    extra: dict | None = None,
) -> BoxPrediction:
    """Predict from a pixel-extent ``box`` grown by each of ``jitter_px`` (slice pixels;
    negative shrinks) and vote: the model's mask is sensitive to a box's exact size (a 1 px
    tighter box loses the left kidney of the MR abdomen's first slice altogether), and the
    pixel-wise majority of a few sizes is robust to that; their disagreement is a measure of
    uncertainty.

    Args:
        predict: ``predict(box=..., **extra)`` for the slice.
        extra: further prompt keyword arguments (its "box" is replaced).
    """
    extra = {k: v for k, v in (extra or {}).items() if k != "box"}
    preds = []
    for d in jitter_px:
        b = expand_box(box, d, shape, edge=1.0)
        if b[2] - b[0] < 1.0 or b[3] - b[1] < 1.0:
            b = box
        preds.append(predict(box=b, **extra))
    masks = np.stack([p.masks[0] for p in preds])
    logits = None
    if all(p.logits is not None for p in preds):
        logits = [p.logits[0] for p in preds]  # type: ignore[index]
    if len(preds) == 1:
        p = preds[0]
        return BoxPrediction(masks[0], float(p.scores[0]), p.low_res_logits[0], 1.0, logits)
    vote = masks.sum(axis=0) * 2 > len(preds)
    closest = int(np.argmax([dice(m, vote) for m in masks]))
    pairs = [dice(masks[i], masks[j]) for i in range(len(masks)) for j in range(i)]
    return BoxPrediction(
        vote,
        float(np.mean([p.scores[0] for p in preds])),
        preds[closest].low_res_logits[0],
        float(np.mean(pairs)),
        logits,
    )


def unite(preds: list[BoxPrediction]) -> BoxPrediction:
    """One slice's result from the predictions for the boxes of its parts: the union of the
    masks, the area-weighted mean score and agreement, the pixel-wise largest logits."""
    mask = np.logical_or.reduce([p.mask for p in preds])
    weights = np.array([float(p.mask.sum()) for p in preds])
    if weights.sum() == 0:
        weights[:] = 1.0
    return BoxPrediction(
        mask,
        float(np.average([p.score for p in preds], weights=weights)),
        np.maximum.reduce([p.low_res_logits for p in preds]),
        float(np.average([p.agreement for p in preds], weights=weights)),
    )


def mean_in(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean of ``image`` over a (y, x) mask (0 for an empty mask)."""
    return float(image[mask].mean()) if mask.any() else 0.0


def contrast_in(image: np.ndarray, mask: np.ndarray, ring_px: int) -> float:
    """Mean of ``image`` over a (y, x) mask minus its mean over the ring ``ring_px`` pixels
    wide around the mask (0 for an empty mask or an empty ring)."""
    if not mask.any():
        return 0.0
    ys, xs = np.nonzero(mask)
    pad = ring_px + 1
    y0, y1 = max(0, ys.min() - pad), min(mask.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(mask.shape[1], xs.max() + pad + 1)
    crop = mask[y0:y1, x0:x1]
    ring = ndimage.binary_dilation(crop, iterations=ring_px) & ~crop
    if not ring.any():
        return 0.0
    pixels = image[y0:y1, x0:x1]
    return float(pixels[crop].mean() - pixels[ring].mean())


def next_prompt(
    box: BoxXYXY,
    prev_mask: np.ndarray,
    prev_logits: np.ndarray | None,
    params: PropagationParams,
) -> dict:
    """The prompt keyword arguments for the next slice (see ``PropagationParams.prompt``)."""
    out: dict = {"box": box}
    if params.prompt == "box+mask" and prev_logits is not None:
        out["mask_input"] = prev_logits
    elif params.prompt == "box+points" and prev_mask.any():
        pts = interior_points(prev_mask, params.n_points)
        out["points"] = pts
        out["point_labels"] = np.ones(len(pts), dtype=np.int64)
    return out


def interior_points(mask: np.ndarray, n: int) -> np.ndarray:
    """(k, 2) float (x, y) of up to ``n`` well-separated innermost pixels of a (y, x) mask:
    the distance-transform maximum, then the maxima of what is left after blanking a disk of
    that radius around each point taken."""
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    yy, xx = np.ogrid[: mask.shape[0], : mask.shape[1]]
    out = []
    for _ in range(n):
        k = int(np.argmax(dist))
        y, x = divmod(k, mask.shape[1])
        radius = dist[y, x]
        if radius <= 0:
            break
        out.append((float(x), float(y)))
        dist = np.where((yy - y) ** 2 + (xx - x) ** 2 <= (2 * radius) ** 2, 0.0, dist)
    return np.array(out, dtype=np.float64).reshape(-1, 2)
