"""Classical promptable segmentation, no torch and no weights: GrabCut and the random walker.

Both implement :class:`~slicesam.models.base.SegmentationModel`, so every session workflow
(box, clicks, clicks after a box, propagation) works with them:

- ``embed`` returns the windowed slice itself as the "features" (nothing to precompute).
- ``predict`` turns the prompts into seeds, segments a region of interest around them and
  returns the mask, a confidence in [0, 1] (:func:`boundary_contrast`: how much the mask's inner
  boundary band differs from the band just outside it, relative to their spread) and low-res
  pseudo-logits (+8 inside, -8 outside, area-averaged to at most 256 px on the longest side)
  that come back as ``mask_input`` for the next click on the same slice.

How prompts become seeds:

- a positive click is a definite foreground disk, a negative click a definite background disk;
  each also marks the intensity-similar region connected to it (a flood fill with a tolerance
  from the local contrast) as *probably* foreground / background, so a click adds or removes
  the structure it lands on, as with SAM;
- ``grabcut`` (:func:`cv2.grabCut`): outside the box is definite background, inside probably
  foreground; ``mask_input`` marks probable foreground (inside the box: the rest of the box
  becomes probably background); a negative click's region is definite background (GrabCut's
  colour models alone would keep a region as bright as the object);
- ``random_walker`` (:func:`skimage.segmentation.random_walker`): the band just outside the box
  is background; with no click or mask inside the box, the foreground seeds are the box
  centre's pixels that differ from that background band (the box "interior hint");
  ``mask_input`` gives foreground seeds (its eroded interior) and background seeds (its dilated
  exterior), except in the regions of clicks that contradict it.

Neither model distinguishes candidate masks: with ``multimask`` the one mask is returned three
times.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from ..errors import CheckpointError
from .base import Capabilities, Embedding, Prediction

_log = logging.getLogger("slicesam")

#: Magnitude of the pseudo-logits returned as ``low_res_logits``.
LOGIT = 8.0
#: Longest side of the returned low-res logits (SAM's low-res masks are 256 x 256).
LOW_RES = 256

Box = tuple[int, int, int, int]


# -- prompt helpers -------------------------------------------------------------------------------
def _disk_mask(shape: tuple[int, int], centers: list[tuple[int, int]], radius: int) -> np.ndarray:
    """(H, W) bool: union of filled disks of ``radius`` around (y, x) centres."""
    canvas = np.zeros(shape, np.uint8)
    for y, x in centers:
        cv2.circle(canvas, (int(x), int(y)), int(radius), 1, thickness=-1)
    return canvas.astype(bool)


def _kernel(radius: int) -> np.ndarray:
    size = 2 * max(int(radius), 0) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask.copy()
    return cv2.erode(mask.astype(np.uint8), _kernel(radius), borderValue=0).astype(bool)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask.copy()
    return cv2.dilate(mask.astype(np.uint8), _kernel(radius), borderValue=0).astype(bool)


def similar_region(
    image: np.ndarray, y: int, x: int, half_window: int, min_tolerance: float = 12.0
) -> np.ndarray:
    """The intensity-similar region connected to pixel (y, x), within a window around it.

    A flood fill on the 3x3-median-filtered slice, with tolerance
    ``clip(3 * std of the 5x5 patch around the click, min_tolerance, 60)`` grey levels, then
    a morphological closing (radius 2) and hole filling.

    Args:
        image: (H, W) uint8 slice.
        y, x: the click, in pixels.
        half_window: the region is limited to the square of this half side around the click.

    Returns:
        (H, W) bool mask (contains the click).
    """
    from skimage.segmentation import flood

    h, w = image.shape
    y0, y1 = max(0, y - half_window), min(h, y + half_window + 1)
    x0, x1 = max(0, x - half_window), min(w, x + half_window + 1)
    crop = cv2.medianBlur(np.ascontiguousarray(image[y0:y1, x0:x1]), 3)
    cy, cx = y - y0, x - x0
    patch = crop[max(0, cy - 2) : cy + 3, max(0, cx - 2) : cx + 3].astype(np.float64)
    tolerance = float(np.clip(3.0 * patch.std(), min_tolerance, 60.0))
    region = flood(crop, (cy, cx), tolerance=tolerance)
    # Noise leaves pinholes and ragged edges: close them and fill holes.
    region = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_CLOSE, _kernel(2)).astype(bool)
    region = ndimage.binary_fill_holes(region)
    out = np.zeros((h, w), bool)
    out[y0:y1, x0:x1] = region
    return out


def _bbox(mask: np.ndarray) -> Box | None:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def _expand(box: Box, margin: int, shape: tuple[int, int]) -> Box:
    x0, y0, x1, y1 = box
    h, w = shape
    return (
        max(0, x0 - margin),
        max(0, y0 - margin),
        min(w - 1, x1 + margin),
        min(h - 1, y1 + margin),
    )


def _union(a: Box | None, b: Box | None) -> Box | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


@dataclass
class Hints:
    """Prompts of one ``predict`` call in pixel form, shared by both backends.

    A click within ``seed_radius`` of an earlier one replaces it; where the regions of a
    positive and a negative click overlap, each pixel goes to the nearer click.

    Attributes:
        shape: (H, W) of the slice.
        box: inclusive (x0, y0, x1, y1) integer box, clipped to the slice, or None.
        clicks: (y, x, positive) integer click positions, in the order given (minus replaced
            ones).
        prior: (H, W) bool mask from ``mask_input`` (logits > 0), or None.
        seed_radius: radius in pixels of the definite seed disk around a click.
        pos_region, neg_region: (H, W) bool intensity-similar regions of the clicks.
        pos_seeds, neg_seeds: (H, W) bool definite seed disks of the clicks.
    """

    shape: tuple[int, int]
    box: Box | None
    clicks: list[tuple[int, int, bool]]
    prior: np.ndarray | None
    seed_radius: int
    pos_region: np.ndarray = field(repr=False)
    neg_region: np.ndarray = field(repr=False)
    pos_seeds: np.ndarray = field(repr=False)
    neg_seeds: np.ndarray = field(repr=False)

    @property
    def positive(self) -> list[tuple[int, int]]:
        return [(y, x) for y, x, pos in self.clicks if pos]

    def roi(self, margin: int) -> Box | None:
        """The region worth segmenting: box, prior and positive regions, plus ``margin``."""
        area = self.box
        if self.prior is not None:
            area = _union(area, _bbox(self.prior))
        if self.positive:
            area = _union(area, _bbox(self.pos_region | self.pos_seeds))
        return None if area is None else _expand(area, margin, self.shape)


def make_hints(
    image: np.ndarray,
    box: tuple[float, float, float, float] | None,
    points: np.ndarray | None,
    point_labels: np.ndarray | None,
    mask_input: np.ndarray | None,
    model_px: float,
) -> Hints:
    """Turn ``predict``'s arguments into :class:`Hints` for a (H, W) uint8 slice.

    ``model_px`` is slice pixels per model pixel (longest side / ``input_scale_ref``); the seed
    disks have radius ``max(1, round(model_px))``.
    """
    h, w = image.shape
    ibox = None
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        ibox = (
            int(np.clip(round(x0), 0, w - 1)),
            int(np.clip(round(y0), 0, h - 1)),
            int(np.clip(round(x1), 0, w - 1)),
            int(np.clip(round(y1), 0, h - 1)),
        )
    clicks: list[tuple[int, int, bool]] = []
    if points is not None and len(points):
        coords = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        labels = np.asarray(point_labels).reshape(-1)
        for (px, py), lab in zip(coords, labels):
            y = int(np.clip(round(py), 0, h - 1))
            x = int(np.clip(round(px), 0, w - 1))
            clicks.append((y, x, int(lab) == 1))
    prior = None
    if mask_input is not None:
        logits = np.asarray(mask_input, dtype=np.float32)
        if logits.ndim == 3:
            logits = logits[0]
        prior = cv2.resize(logits, (w, h), interpolation=cv2.INTER_LINEAR) > 0
    radius = max(1, int(round(model_px)))
    # A click on (about) the spot of an earlier one replaces it: the user changed their mind.
    kept: list[tuple[int, int, bool]] = []
    for y, x, positive in clicks:
        kept = [c for c in kept if (c[0] - y) ** 2 + (c[1] - x) ** 2 > radius**2]
        kept.append((y, x, positive))
    clicks = kept
    half = max(16, max(h, w) // 4)
    regions = {True: np.zeros((h, w), bool), False: np.zeros((h, w), bool)}
    seeds = {True: np.zeros((h, w), bool), False: np.zeros((h, w), bool)}
    for y, x, positive in clicks:
        regions[positive] |= similar_region(image, y, x, half)
        seeds[positive] |= _disk_mask((h, w), [(y, x)], radius)
    contested = regions[True] & regions[False]
    if contested.any():  # both signs claim it: the nearer click wins
        near = {sign: _distance_to(clicks, sign, (h, w)) for sign in (True, False)}
        regions[True] &= ~(contested & (near[False] < near[True]))
        regions[False] &= ~(contested & (near[True] <= near[False]))
    return Hints(
        (h, w),
        ibox,
        clicks,
        prior,
        radius,
        regions[True],
        regions[False],
        seeds[True],
        seeds[False],
    )


def _distance_to(
    clicks: list[tuple[int, int, bool]], positive: bool, shape: tuple[int, int]
) -> np.ndarray:
    """(H, W) float32 Euclidean distance to the nearest click of the given sign."""
    canvas = np.ones(shape, np.uint8)
    for y, x, sign in clicks:
        if sign == positive:
            canvas[y, x] = 0
    return cv2.distanceTransform(canvas, cv2.DIST_L2, 5)


def box_hint(image: np.ndarray, box: Box, threshold: float = 0.65, bins: int = 32) -> np.ndarray:
    """Foreground seeds for a box alone: box pixels whose intensity is typical of the box and
    rare in the band around it.

    Histograms (``bins`` bins, 3x3-median-filtered slice) of the box interior and of a band of
    ``max(2, 15 % of the box side)`` pixels around the box give, per intensity, the share
    ``p_in / (p_in + p_band)``; pixels above ``threshold`` form candidates (opened with a 3x3
    square), and the largest connected candidate is the hint. When nothing qualifies, a small
    disk at the box centre. On the sample CT (liver, spleen, kidneys, aorta; tight boxes on 15
    slices) the hint is 89 % precise, and seeding the random walker with it gives a mean 2D Dice
    of 0.89 (GrabCut 0.87), against 0.0 for GrabCut from the box alone (soft-tissue organs
    share their grey levels with the neighbours outside the box).

    Args:
        image: (H, W) uint8 slice.
        box: inclusive integer (x0, y0, x1, y1).

    Returns:
        (H, W) bool seed mask inside the box (never empty).
    """
    x0, y0, x1, y1 = box
    h, w = image.shape
    smooth = cv2.medianBlur(np.ascontiguousarray(image), 3)
    inside = np.zeros((h, w), bool)
    inside[y0 : y1 + 1, x0 : x1 + 1] = True
    bx0, by0, bx1, by1 = _expand(box, max(2, int(0.15 * max(x1 - x0, y1 - y0))), (h, w))
    band = np.zeros((h, w), bool)
    band[by0 : by1 + 1, bx0 : bx1 + 1] = True
    band &= ~inside
    seeds = np.zeros((h, w), bool)
    if band.any():
        q = smooth.astype(np.int64) * bins // 256
        kernel = np.array([0.25, 0.5, 0.25])
        p_in = np.convolve(np.bincount(q[inside], minlength=bins) / inside.sum(), kernel, "same")
        p_band = np.convolve(np.bincount(q[band], minlength=bins) / band.sum(), kernel, "same")
        share = p_in / (p_in + p_band + 1e-12)
        candidates = (inside & (share[q] > threshold)).astype(np.uint8)
        candidates = cv2.morphologyEx(candidates, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        count, comp, stats, _ = cv2.connectedComponentsWithStats(candidates, 8)
        if count > 1:
            seeds = comp == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if not seeds.any():
        radius = max(1, min(x1 - x0, y1 - y0) // 10)
        seeds = _disk_mask((h, w), [((y0 + y1) // 2, (x0 + x1) // 2)], radius)
    return seeds


def _erode_keep(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` eroded by ``radius``, or ``mask`` itself when erosion would empty it."""
    eroded = _erode(mask, radius)
    return eroded if eroded.any() else mask


# -- scoring and outputs ------------------------------------------------------------------------
def boundary_contrast(image: np.ndarray, mask: np.ndarray, width: int = 3) -> float:
    """Confidence in [0, 1] that ``mask`` follows an intensity edge.

    ``d = |mean(inner band) - mean(outer band)| / (std(inner) + std(outer) + 4)`` with bands of
    ``width`` pixels on either side of the mask's boundary; the score is ``1 - 2**(-d / 0.3)``.
    Calibration on the sample CT (all 419 reference organ masks of >= 30 pixels per slice):
    reference masks have median d = 0.63 (score 0.77; 75 % score above 0.55), while the same
    masks shifted by 4 pixels, dilated by 4 pixels or replaced by their bounding box have median
    d = 0.14-0.18 (score 0.28-0.34), so the engine's default stop threshold of 0.5 (d = 0.3)
    separates them. An empty mask, or one with no outside, scores 0.

    Args:
        image: (H, W) uint8 slice.
        mask: (H, W) bool.
        width: band width in pixels.
    """
    box = _bbox(mask)
    if box is None or int(mask.sum()) < 4:
        return 0.0
    x0, y0, x1, y1 = _expand(box, width + 1, mask.shape)
    m = mask[y0 : y1 + 1, x0 : x1 + 1]
    img = image[y0 : y1 + 1, x0 : x1 + 1].astype(np.float64)
    inner = m & ~_erode(m, width)
    if not inner.any():
        inner = m
    outer = _dilate(m, width) & ~m
    if not outer.any():
        return 0.0
    a, b = img[inner], img[outer]
    d = abs(a.mean() - b.mean()) / (a.std() + b.std() + 4.0)
    return float(1.0 - 2.0 ** (-d / 0.3))


def low_res_logits(mask: np.ndarray) -> np.ndarray:
    """(h, w) float32 pseudo-logits of a (H, W) bool mask, longest side <= 256."""
    h, w = mask.shape
    scale = min(1.0, LOW_RES / max(h, w))
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    logits = np.where(mask, LOGIT, -LOGIT).astype(np.float32)
    if size == (w, h):
        return logits
    return cv2.resize(logits, size, interpolation=cv2.INTER_AREA)


def _keep_seeded_components(mask: np.ndarray, seeds: np.ndarray, min_fraction: float) -> np.ndarray:
    """Components of ``mask`` that touch ``seeds`` or are >= ``min_fraction`` of the largest."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    if count <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = areas >= min_fraction * areas.max()
    touched = np.unique(labels[seeds & mask])
    keep[touched[touched > 0] - 1] = True
    return keep[labels - 1] & (labels > 0)


# -- the models -----------------------------------------------------------------------------------
class ClassicalModel:
    """Shared plumbing of the classical backends (see the module docstring).

    Args:
        input_scale_ref: the "model input side" used for pixel-scaled margins and seed sizes
            (``slice longest side / input_scale_ref`` slice pixels per model pixel); 256, as
            LiteMedSAM, by default.

    Attributes:
        name, weights_sha256 (""), device ("cpu"), capabilities, input_scale_ref.
    """

    name = "classical"
    weights_sha256 = ""
    device = "cpu"
    #: clicks are seeds; no encoder (the features are the slice)
    capabilities = Capabilities(points=True, encoder="none")

    def __init__(self, input_scale_ref: int = 256) -> None:
        self.input_scale_ref = int(input_scale_ref)

    @classmethod
    def create(cls, checkpoint: str | Path | None = None, device: str = "auto") -> ClassicalModel:
        """Registry factory: refuses a checkpoint (there are no weights); always the CPU."""
        if checkpoint is not None and str(checkpoint) != "":
            raise CheckpointError(
                f"model {cls.name} has no weights; leave out --checkpoint ({checkpoint})"
            )
        if device not in (None, "auto", "cpu"):
            _log.info("model %s runs on the CPU (device %r ignored)", cls.name, device)
        return cls()

    def embed(self, image: np.ndarray) -> Embedding:
        """The (H, W) uint8 slice itself (a copy) as features."""
        if image.ndim != 2:
            raise ValueError(f"embed expects a (H, W) slice, got shape {image.shape}")
        features = np.ascontiguousarray(image, dtype=np.uint8).copy()
        size = (int(image.shape[0]), int(image.shape[1]))
        return Embedding(features, size, size, features.nbytes)

    def predict(
        self,
        embedding: Embedding,
        *,
        box: tuple[float, float, float, float] | None = None,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask: bool = False,
    ) -> Prediction:
        """Segment from prompts; see :class:`~slicesam.models.base.SegmentationModel`.

        Returns:
            Prediction with masks (K, H, W) bool, scores (K,) float32 in [0, 1] and
            low_res_logits (K, h, w) float32 (h, w <= 256); K = 3 with ``multimask``, else 1.
        """
        image = embedding.features
        model_px = max(image.shape) / self.input_scale_ref
        hints = make_hints(image, box, points, point_labels, mask_input, model_px)
        mask = self._segment(image, hints)
        score = boundary_contrast(image, mask, width=max(3, round(1.5 * model_px)))
        k = 3 if multimask else 1
        return Prediction(
            np.repeat(mask[None], k, axis=0),
            np.full(k, score, dtype=np.float32),
            np.repeat(low_res_logits(mask)[None], k, axis=0),
        )

    def _segment(self, image: np.ndarray, hints: Hints) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def _margin(hints: Hints, roi_side: int) -> int:
        return max(8, roi_side // 4, 4 * hints.seed_radius)


class GrabCutModel(ClassicalModel):
    """GrabCut (Rother et al. 2004) on the region around the prompts, via OpenCV.

    Attributes:
        iterations: GrabCut iterations per prediction.
    """

    name = "grabcut"
    iterations = 5

    def _segment(self, image: np.ndarray, hints: Hints) -> np.ndarray:
        out = np.zeros(hints.shape, bool)
        base = hints.box if hints.box is not None else hints.roi(0)
        if base is None:
            return out
        roi = hints.roi(self._margin(hints, max(base[2] - base[0], base[3] - base[1]) + 1))
        x0, y0, x1, y1 = roi
        sl = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        gc = np.full((y1 - y0 + 1, x1 - x0 + 1), cv2.GC_PR_BGD, np.uint8)
        if hints.box is not None:
            bx0, by0, bx1, by1 = hints.box
            inside = np.zeros(hints.shape, bool)
            inside[by0 : by1 + 1, bx0 : bx1 + 1] = True
            gc[~inside[sl]] = cv2.GC_BGD
            gc[inside[sl]] = cv2.GC_PR_FGD
            if hints.prior is not None and (hints.prior & inside).any():
                gc[(inside & ~hints.prior)[sl]] = cv2.GC_PR_BGD
            elif not hints.positive:
                gc[_erode_keep(box_hint(image, hints.box), 1)[sl]] = cv2.GC_FGD
        if hints.prior is not None:
            gc[hints.prior[sl]] = cv2.GC_PR_FGD
        gc[hints.pos_region[sl]] = cv2.GC_PR_FGD
        if hints.box is None:  # clicks alone: the core of a click's region is foreground
            gc[_erode(hints.pos_region, 2 * hints.seed_radius)[sl]] = cv2.GC_FGD
        # GrabCut's colour models cannot drop a region as bright as the object: the region a
        # negative click lands on is definite background.
        gc[hints.neg_region[sl]] = cv2.GC_BGD
        pos_seeds, neg_seeds = hints.pos_seeds, hints.neg_seeds
        gc[pos_seeds[sl]] = cv2.GC_FGD
        gc[neg_seeds[sl]] = cv2.GC_BGD
        fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        if not fg.any():
            return out
        if fg.all():  # no background sample: let the ROI frame be probably background
            gc[[0, -1], :] = np.where(gc[[0, -1], :] == cv2.GC_FGD, cv2.GC_FGD, cv2.GC_PR_BGD)
            gc[:, [0, -1]] = np.where(gc[:, [0, -1]] == cv2.GC_FGD, cv2.GC_FGD, cv2.GC_PR_BGD)
        crop = np.ascontiguousarray(np.repeat(image[sl][:, :, None], 3, axis=2))
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(crop, gc, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error as exc:  # degenerate input (e.g. a flat crop): keep the hint mask
            _log.debug("grabCut failed (%s); using the initial mask", exc)
        mask = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        mask = _keep_seeded_components(mask, pos_seeds[sl], 0.2)
        out[sl] = mask
        return out


class RandomWalkerModel(ClassicalModel):
    """Random-walker segmentation (Grady 2006) from seeds, via scikit-image.

    The region of interest is processed at most ``max_side`` pixels on its longest side
    (larger regions are downsampled, the probabilities upsampled back).

    Attributes:
        beta: edge sensitivity of the random walker (scikit-image's ``beta``).
        max_side: processing size limit of the region of interest, in pixels.
    """

    name = "random_walker"
    beta = 130.0
    max_side = 192

    def _labels(self, image: np.ndarray, hints: Hints, roi: Box) -> np.ndarray:
        """(H, W) int labels over the whole slice: 0 unknown, 1 foreground, 2 background."""
        labels = np.zeros(hints.shape, np.int32)
        r = hints.seed_radius
        pos_seeds, neg_seeds = hints.pos_seeds, hints.neg_seeds
        x0, y0, x1, y1 = roi
        frame = np.ones(hints.shape, bool)
        frame[y0 + 1 : y1, x0 + 1 : x1] = False
        # Click regions, grown past their edges, veto contradicting seeds.
        pos_zone = _dilate(hints.pos_region, 2 * r + 1)
        neg_zone = _dilate(hints.neg_region, 2 * r + 1)
        if hints.box is not None:
            bx0, by0, bx1, by1 = _expand(hints.box, 1, hints.shape)
            outside = np.ones(hints.shape, bool)
            outside[by0 : by1 + 1, bx0 : bx1 + 1] = False
            labels[outside & ~pos_zone] = 2
        if hints.prior is not None:
            labels[~_dilate(hints.prior, 2 * r) & ~pos_zone] = 2
            labels[_erode(hints.prior, 2 * r) & ~neg_zone] = 1
        if hints.box is not None and not (labels == 1).any() and not hints.positive:
            labels[_erode_keep(box_hint(image, hints.box), 1)] = 1
        labels[frame & (labels == 0) & ~pos_zone] = 2
        labels[pos_seeds] = 1
        labels[neg_seeds] = 2
        return labels

    def _segment(self, image: np.ndarray, hints: Hints) -> np.ndarray:
        from skimage.segmentation import random_walker

        out = np.zeros(hints.shape, bool)
        base = hints.box if hints.box is not None else hints.roi(0)
        if base is None:
            return out
        roi = hints.roi(self._margin(hints, max(base[2] - base[0], base[3] - base[1]) + 1))
        labels = self._labels(image, hints, roi)
        x0, y0, x1, y1 = roi
        sl = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        lab = labels[sl]
        if not (lab == 1).any():
            return out
        if not (lab == 0).any() or not (lab == 2).any():
            out[sl] = lab == 1
            return out
        crop = image[sl].astype(np.float64) / 255.0
        ch, cw = crop.shape
        scale = min(1.0, self.max_side / max(ch, cw))
        if scale < 1.0:
            size = (max(2, int(round(cw * scale))), max(2, int(round(ch * scale))))
            small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
            small_lab = cv2.resize(lab, size, interpolation=cv2.INTER_NEAREST)
            if not (small_lab == 1).any() or not (small_lab == 2).any():
                small, small_lab, scale = crop, lab, 1.0
        else:
            small, small_lab = crop, lab
        if not (small_lab == 0).any():
            prob = (small_lab == 1).astype(np.float64)
        else:
            with warnings.catch_warnings():  # round-off just past [0, 1]: harmless
                warnings.filterwarnings("ignore", message="The probability range is outside")
                prob = random_walker(
                    small, small_lab, beta=self.beta, mode="cg_j", return_full_prob=True
                )[0]
        if scale < 1.0:
            prob = cv2.resize(prob.astype(np.float32), (cw, ch), interpolation=cv2.INTER_LINEAR)
        mask = (prob > 0.5) | (lab == 1)
        mask &= lab != 2
        mask = _keep_seeded_components(mask, lab == 1, 1.01)
        out[sl] = mask
        return out
