"""How a user prompt on one slice becomes a mask: one strategy per kind of model.

A session picks its strategy once, from what its model declares
(:class:`~slicesam.models.base.Capabilities`): :class:`PointPrompting` for models that take
point prompts (SAM, MobileSAM), :class:`BoxOnlyPrompting` for box-only ones (LiteMedSAM).
A strategy turns a box, click, scribble or lasso on one slice into a :class:`SliceResult`
(mask, score, logits, the slice's prompts afterwards); it never writes anything: the session
records the result as a user slice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models.base import Capabilities, Prediction
from ..prompts import Box, Lasso, Point, Scribble
from .clicks import ClickEdits, box_only_click, point_model_click, points_arrays
from .confidence import combine, stability
from .masks import erode_mask, overshoot, overshoot_erosion, pixel_extent
from .objects import USER, SlicePrompts, SliceRecord
from .propagation import PropagationParams, predict_box
from .strokes import SCRIBBLE_POINTS, box_only_scribble, lasso_mask, sample_along

#: :attr:`SliceResult.overshoot` for prompts that leave the slice's overshoot as it was.
UNCHANGED = object()


@dataclass
class SliceContext:
    """What a prompt on one slice may use.

    Attributes:
        z: the slice.
        predict: ``predict(**prompts)``: the model's prediction for the slice.
        current: the object's (y, x) bool mask on the slice now.
        prompts: the user's prompts on the slice so far (empty when none).
        logits: the low-resolution logits of the slice's last mask, or None.
        model_px: slice pixels per model-input pixel.
        params: the session's propagation params (the box's overshoot erosion).
        strategy: how clicks edit a box-only model's mask
            (:func:`~slicesam.engine.clicks.box_only_click`).
        edits: how those clicks follow intensities (:class:`~slicesam.engine.clicks.ClickEdits`).
        image: ``image()`` -> the slice as the model sees it, scaled to 0-1.
        neighbour: ``neighbour()`` -> the object's mask on the nearest non-empty slice within
            2 slices, or None.
    """

    z: int
    predict: Callable[..., Prediction]
    current: np.ndarray
    prompts: SlicePrompts
    logits: np.ndarray | None
    model_px: float
    params: PropagationParams
    strategy: str
    edits: ClickEdits
    image: Callable[[], np.ndarray]
    neighbour: Callable[[], np.ndarray | None]


@dataclass
class SliceResult:
    """A prompt's outcome on its slice.

    Attributes:
        mask: the object's new (y, x) bool mask there.
        score: the model's confidence in it; None when the model was not asked (an edit of
            the mask, as sure as the mask it edited).
        logits: the mask's low-resolution logits, when a model that takes them gave them.
        prompts: the slice's prompts afterwards.
        overshoot: how far the model's mask reached past the user's box (None: not past it),
            or :data:`UNCHANGED`.
    """

    mask: np.ndarray
    score: float | None
    logits: np.ndarray | None
    prompts: SlicePrompts
    overshoot: Any = UNCHANGED

    def record(self, now: SliceRecord | None) -> SliceRecord:
        """The slice's record as a user slice after this result (``now``: its record before,
        if any). A result without a score is as sure as the mask it edited was."""
        score = self.score
        if score is None:
            score = now.confidence if now is not None else 1.0
        evidence = {"iou": float(score)}
        if self.logits is not None:
            evidence["stability"] = stability(self.logits)
        reach = self.overshoot
        if reach is UNCHANGED:
            reach = now.overshoot if now is not None else None
        return SliceRecord(USER, combine(evidence), evidence, self.prompts, reach, self.logits)


class Prompting:
    """What both strategies do alike: a box asks the model; a lasso outlines the object."""

    def box(self, ctx: SliceContext, box: Box) -> SliceResult:
        """The model's mask for ``box`` (clipped to the slice), a new box replacing the
        slice's earlier prompts; where the mask reaches past the box it is eroded by the
        overshoot (``PropagationParams.max_overshoot_erosion_px``)."""
        pred = predict_box(ctx.predict, pixel_extent(box.xyxy))
        reach = overshoot(pred.mask, box.xyxy)
        mask = pred.mask
        if reach is not None:
            k = overshoot_erosion(reach, ctx.params.max_overshoot_erosion_px)
            mask = erode_mask(mask, k, ctx.params.min_area_px)
        return SliceResult(mask, pred.score, pred.low_res_logits, SlicePrompts(box=box), reach)

    def lasso(self, ctx: SliceContext, polygon: np.ndarray, positive: bool) -> SliceResult:
        """``polygon`` (N, 2) (y, x) adds (``positive``) or removes what it encloses."""
        mask, score = lasso_mask(ctx.predict, ctx.current, polygon, positive, ctx.model_px)
        return SliceResult(mask, score, None, ctx.prompts)

    def click(self, ctx: SliceContext, point: Point) -> SliceResult:
        raise NotImplementedError

    def scribble(self, ctx: SliceContext, line: np.ndarray, positive: bool) -> SliceResult:
        raise NotImplementedError

    def decoder_prompts(self, box: tuple, prompts: SlicePrompts | None) -> dict[str, Any]:
        """The decoder prompt that re-asks the model for a slice's mask (``box``: its pixel
        extent; ``prompts``: the user's prompts there, if any)."""
        return {"box": box}


class BoxOnlyPrompting(Prompting):
    """A model that takes boxes only: clicks and scribbles edit the mask, asking the model
    where a click lands on something new (:func:`~slicesam.engine.clicks.box_only_click`,
    :func:`~slicesam.engine.strokes.box_only_scribble`)."""

    def click(self, ctx: SliceContext, point: Point) -> SliceResult:
        prompts = SlicePrompts(ctx.prompts.box, [*ctx.prompts.points, point])
        # only positive clicks use the neighbour (what they add) and, on an empty slice, the
        # intensities: a negative click skips both
        hint = ctx.neighbour() if point.positive else None
        image = ctx.image() if point.positive or ctx.current.any() else None
        mask, score = box_only_click(
            ctx.predict,
            ctx.current,
            point,
            ctx.model_px,
            strategy=ctx.strategy,
            hint=hint,
            boxed=prompts.box is not None,
            image=image,
            edits=ctx.edits,
            earlier=prompts.points[:-1],
        )
        return SliceResult(mask, score, None, prompts)

    def scribble(self, ctx: SliceContext, line: np.ndarray, positive: bool) -> SliceResult:
        mask, score = box_only_scribble(ctx.predict, ctx.current, line, positive, ctx.model_px)
        return SliceResult(mask, score, None, SlicePrompts(ctx.prompts.box, [*ctx.prompts.points]))


class PointPrompting(Prompting):
    """A model that takes points: a click or a scribble's sampled points join the slice's
    box and clicks in one prompt, with the slice's last logits
    (:func:`~slicesam.engine.clicks.point_model_click`)."""

    def _ask(self, ctx: SliceContext, prompts: SlicePrompts) -> SliceResult:
        box = pixel_extent(prompts.box.xyxy) if prompts.box else None
        pred = point_model_click(ctx.predict, box, prompts.points, ctx.logits)
        return SliceResult(pred.masks[0], float(pred.scores[0]), pred.low_res_logits[0], prompts)

    def click(self, ctx: SliceContext, point: Point) -> SliceResult:
        return self._ask(ctx, SlicePrompts(ctx.prompts.box, [*ctx.prompts.points, point]))

    def scribble(self, ctx: SliceContext, line: np.ndarray, positive: bool) -> SliceResult:
        sampled = [
            Point(ctx.z, float(y), float(x), positive)
            for y, x in sample_along(line, SCRIBBLE_POINTS)
        ]
        return self._ask(ctx, SlicePrompts(ctx.prompts.box, [*ctx.prompts.points, *sampled]))

    def decoder_prompts(self, box: tuple, prompts: SlicePrompts | None) -> dict[str, Any]:
        out = super().decoder_prompts(box, prompts)
        if prompts is not None and prompts.points:
            coords, labels = points_arrays(prompts.points)
            out.update(points=coords, point_labels=labels)
        return out


def neighbour_mask(labels: np.ndarray, label_id: int, z: int) -> np.ndarray | None:
    """The object's (y, x) mask on the (z, y, x) ``labels``' nearest non-empty slice within 2
    of ``z``, if any."""
    for d in (1, 2):
        for near in (z - d, z + d):
            if 0 <= near < labels.shape[0]:
                mask = labels[near] == label_id
                if mask.any():
                    return mask
    return None


def prompting_for(capabilities: Capabilities) -> Prompting:
    """The strategy for a model with these capabilities."""
    return PointPrompting() if capabilities.points else BoxOnlyPrompting()


def prompt_name(prompt: Box | Point | Scribble | Lasso) -> str:
    """A prompt's undo entry: "box on 12", "click + on 12", "scribble - on 3", "lasso + on 3"."""
    if isinstance(prompt, Box):
        return f"box on {prompt.z}"
    kind = "click" if isinstance(prompt, Point) else type(prompt).__name__.lower()
    return f"{kind} {'+' if prompt.positive else '-'} on {prompt.z}"


def prompt_adds(prompt: Box | Point | Scribble | Lasso) -> bool:
    """Whether a prompt marks object (a box, a positive click, scribble or lasso) rather than
    background."""
    return isinstance(prompt, Box) or prompt.positive
