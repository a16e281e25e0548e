"""Reviewing an object: where the model is unsure, its measurements, cleaning it up.

Helpers of :meth:`Session.uncertainty <slicesam.engine.session.Session.uncertainty>`,
:meth:`~slicesam.engine.session.Session.stats` and
:meth:`~slicesam.engine.session.Session.postprocess`; they take masks and the model and
return results, and change nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.base import Embedding, SegmentationModel
from ..quality import fill_holes as fill_holes_of
from ..quality import keep_largest_component
from .masks import BoxXYXY, expand_box, mask_bbox, pixel_extent
from .objects import SlicePrompts
from .uncertainty import Suggestion, suggest_click, uncertainty_map


def slice_box(current: np.ndarray, prompts: SlicePrompts | None, model_px: float) -> BoxXYXY:
    """The box a slice's mask is re-asked with: the user's box there, or the box of the
    ``current`` (y, x) mask plus 3 model pixels, as propagation prompts a slice."""
    if prompts is not None and prompts.box is not None:
        return pixel_extent(prompts.box.xyxy)
    return expand_box(pixel_extent(mask_bbox(current)), 3 * model_px, current.shape, 1.0)  # type: ignore[arg-type]


def slice_uncertainty(
    model: SegmentationModel,
    emb: Embedding,
    current: np.ndarray,
    z: int,
    prompts: dict[str, Any],
    model_px: float,
) -> tuple[np.ndarray, Suggestion | None]:
    """The uncertainty map of slice ``z`` (embedding ``emb``) for the decoder ``prompts``
    (one mask and the multimask candidates; see :mod:`slicesam.engine.uncertainty`), and the
    most uncertain place near the ``current`` mask's boundary as a suggested click."""
    single = model.predict(emb, multimask=False, **prompts)
    multi = model.predict(emb, multimask=True, **prompts)
    side = int(model.input_scale_ref) if model.capabilities.low_res_padded else None
    umap = uncertainty_map(single, multi, emb, side)
    band = max(3.0, 4.0 * model_px)
    return umap, suggest_click(umap, current, z, band)


def postprocessed(
    mask: np.ndarray, *, fill_holes: bool, keep_largest: bool, per_slice: bool
) -> np.ndarray:
    """A (z, y, x) bool mask with only its largest connected component kept and/or its
    enclosed holes filled, in each slice (``per_slice``) or in 3D."""
    new = mask
    if keep_largest:
        new = keep_largest_component(new, per_slice=per_slice)
    if fill_holes:
        new = fill_holes_of(new, per_slice=per_slice)
    return new


def postprocess_name(*, fill_holes: bool, keep_largest: bool) -> str:
    """The undo entry of a post-processing: "fill holes + keep largest", ..."""
    what = " + ".join(
        n for n, on in (("fill holes", fill_holes), ("keep largest", keep_largest)) if on
    )
    return what or "post-process"
