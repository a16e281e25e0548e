"""One propagation of one object: plan the walks from its anchors, run them, decide what to write.

:func:`propagate_object` walks outward from the object's anchor slices
(:func:`~slicesam.engine.propagation.walk`, a generator of steps), decides which slices the
propagation owns, stops a re-walk from a correction where it no longer improves anything
(:func:`settled`), fills the slices between two anchors that no walk reached by shape-based
interpolation, and returns the masks and slice records to write. It writes nothing itself:
:meth:`Session.propagate <slicesam.engine.session.Session.propagate>` applies the result as
one undoable action.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import PromptError
from ..metrics import dice
from ..models.base import Prediction
from .confidence import combine
from .interpolation import interpolate_masks
from .masks import expand_box, mask_bbox, overshoot_erosion, pixel_extent
from .objects import DERIVED, INTERPOLATED, PROPAGATED, USER, SegObject, SliceRecord
from .propagation import PropagationParams, Step, WalkReference, mean_in, walk

#: Confidence given to interpolated slices (below the default low-confidence threshold 0.7).
INTERPOLATED_CONFIDENCE = 0.5


@dataclass
class PropagationSummary:
    """What :meth:`Session.propagate <slicesam.engine.session.Session.propagate>` did.

    Attributes:
        label_id: the object propagated.
        slices: sorted slice indices written by the model (anchors excluded).
        interpolated: sorted slices filled by interpolation between two anchors instead.
        confidence: slice -> model confidence of the mask written there.
        stops: one line per walk: where and why it ended.
        cancelled: True when cancelled; then nothing was changed.
        seconds: wall time.
    """

    label_id: int
    slices: list[int] = field(default_factory=list)
    interpolated: list[int] = field(default_factory=list)
    confidence: dict[int, float] = field(default_factory=dict)
    stops: list[str] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0

    def brief(self) -> str:
        """One short line: what was written, how sure, how long (no stop reasons)."""
        if self.cancelled:
            return f"object {self.label_id}: propagation cancelled, nothing changed"
        span = f"{self.slices[0]}-{self.slices[-1]}" if self.slices else "none"
        mean = np.mean(list(self.confidence.values())) if self.confidence else float("nan")
        written = f"{len(self.slices)} slice{'' if len(self.slices) == 1 else 's'} written"
        return (
            f"object {self.label_id}: {written} ({span}), mean confidence {mean:.2f}, "
            f"{self.seconds:.1f} s"
        )

    def __str__(self) -> str:
        if self.cancelled:
            return self.brief()
        return f"{self.brief()}; " + "; ".join(self.stops)


@dataclass
class Correction:
    """What :meth:`Session.correct <slicesam.engine.session.Session.correct>` did.

    Attributes:
        mask: the object's (y, x) bool mask on the prompted slice after the prompt.
        summary: the re-walk from that slice, or None when there was none (the object had no
            propagated slices, or ``repropagate`` was off).
    """

    mask: np.ndarray
    summary: PropagationSummary | None = None

    def __str__(self) -> str:
        return "no re-walk" if self.summary is None else f"re-walk: {self.summary}"


@dataclass
class ObjectContext:
    """What the walks of one object use.

    Attributes:
        obj: the object (its slice records are read, never written).
        mask: ``mask(z)`` -> the object's (y, x) bool mask on slice z as it stands.
        predict: ``predict(z, **prompts)`` -> the model's prediction for slice z.
        image: ``image(z)`` -> slice z as the model sees it, scaled to 0-1.
        params: the propagation params.
        model_px: slice pixels per model-input pixel.
    """

    obj: SegObject
    mask: Callable[[int], np.ndarray]
    predict: Callable[..., Prediction]
    image: Callable[[int], np.ndarray]
    params: PropagationParams
    model_px: float

    def holds(self, z: int) -> bool:
        """Whether slice ``z`` holds any voxel of the object."""
        return bool(self.mask(z).any())


@dataclass
class Outcome:
    """What a propagation decided.

    Attributes:
        summary: the :class:`PropagationSummary` (``seconds`` not set).
        total: the number of slices the walks could write (for progress).
        writes: slice -> (the object's new (y, x) mask there, its new record; None: the
            slice no longer belongs to the object).
    """

    summary: PropagationSummary
    total: int = 0
    writes: dict[int, tuple[np.ndarray, SliceRecord | None]] = field(default_factory=dict)


def walk_span(
    obj: SegObject, z_range: tuple[int, int], from_slices: set[int] | None
) -> tuple[list[int], set[int], tuple[int, int]]:
    """Where a propagation of ``obj`` runs: its anchors inside ``z_range`` (inclusive), the
    anchors its walks start from (all of them, or only ``from_slices``), and the range.

    Raises:
        PromptError: ``obj`` has no anchor, none inside ``z_range``, or ``from_slices`` names
            a slice that is not an anchor.
    """
    anchors = obj.anchors
    if not anchors:
        raise PromptError(
            f"object {obj.label_id} has no prompted slice: add a box or a click first"
        )
    lo, hi = z_range
    inside = [a for a in anchors if lo <= a <= hi]
    if not inside:
        raise PromptError(
            f"object {obj.label_id}'s prompted slices {anchors} are all outside "
            f"z_range ({lo}, {hi})"
        )
    starts = set(inside)
    if from_slices is not None:
        not_anchor = sorted(from_slices - set(anchors))
        if not_anchor:
            raise PromptError(
                f"slices {not_anchor} are not prompted slices of object {obj.label_id} "
                f"(its prompted slices: {anchors})"
            )
        starts &= from_slices
    return inside, starts, (lo, hi)


def propagate_object(
    ctx: ObjectContext,
    anchors: list[int],
    starts: set[int],
    lo: int,
    hi: int,
    *,
    constrained: bool,
    partial: bool,
    adopt: Callable[[set[int]], object],
    within: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Outcome:
    """Propagate ``ctx.obj`` from ``starts`` (among its ``anchors`` within ``lo``-``hi``).

    Args:
        constrained: the user gave the range ``lo``-``hi``: walks go to its ends.
        partial: a re-walk from a correction: each walk stops where it no longer improves
            the result (:func:`settled`).
        within: walk only between the object's current first and last slices
            (:func:`within_extent`).
        adopt: ``adopt(slices)`` adopts brush strokes painted on those slices while the walks
            ran (they become user slices and are kept); called once, before the writes are
            decided.
        progress, cancel: as for :meth:`Session.propagate
            <slicesam.engine.session.Session.propagate>`; a cancelled propagation returns
            ``summary.cancelled`` and no writes.
    """
    obj = ctx.obj
    walks = plan_walks(ctx, anchors, starts, lo, hi)
    if within:
        walks = within_extent(ctx, walks)
    total = sum(abs(end - a) for a, _, end in walks)
    summary = PropagationSummary(obj.label_id)
    results: dict[int, Step] = {}
    owned: set[int] = set()  # slices whose content this propagation decides
    done = 0
    params = ctx.params
    margin = params.margin_model_px * ctx.model_px
    reference = walk_reference(ctx) if partial and params.rewalk_reference else None
    # a re-walk from a correction may grow a small structure (a positive click asks for that)
    # and keeps the full margin around it
    walk_params = params
    if partial:
        walk_params = replace(params, max_small_growth=0.0, small_box_inset=0.0)
    erode_px = overshoot_erosion_px(obj, params)
    for anchor, direction, end in walks:
        seed = ctx.mask(anchor)
        record = obj.slices.get(anchor)
        fallback = getattr(record.prompts if record else None, "box", None)
        fallback_box = fallback.xyxy if fallback else mask_bbox(seed)
        bound = None
        if constrained and fallback is not None and params.bound_by_box:
            bound = expand_box(pixel_extent(fallback.xyxy), margin, seed.shape, 1.0)
        owned.update(range(anchor + direction, end + direction, direction))
        last = seed  # the mask of the slice before the one the walk is at
        where = "up" if direction > 0 else "down"
        for item in walk(
            anchor,
            seed,
            direction,
            end,
            ctx.predict,
            margin_px=margin,
            params=walk_params,
            constrained=constrained,
            fallback_box=fallback_box,
            bound=bound,
            image=ctx.image,
            reference=reference,
            erode_px=erode_px,
        ):
            if cancel is not None and cancel():
                summary.cancelled = True
                return Outcome(summary, total)
            if isinstance(item, Step):
                why = None
                if partial:
                    why = settled(obj.slices.get(item.z), ctx.mask(item.z), item, last, params)
                if why is not None:
                    summary.stops.append(f"from {anchor} {where}: {why} at {item.z}")
                    owned.difference_update(range(item.z, end + direction, direction))
                    break
                results[item.z] = item
                last = item.mask
                done += 1
                if progress is not None:
                    progress(done, total)
            else:
                summary.stops.append(f"from {anchor} {where}: {item.reason} at {item.z}")
                if partial and seed.any():
                    # a correction re-walks only as far as it improves the result: what lies
                    # beyond a stop keeps the masks it had
                    owned.difference_update(range(item.z, end + direction, direction))
    if partial:  # as a full propagation would: interpolated below
        owned.update(empty_gaps(ctx, anchors, starts))
    adopt(owned)
    filled = interpolation_fallback(ctx, anchors, results, owned)
    out = Outcome(summary, total, decide_writes(ctx, owned, results, filled))
    summary.slices = sorted(z for z in results if z in out.writes and z not in filled)
    summary.interpolated = sorted(filled)
    summary.confidence = {z: out.writes[z][1].confidence for z in summary.slices}  # type: ignore[union-attr]
    return out


def decide_writes(
    ctx: ObjectContext, owned: set[int], results: dict[int, Step], filled: dict[int, np.ndarray]
) -> dict[int, tuple[np.ndarray, SliceRecord | None]]:
    """What a propagation writes on the ``owned`` slices that are not user slices: the
    ``filled`` (interpolated) masks, the walks' ``results``, and nothing where the object had
    a derived slice the walks no longer reach (slice -> (mask, record; None: no record))."""
    writes: dict[int, tuple[np.ndarray, SliceRecord | None]] = {}
    empty = None
    for z in sorted(owned):
        now = ctx.obj.slices.get(z)
        source = None if now is None else now.source
        if source == USER:
            continue
        step = results.get(z)
        if z in filled:
            writes[z] = (filled[z], interpolated_record(now))
        elif step is not None:
            evidence = dict(step.evidence)
            record = replace(
                now or SliceRecord(PROPAGATED),
                source=PROPAGATED,
                confidence=combine(evidence),
                evidence=evidence,
                logits=step.low_res_logits,
            )
            writes[z] = (step.mask, record)
        elif source in DERIVED:
            if empty is None:
                empty = np.zeros_like(ctx.mask(z))
            writes[z] = (empty, None)
    return writes


def interpolated_record(now: SliceRecord | None = None) -> SliceRecord:
    """The record of a slice filled by interpolation (``now``: its record before, if any)."""
    return replace(
        now or SliceRecord(INTERPOLATED),
        source=INTERPOLATED,
        confidence=INTERPOLATED_CONFIDENCE,
        evidence={"interpolated": 1.0},
        logits=None,
    )


def overshoot_erosion_px(obj: SegObject, params: PropagationParams) -> int:
    """Pixels to erode the object's propagated masks by: from how far the model's masks
    reached past the user's boxes on the slices that still have one (0 without a box)."""
    reach = [
        r.overshoot
        for r in obj.slices.values()
        if r.overshoot is not None and r.prompts is not None and r.prompts.box is not None
    ]
    if not reach:
        return 0
    return overshoot_erosion(float(np.mean(reach)), params.max_overshoot_erosion_px)


def within_extent(
    ctx: ObjectContext, walks: list[tuple[int, int, int]]
) -> list[tuple[int, int, int]]:
    """``walks`` (anchor, direction, last slice) cut at the object's current first and last
    slices, the corrected slice included (``PropagationParams.removal_within_extent``)."""
    held = [z for z in ctx.obj.slices if ctx.holds(z)]
    if not held:
        return walks
    first, last = min(held), max(held)
    out = []
    for anchor, direction, end in walks:
        end = min(end, last) if direction > 0 else max(end, first)
        if (end - anchor) * direction > 0:
            out.append((anchor, direction, end))
    return out


def walk_reference(ctx: ObjectContext) -> WalkReference | None:
    """The object's largest slice (area, mean intensity) as it stands, for re-walks."""
    areas = {z: int(ctx.mask(z).sum()) for z, r in ctx.obj.slices.items() if r.source is not None}
    if not areas or max(areas.values()) == 0:
        return None
    z = max(areas, key=areas.__getitem__)
    return WalkReference(areas[z], mean_in(ctx.image(z), ctx.mask(z)))


def plan_walks(
    ctx: ObjectContext, anchors: list[int], starts: set[int], lo: int, hi: int
) -> list[tuple[int, int, int]]:
    """(anchor, direction, last slice) of each walk.

    Between two anchors with a mask each walks half way. An anchor the user left empty (the
    object is not there) does not walk: its neighbour walks up to it. In a re-propagation
    from ``starts`` only, an emptied anchor's neighbours walk again too (their half grows).
    """
    present = {a: ctx.holds(a) for a in anchors}
    starts = set(starts)
    for i, a in enumerate(anchors):
        if a in starts and not present[a]:
            starts.update(b for b in anchors[max(0, i - 1) : i + 2] if present[b])
    walks = []
    for i, a in enumerate(anchors):
        if a not in starts:
            continue
        prev = anchors[i - 1] if i > 0 else None
        nxt = anchors[i + 1] if i + 1 < len(anchors) else None
        if prev is None:
            down_end = lo
        elif not present[a]:
            down_end = a
        elif not present[prev]:
            down_end = prev + 1
        else:
            down_end = (prev + a) // 2 + 1
        if nxt is None:
            up_end = hi
        elif not present[a]:
            up_end = a
        elif not present[nxt]:
            up_end = nxt - 1
        else:
            up_end = (a + nxt) // 2
        if a > down_end:
            walks.append((a, -1, down_end))
        if a < up_end:
            walks.append((a, +1, up_end))
    return walks


def settled(
    record: SliceRecord | None,
    current: np.ndarray,
    step: Step,
    last: np.ndarray,
    params: PropagationParams,
) -> str | None:
    """Why a re-walk from a corrected slice should stop at ``step`` (None: go on).

    ``record``: the object's record on ``step.z`` and ``current`` its mask there, as they
    stand; ``last``: the re-walk's mask on the slice before. It stops where the new mask is
    (nearly) the one already there, or where the mask already there agrees at least as well
    with ``last`` as the new one does: the correction no longer improves anything; or where
    the mask already there is surer than the new one (its confidence higher by more than
    ``PropagationParams.keep_surer_by``): a re-walk between two anchors would otherwise
    overwrite good propagated slices with worse ones.
    """
    if record is None or record.source not in DERIVED:
        return None
    if dice(current, step.mask) >= params.converged_dice:
        return "unchanged"
    if current.any() and dice(current, last) >= dice(step.mask, last):
        return "no better than before"
    margin = params.keep_surer_by
    if margin >= 0 and current.any() and record.confidence > combine(step.evidence) + margin:
        return "the mask there is surer"
    return None


def empty_gaps(ctx: ObjectContext, anchors: list[int], starts: set[int]) -> set[int]:
    """The slices without the object between two consecutive ``anchors`` that both hold it,
    one of them among ``starts``: a re-walk from a correction hands them to the interpolation
    fallback, as a full propagation does with the slices its walks did not reach; otherwise a
    correction that re-walks only part of the way leaves a hole in the object between two
    anchors."""
    out: set[int] = set()
    for a, b in zip(anchors, anchors[1:]):
        if (a in starts or b in starts) and b - a > 1 and ctx.holds(a) and ctx.holds(b):
            out.update(
                z for z in range(a + 1, b) if ctx.obj.source_at(z) != USER and not ctx.holds(z)
            )
    return out


def interpolation_fallback(
    ctx: ObjectContext, anchors: list[int], results: dict[int, Step], owned: set[int]
) -> dict[int, np.ndarray]:
    """Masks for the ``owned`` slices between two anchors that no walk reached: shape-based
    interpolation of the two anchors' masks."""
    out: dict[int, np.ndarray] = {}
    for a, b in zip(anchors, anchors[1:]):
        unreached = [z for z in range(a + 1, b) if z in owned and z not in results]
        if not unreached:
            continue
        first, last = ctx.mask(a), ctx.mask(b)
        if not first.any() or not last.any():
            continue  # an anchor the user emptied ends the object: nothing to bridge
        masks = interpolate_masks(first, last, b - a - 1)
        for z in unreached:
            out[z] = masks[z - a - 1]
    return out


def interpolate_between(ctx: ObjectContext, anchors: list[int]) -> dict[int, np.ndarray]:
    """The masks of every slice between two consecutive ``anchors``, by shape-based
    interpolation of the two anchors' masks (:meth:`Session.interpolate
    <slicesam.engine.session.Session.interpolate>`)."""
    out: dict[int, np.ndarray] = {}
    for a, b in zip(anchors, anchors[1:]):
        if b - a < 2:
            continue
        masks = interpolate_masks(ctx.mask(a), ctx.mask(b), b - a - 1)
        out.update(zip(range(a + 1, b), masks))
    return out
