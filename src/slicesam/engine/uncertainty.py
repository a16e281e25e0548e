"""Where the model is unsure on a slice, and where the next click would help most.

The uncertainty of a pixel combines two signals of the decoder for the slice's prompt:

- the **logit margin** of the single-mask output: ``1 - |2 sigmoid(logit) - 1|`` (1 on the
  decision boundary, 0 where the model is certain);
- the **disagreement** of the multimask outputs with it: ``4 p (1 - p)`` where ``p`` is the
  share of the candidate masks (the single one and the multimask ones) that contain the pixel
  (1 when they split evenly, 0 when they agree).

The suggested click is the most uncertain place (after a small blur, so that a region wins over
a lone pixel) within a band around the current mask's boundary: a click there resolves the
largest doubt about where the object ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from ..models.base import Embedding, Prediction


@dataclass(frozen=True)
class Suggestion:
    """A suggested click (slice pixel coordinates).

    Attributes:
        z, y, x: where to click.
        positive: True when the place is outside the current mask (the question is "add
            this?"), False when inside ("remove this?"); the user decides the answer.
        uncertainty: the (blurred) uncertainty there, in [0, 1].
    """

    z: int
    y: int
    x: int
    positive: bool
    uncertainty: float


def logits_in_slice(low_res: np.ndarray, emb: Embedding, input_side: int | None) -> np.ndarray:
    """(h, w) low-resolution logits -> (H, W) float32 logits in the slice frame (bilinear).

    With ``input_side`` (SAM family: the logits cover the square padded input of that side)
    the padding is cropped first; with None the logits cover the slice itself.
    """
    crop = low_res
    if input_side:
        scale = low_res.shape[-1] / float(input_side)
        h, w = emb.input_size
        crop = low_res[: max(1, int(np.ceil(h * scale))), : max(1, int(np.ceil(w * scale)))]
    height, width = emb.original_size
    return cv2.resize(crop.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def uncertainty_map(
    single: Prediction, multi: Prediction | None, emb: Embedding, input_side: int | None
) -> np.ndarray:
    """(H, W) float32 uncertainty in [0, 1] from a single-mask and a multimask prediction for
    the same prompt (see the module docstring; ``input_side`` as in :func:`logits_in_slice`)."""
    logits = logits_in_slice(single.low_res_logits[0], emb, input_side)
    margin = 1.0 - np.abs(np.tanh(logits / 2.0))  # = 1 - |2 sigmoid - 1|
    masks = [single.masks[0]]
    if multi is not None:
        masks += list(multi.masks)
    p = np.mean(np.stack(masks).astype(np.float32), axis=0)
    disagreement = 4.0 * p * (1.0 - p)
    return np.maximum(margin, disagreement).astype(np.float32)


#: Below this (blurred) uncertainty nothing is worth a suggestion (a logit margin of ~0.1
#: is |logit| ~ 3.7, a probability beyond 0.97 either way).
MIN_UNCERTAINTY = 0.1


def suggest_click(
    uncertainty: np.ndarray, current: np.ndarray, z: int, band_px: float, blur_px: float = 2.0
) -> Suggestion | None:
    """The most uncertain place within ``band_px`` of the (y, x) mask ``current``'s boundary,
    or None when the mask is empty or nothing there reaches :data:`MIN_UNCERTAINTY`."""
    if not current.any():
        return None
    inside = ndimage.distance_transform_edt(current)
    outside = ndimage.distance_transform_edt(~current)
    band = np.where(current, inside, outside) <= band_px
    smooth = cv2.GaussianBlur(uncertainty.astype(np.float32), (0, 0), blur_px)
    score = np.where(band, smooth, -1.0)
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    if score[y, x] < MIN_UNCERTAINTY:
        return None
    return Suggestion(int(z), int(y), int(x), not bool(current[y, x]), float(score[y, x]))
