"""How clicks become masks.

Models that understand points (SAM) get the slice's box, all its clicks and the previous
low-res logits in one prompt. On box-only models (LiteMedSAM ignores points on their own) a
first positive click on an empty slice gets the structure under it from boxes centred on it at
a few scales; further clicks edit the mask locally (:func:`box_only_click`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..models.base import Prediction
from ..prompts import Point
from . import presets
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
    best predicted IoU. Falls back to a small disk when no mask contains the click. Many
    scales, so that a click finds small and large structures alike; single decoder calls, as
    one batched call was slower on CPU.

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
        if not mask[yi, xi]:
            continue
        if best is None or score > best[0]:
            best = (score, mask)
    if best is None:
        return disk(shape, y, x, max(1.0, 2.0 * model_px)), 0.0
    return best[1], best[0]


#: Ways a click on a box-only model can become a mask (see :func:`box_only_click`).
CLICK_STRATEGIES = ("local", "adaptive", "region")
#: A negative click this central in a mask component (its distance to the border over the
#: component's largest) means the whole component ("adaptive" strategy).
CENTRAL_CLICK = 0.9
#: A positive click farther from the mask than this many times the mask's largest inner
#: distance adds the structure under it ("adaptive"): a click on a missed separate part gets
#: that part; nearer ones grow the mask locally, so a click beside a thin mask does not add a
#: neighbouring structure.
FAR_FACTOR = 2.0


@dataclass(frozen=True)
class ClickEdits:
    """How a correction click on a box-only model follows the slice's intensities
    (the "adaptive" strategy of :func:`box_only_click`; :func:`intensity_edit`).

    A wrong region often differs in intensity from the object next to it (a mask that spread
    into a brighter neighbour). A negative click then removes the part of the mask
    that is connected to the click and similar to it in intensity, and a positive click adds
    the similar pixels near it outside the mask, instead of a disk of the click's distance to
    the border.

    Attributes:
        remove_tolerance: a negative click removes the mask pixels within this intensity
            (window scaled to 0-1) of the click's that are connected to it; 0 = off.
        add_tolerance: a positive click outside the mask adds the pixels within this
            intensity of the click's that are connected to it and lie within ``add_reach``
            times its distance to the mask (at least 2 pixels); 0 = off.
        add_reach: see ``add_tolerance``.
        max_fraction: a region holding this fraction of the mask's pixels or more is no
            distinct wrong part (the click's intensity is the object's): the click edits a
            disk instead, as without intensities (negative clicks), so one click cannot wipe
            out most of the object.
        add_max_fraction: the same for a positive click's added region, as a multiple of
            the mask: a positive click adds what it lands on, and where the model found only
            a sliver of the object, the region of the click's intensity is rightly several
            times the mask.
        add_max_neighbour: a positive click's added region may also hold up to this many
            times the object's area on the nearest neighbour slice (the ``hint`` of
            :func:`box_only_click`; whichever limit is larger applies), so a sliver of a mask
            does not stop a click from adding the rest of an object the neighbour slice shows
            whole.
        empty_grow_below: a first positive click on a slice without a mask gets the model's
            mask for the neighbour's box (or the structure under the click); when that mask
            holds fewer pixels than this fraction of the neighbour's, the region of the
            click's intensity within twice the neighbour's equivalent radius is added to it
            (unless it reaches ``add_max_neighbour`` times the neighbour's area), so a first
            click is not answered with a sliver of what the user pointed at. 0 = off.
        remnant_width: a negative click that removes part of a mask also removes the thin
            remnants it leaves beside that part: the mask's pixels within 2 pixels of the
            removed region that a morphological opening with a square this many pixels wide
            takes away (:func:`drop_thin_remnants`). Otherwise 1-2 pixel columns left on
            either side of the removed part keep the slice's box, and so the next slice's, as
            large as before, and the re-walk finds the same wrong mask again. 0 = off.
        remnant_max_removed: the remnants go only when the click removed at most this
            fraction of the mask: after a larger cut, the thin parts may be all there is of a
            slit-like object.
    """

    remove_tolerance: float = 0.3
    add_tolerance: float = 0.1
    add_reach: float = 2.0
    max_fraction: float = 0.5
    add_max_fraction: float = 3.0
    add_max_neighbour: float = 2.5
    empty_grow_below: float = 1.0
    remnant_width: int = 3
    remnant_max_removed: float = 0.4


#: Clicks that ignore intensities (:class:`ClickEdits` with both tolerances 0).
NO_INTENSITY_EDITS = ClickEdits(remove_tolerance=0.0, add_tolerance=0.0)


def default_click_edits(modality: str | None) -> ClickEdits:
    """The click edits a session on a volume of this modality starts with: the defaults with
    the modality's overrides from :data:`slicesam.engine.presets.CLICK_EDITS`."""
    return dataclasses.replace(ClickEdits(), **presets.overrides(presets.CLICK_EDITS, modality))


def _inner_distance(mask: np.ndarray) -> np.ndarray:
    """Distance of each pixel of a (y, x) mask to its border (0 outside; image edges count
    as border)."""
    return ndimage.distance_transform_edt(np.pad(mask, 1, constant_values=False))[1:-1, 1:-1]


def _distance_to_mask(mask: np.ndarray, y: int, x: int) -> float:
    """``_inner_distance(~mask)[y, x]`` without the whole map: the distance from pixel
    (y, x) to the nearest pixel of the (y, x) bool ``mask`` or to just outside the image."""
    h, w = mask.shape
    edge = float(min(y + 1, h - y, x + 1, w - x))
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return edge
    return min(edge, float(np.sqrt(((ys - y) ** 2 + (xs - x) ** 2).min())))


def local_edit(current: np.ndarray, point: Point, dist: np.ndarray | None = None) -> np.ndarray:
    """``current`` with a disk around the click added (positive) or removed (negative).

    The disk's radius is the click's distance to the mask's border (at least 1 pixel): a user
    clicks in the middle of what is wrong, so that disk covers the wrong region's width there
    without crossing to the far side of the mask. ``dist``: that distance map
    (``_inner_distance`` of the background for a positive click, of the mask for a negative
    one) when the caller has it already.
    """
    yi, xi = int(round(point.y)), int(round(point.x))
    if dist is None:
        dist = _inner_distance(~current if point.positive else current)
    region = disk(current.shape, point.y, point.x, max(1.0, float(dist[yi, xi])))
    return (current | region) if point.positive else (current & ~region)


def similar_region(
    image: np.ndarray, within: np.ndarray, y: float, x: float, tolerance: float
) -> np.ndarray:
    """The pixels of the (y, x) bool mask ``within`` connected to the click (4-connected)
    through pixels whose intensity is within ``tolerance`` of the click's (the median of its
    3 x 3 neighbourhood inside ``within``). Empty when the click is not inside ``within``."""
    yi, xi = int(round(y)), int(round(x))
    out = np.zeros_like(within)
    if not within[yi, xi]:
        return out
    y0, x0 = max(0, yi - 1), max(0, xi - 1)
    ref = float(np.median(image[y0 : yi + 2, x0 : xi + 2][within[y0 : yi + 2, x0 : xi + 2]]))
    # the region lies inside ``within``: label its bounding box only (a click stays fast on
    # a 512 x 512 slice)
    left, top, right, bottom = (int(v) for v in mask_bbox(within))  # type: ignore[union-attr]
    bottom, right = bottom + 1, right + 1
    crop = within[top:bottom, left:right]
    similar = crop & (np.abs(image[top:bottom, left:right] - ref) <= tolerance)
    similar[yi - top, xi - left] = True
    comps, _ = ndimage.label(similar)
    out[top:bottom, left:right] = comps == comps[yi - top, xi - left]
    return out


def intensity_edit(
    image: np.ndarray,
    current: np.ndarray,
    point: Point,
    edits: ClickEdits,
    earlier: list[Point] | tuple[Point, ...] = (),
    expected_area: int = 0,
) -> np.ndarray | None:
    """``current`` (y, x) bool with the region of similar intensity at a correction click
    removed (negative click inside the mask) or added (positive click outside it); None
    when the edit does not apply: the tolerance is 0, the click is on the other side of the
    border, the region is not a distinct part (``edits.max_fraction``) or too large an
    addition (``edits.add_max_fraction``, ``edits.add_max_neighbour``), or it holds one of
    the ``earlier`` clicks of the other sign on the slice (it would undo what the user
    said there: two such edits would take turns). ``image``: the slice as the model sees
    it, scaled to 0-1. ``expected_area``: the object's area on the neighbour slice in
    pixels (0: unknown); a positive click may add up to ``edits.add_max_neighbour`` times
    it, when that is more than ``edits.add_max_fraction`` times the mask."""
    yi, xi = int(round(point.y)), int(round(point.x))
    if point.positive == bool(current[yi, xi]) or not current.any():
        return None
    if point.positive:
        if edits.add_tolerance <= 0:
            return None
        reach = max(2.0, edits.add_reach * _distance_to_mask(current, yi, xi))
        near = disk(current.shape, point.y, point.x, reach) & ~current
        region = similar_region(image, near, point.y, point.x, edits.add_tolerance)
    else:
        if edits.remove_tolerance <= 0:
            return None
        region = similar_region(image, current, point.y, point.x, edits.remove_tolerance)
    if point.positive:
        cap = max(edits.add_max_fraction * current.sum(), edits.add_max_neighbour * expected_area)
    else:
        cap = edits.max_fraction * current.sum()
    if region.sum() >= cap:
        return None
    if any(
        p.positive != point.positive and region[int(round(p.y)), int(round(p.x))] for p in earlier
    ):
        return None
    return (current | region) if point.positive else (current & ~region)


def drop_thin_remnants(
    before: np.ndarray, after: np.ndarray, width: int, max_removed: float
) -> np.ndarray:
    """``after`` (a negative click's (y, x) bool mask, from ``before``) without the thin
    remnants beside the region the click removed: the pixels within 2 pixels of that region
    that an opening with a ``width`` x ``width`` square takes away. ``after`` unchanged when
    ``width`` < 2, nothing was removed, or more than ``max_removed`` of ``before`` was (see
    :class:`ClickEdits`)."""
    removed = before & ~after
    count = int(removed.sum())
    if width < 2 or count == 0 or count > max_removed * before.sum():
        return after
    # only the removed region's surroundings can change: work on a crop around it (a click
    # stays fast on a 512 x 512 slice); the margin keeps every square the opening tests for
    # a pixel within 2 of the region inside the crop
    left, top, right, bottom = (int(v) for v in mask_bbox(removed))  # type: ignore[union-attr]
    pad = 2 + 2 * width
    ys = slice(max(0, top - pad), bottom + pad + 1)
    xs = slice(max(0, left - pad), right + pad + 1)
    crop = after[ys, xs]
    opened = ndimage.binary_opening(crop, np.ones((width, width), dtype=bool))
    near = ndimage.binary_dilation(removed[ys, xs], iterations=2)
    out = after.copy()
    out[ys, xs] = crop & ~(near & ~opened)
    return out


def _from_hint(
    predict: Callable[..., Prediction], hint: np.ndarray, point: Point, model_px: float
) -> tuple[np.ndarray, float] | None:
    """The mask for the hint's box (grown by 3 model pixels and to take in the click), or None
    when it does not contain the click."""
    x0, y0, x1, y1 = mask_bbox(hint)  # type: ignore[misc]
    box = (min(x0, point.x), min(y0, point.y), max(x1, point.x), max(y1, point.y))
    box = expand_box(pixel_extent(box), 3.0 * model_px, hint.shape, edge=1.0)
    pred = predict(box=box)
    mask = pred.masks[0]
    if not mask[int(round(point.y)), int(round(point.x))]:
        return None
    return mask, float(pred.scores[0])


def grown_on_empty(
    image: np.ndarray,
    found: tuple[np.ndarray, float],
    hint: np.ndarray,
    point: Point,
    edits: ClickEdits,
) -> tuple[np.ndarray, float]:
    """A first positive click's mask on an empty slice, ``found`` = ((y, x) bool mask,
    confidence) from the model, with the region of the click's intensity added when the
    model's mask is smaller than ``edits.empty_grow_below`` times the object's (y, x) bool
    ``hint`` mask on the neighbour slice (see :class:`ClickEdits`). ``image``: the slice as
    the model sees it, scaled to 0-1."""
    mask, score = found
    area = int(hint.sum())
    if (
        edits.empty_grow_below <= 0
        or edits.add_tolerance <= 0
        or mask.sum() >= edits.empty_grow_below * area
    ):
        return found
    reach = max(2.0, 2.0 * float(np.sqrt(area / np.pi)))
    near = disk(mask.shape, point.y, point.x, reach)
    region = similar_region(image, near, point.y, point.x, edits.add_tolerance)
    if region.sum() >= edits.add_max_neighbour * area:
        return found
    return mask | region, score


def box_only_click(
    predict: Callable[..., Prediction],
    current: np.ndarray,
    point: Point,
    model_px: float,
    *,
    strategy: str = "adaptive",
    hint: np.ndarray | None = None,
    boxed: bool = False,
    image: np.ndarray | None = None,
    edits: ClickEdits = NO_INTENSITY_EDITS,
    earlier: list[Point] | tuple[Point, ...] = (),
) -> tuple[np.ndarray, float | None]:
    """New (y, x) mask after one click on a box-only model, and the model's confidence in it
    (None when the model was not asked).

    A positive click on a slice where the object has no mask yet is answered with the box a
    propagation would have used there, the ``hint`` mask's (the object on a neighbour slice)
    grown to take in the click, when the model's mask for it contains the click; otherwise
    with the structure under the click (:func:`region_at_click`); with the "adaptive"
    strategy and the slice's ``image``, the region of the click's intensity is added when that
    mask is smaller than the hint (:func:`grown_on_empty`). Every other click edits the
    current mask (the hint, when given, is the expected size of what a positive click adds:
    :class:`ClickEdits`):

    - ``"local"``: :func:`local_edit`, a disk around the click;
    - ``"adaptive"`` (default): given the slice's ``image`` (0-1), a click on a region of
      its own intensity removes or adds that region (:func:`intensity_edit`, with
      ``edits`` and the slice's ``earlier`` clicks); otherwise as "local", but a negative
      click at the very centre of a mask component (:data:`CENTRAL_CLICK`) removes the
      component (unless ``boxed``: the user drew a box on the slice, which says the object
      is there; or two or more of the ``earlier`` positive clicks are in it: the user built
      it), and a positive click
      farther from the mask than :data:`FAR_FACTOR` times its thickness adds the structure
      under it; a negative click also takes the thin remnants its removal leaves
      (:func:`drop_thin_remnants`, ``edits.remnant_width``);
    - ``"region"``: adds or removes the structure under the click (:func:`region_at_click`).

    Edits stay local rather than asking the model again: a box-trained model's answer to a
    re-fitted or cut box is not reliably closer to what the user means than the mask it
    already gave, so a correction could make the mask worse.
    """
    if strategy not in CLICK_STRATEGIES:
        raise ValueError(f"unknown click strategy {strategy!r}; choose from {CLICK_STRATEGIES}")
    if point.positive and not current.any():
        found = None
        if hint is not None and hint.any():
            found = _from_hint(predict, hint, point, model_px)
        if found is None:
            found = region_at_click(predict, current.shape, point.y, point.x, model_px)
        if strategy == "adaptive" and image is not None and hint is not None:
            found = grown_on_empty(image, found, hint, point, edits)
        return found
    yi, xi = int(round(point.y)), int(round(point.x))
    mask, score, outside = None, None, None
    if strategy == "adaptive":
        if image is not None:  # the region of the click's own intensity
            expected = int(hint.sum()) if hint is not None else 0
            mask = intensity_edit(image, current, point, edits, earlier, expected)
        if mask is None and not point.positive and current[yi, xi] and not boxed:
            comps, _ = ndimage.label(current)
            component = comps == comps[yi, xi]
            dist = _inner_distance(component)
            built = sum(
                p.positive and bool(component[int(round(p.y)), int(round(p.x))]) for p in earlier
            )
            if dist[yi, xi] >= CENTRAL_CLICK * dist.max() and built < 2:
                mask = current & ~component
        elif mask is None and point.positive and not current[yi, xi]:
            outside = _inner_distance(~current)
            if outside[yi, xi] > FAR_FACTOR * _inner_distance(current).max():
                region, score = region_at_click(predict, current.shape, point.y, point.x, model_px)
                mask = current | region
        if mask is None:
            mask = local_edit(current, point, outside)
        if not point.positive:
            mask = drop_thin_remnants(current, mask, edits.remnant_width, edits.remnant_max_removed)
    elif strategy == "local":
        mask = local_edit(current, point)
    else:
        region, score = region_at_click(predict, current.shape, point.y, point.x, model_px)
        mask = (current | region) if point.positive else (current & ~region)
    mask = mask.copy()
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
