"""The interactive segmentation session: a volume, a model, and prompts that become labels.

A :class:`Session` is an :class:`~slicesam.engine.annotation.Annotation` (the label volume, its
objects, undo/redo) of one volume, edited by a promptable model. It talks to the model only
through :mod:`slicesam.models.base`'s interface and never imports torch, Qt or napari. What a
prompt on a slice becomes is decided by a prompting strategy (:mod:`slicesam.engine.prompting`),
what a propagation writes by :mod:`slicesam.engine.walks` (the walk itself is a generator of
steps in :mod:`slicesam.engine.propagation`); both see the session through :mod:`.contexts`. Review
helpers are in :mod:`.review`, the constructor's input checks in :mod:`.session_inputs`, the
background threads' side in the base class :mod:`.model_threads`, restoring in :mod:`.restoring`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import PromptError, SliceSamError
from ..intensity import apply_window, resolve_window
from ..io.volume import Volume
from ..models.base import Embedding, SegmentationModel
from ..prompts import Box, Lasso, Point, Scribble, make_box
from ..quality import ObjectStats, object_stats
from . import restoring, review, walks
from .annotation import Annotation
from .cache import session_cache
from .clicks import CLICK_STRATEGIES, ClickEdits, default_click_edits
from .contexts import object_context, slice_context
from .foreground import ForegroundGate, interactive
from .journal import Journal, journaled
from .label_volume import Labels, object_block
from .masks import clip_box, paint
from .model_threads import ModelThreads
from .objects import DERIVED, SegObject
from .prompting import SliceResult, prompt_adds, prompt_name, prompting_for
from .propagation import PropagationParams, default_params
from .session_inputs import check_autosave, session_labels, session_volume, warn_if_constant
from .strokes import stroke_on_slice
from .walks import INTERPOLATED_CONFIDENCE, Correction, PropagationSummary, interpolated_record

__all__ = [
    "INTERPOLATED_CONFIDENCE",
    "Correction",
    "PropagationSummary",
    "Session",
    "load_session",
    "restore_session",
]

#: A prompt :meth:`Session.correct` takes.
Prompt = Box | Point | Scribble | Lasso


class Session(ModelThreads, Annotation):
    """Segment objects in a volume with a promptable model, slice by slice.

    The labels, objects and undo/redo are those of :class:`~slicesam.engine.annotation.Annotation`.

    Args:
        volume: a :class:`~slicesam.io.volume.Volume` or a (z, y, x) array. Its data may be
            lazy (:class:`~slicesam.io.lazy.LazyArray`, or a zarr/dask array): the session
            then reads only the slices it embeds or shows the model, plus the sample of
            slices the default window and the checks below come from
            (:func:`~slicesam.io.lazy.slice_sample`).
        model: a registry name ("litemedsam", "sam_vit_b", ...) or a model instance
            implementing :class:`~slicesam.models.base.SegmentationModel`.
        checkpoint: weights file for the model (required for SAM).
        device: "auto" (CUDA > MPS > CPU), "cpu", "cuda" or "mps".
        window: (lo, hi) intensity window, a CT preset name, or None for the default (CT soft
            tissue (-160, 240) HU; otherwise the 0.5-99.5 percentiles, of a sample of slices
            for a lazy volume). Fixed for the session.
        labels: an existing (z, y, x) integer label array to write into (e.g. a napari Labels
            layer's data) or label store (:class:`~slicesam.io.lazy.SliceStore`); None: new
            uint16 zeros, or for a lazy volume a compressed in-memory zarr store
            (:func:`~slicesam.io.zarr_labels.memory_label_store`).
        labels_store: a path where the labels live in a chunked zarr store on disk while
            the session runs (one chunk per slice; created when missing, reopened with its
            labels when it exists: :func:`~slicesam.io.zarr_labels.open_label_store`).
            Every change is written there slice by slice. Not with ``labels``.
        params: propagation thresholds; None for the defaults of the volume's modality
            (:func:`~slicesam.engine.propagation.default_params`).
        cache_bytes: memory budget of the embedding cache.
        overwrite: which voxels of *other* objects a user prompt (box, click) may take on
            its slice: "propagated" (default) takes voxels that another object only has there
            by propagation, never those of another object's own prompted slice; "none" never
            takes any. Propagation never overwrites another object's voxels.
        autosave: True to save the session after every action to a sidecar next to the image
            (or in the user cache; see :mod:`slicesam.engine.autosave`), a sidecar folder
            path, or None (default) for no autosave. :meth:`restore` reopens it.
        click_strategy: how clicks edit a mask on a box-only model such as LiteMedSAM:
            "adaptive" (default), "local" or "region"
            (:func:`~slicesam.engine.clicks.box_only_click`); SAM takes clicks as prompts.
        click_edits: how those clicks follow the slice's intensities
            (:class:`~slicesam.engine.clicks.ClickEdits`); None for the defaults of the
            volume's modality (:func:`~slicesam.engine.clicks.default_click_edits`).
        disk_cache: keep embeddings on disk too, so a later session on the same volume (same
            window, model, weights and encoder) starts warm: True for the user cache folder
            (:func:`slicesam.engine.disk_cache.embeddings_cache_dir`), a folder path, or None
            (default) for memory only. Ignored for models without an encoder.
    """

    def __init__(
        self,
        volume: Volume | np.ndarray,
        *,
        model: str | SegmentationModel = "litemedsam",
        checkpoint: str | Path | None = None,
        device: str = "auto",
        window: tuple[float, float] | str | None = None,
        labels: Labels | None = None,
        params: PropagationParams | None = None,
        cache_bytes: int = 2 * 1024**3,
        overwrite: str = "propagated",
        autosave: str | Path | bool | None = None,
        click_strategy: str = "adaptive",
        disk_cache: str | Path | bool | None = None,
        click_edits: ClickEdits | None = None,
        labels_store: str | Path | None = None,
    ) -> None:
        if click_strategy not in CLICK_STRATEGIES:
            raise SliceSamError(
                f"click_strategy must be one of {CLICK_STRATEGIES}, got {click_strategy!r}"
            )
        #: How clicks drive a box-only model (see :func:`slicesam.engine.clicks.box_only_click`).
        self.click_strategy = click_strategy
        if overwrite not in ("propagated", "none"):
            raise SliceSamError(f"overwrite must be 'propagated' or 'none', got {overwrite!r}")
        self.overwrite = overwrite
        volume, seen = session_volume(volume)
        self.volume = volume
        super().__init__(volume.data.shape, session_labels(volume, labels, labels_store))
        self.window = resolve_window(window, seen, volume.modality)
        warn_if_constant(volume, seen)
        if isinstance(model, str):
            from ..models.registry import load_model

            model = load_model(model, checkpoint=checkpoint, device=device)
        self.model: SegmentationModel = model
        #: What a prompt on a slice becomes, for this kind of model (chosen once, here).
        self.prompting = prompting_for(model.capabilities)
        self.params = params or default_params(self.volume.modality)
        #: How box-only clicks follow intensities (:class:`~slicesam.engine.clicks.ClickEdits`).
        self.click_edits = click_edits or default_click_edits(self.volume.modality)
        #: Interactive work first: background forwards pause while it runs
        #: (:mod:`slicesam.engine.foreground`). A click waits for a background forward to
        #: pause only where the model's pause points are a few milliseconds apart.
        self.gate = ForegroundGate(settle_s=0.03 if model.capabilities.pauses_often else 0.0)
        self.cache = session_cache(
            volume.data,
            self.window,
            model,
            max_bytes=cache_bytes,
            disk_cache=disk_cache,
            wait_context=self.gate.released,
        )
        #: The autosave journal (:mod:`slicesam.engine.journal`), or None.
        self.autosave: Journal | None = None
        check_autosave(autosave, self.labels)
        if autosave:
            from .autosave import start_autosave

            start_autosave(self, autosave)

    @property
    def model_px(self) -> float:
        """Slice pixels per model-input pixel (longest side / model input side)."""
        return max(self.shape[1], self.shape[2]) / self.model.input_scale_ref

    # -- embeddings ---------------------------------------------------------------------------
    def embed(self, z: int) -> Embedding:
        """The (cached) embedding of slice ``z``."""
        self._check_z(z)
        return self.cache.get_or_compute(z, functools.partial(self._compute_embedding, z))

    def _compute_embedding(self, z: int) -> Embedding:
        with self.gate.working():
            return self.model.embed(apply_window(self.volume.data[z], self.window))

    # -- prompts --------------------------------------------------------------------------------
    @interactive
    @journaled
    def add_box(self, obj: int, z: int, box: tuple[float, float, float, float]) -> np.ndarray:
        """Segment ``obj`` on slice ``z`` from a box; the slice becomes an anchor.

        A new box replaces the object's earlier prompts (box and clicks) on that slice.

        Args:
            obj: label id from :meth:`new_object`.
            z: slice index.
            box: (x0, y0, x1, y1) inclusive pixel indices in ``volume.data[z]`` (ints or
                floats); the part outside the slice is clipped.

        Returns:
            the object's (y, x) bool mask on slice ``z`` as written into :attr:`labels`.
        """
        with self.lock:
            target = self._get(obj)
            z = self._check_z(z)
            b = make_box(z, box)
            clipped = clip_box(b.xyxy, self.shape[1:])
            if clipped is None:
                raise PromptError(
                    f"box {b.xyxy} lies outside slice {z} "
                    f"(x 0..{self.shape[2] - 1}, y 0..{self.shape[1] - 1})"
                )
            b = Box(z, *clipped)
            result = self.prompting.box(slice_context(self, target, z), b)
            return self._write_user_slice(target, z, result, prompt_name(b))

    @interactive
    @journaled
    def add_point(self, obj: int, z: int, y: float, x: float, positive: bool = True) -> np.ndarray:
        """Add a click at (y, x) on slice ``z``: positive adds the region it lands on, negative
        removes it. The slice becomes an anchor.

        Returns:
            the object's (y, x) bool mask on slice ``z`` as written into :attr:`labels`.
        """
        with self.lock:
            target = self._get(obj)
            z = self._check_z(z)
            h, w = self.shape[1:]
            if not (0 <= y <= h - 1 and 0 <= x <= w - 1):
                raise PromptError(
                    f"point (y={y}, x={x}) is outside slice {z} (y 0..{h - 1}, x 0..{w - 1})"
                )
            point = Point(z, float(y), float(x), bool(positive))
            result = self.prompting.click(slice_context(self, target, z), point)
            return self._write_user_slice(target, z, result, prompt_name(point))

    @interactive
    @journaled
    def correct(
        self,
        obj: int,
        prompt: Prompt,
        *,
        repropagate: bool = True,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Correction:
        """Apply one user prompt and update the neighbouring slices, as ONE undo step.

        The prompt is applied as :meth:`add_box`, :meth:`add_point`, :meth:`add_scribble` or
        :meth:`add_lasso` would; then, when ``obj`` was propagated (or interpolated) before and
        ``repropagate`` is True, it re-walks outward from the prompt's slice
        (``propagate(obj, from_slices=[prompt.z])``), changing slices only as far as the
        result changes. :meth:`undo` takes back the prompt and its re-walk together.

        Args:
            obj: label id.
            prompt: a :class:`~slicesam.prompts.Box`, :class:`~slicesam.prompts.Point`,
                :class:`~slicesam.prompts.Scribble` or :class:`~slicesam.prompts.Lasso` in
                volume voxel coordinates (z, y, x).
            repropagate: re-walk from the prompt's slice when the object was propagated.
            progress, cancel: as for :meth:`propagate` (a cancelled re-walk changes nothing;
                the prompt stays).
        """
        with self.lock:
            target = self._get(obj)
            if not isinstance(prompt, (Box, Point, Scribble, Lasso)):
                raise PromptError(
                    f"a correction is a Box, Point, Scribble or Lasso, got {type(prompt).__name__}"
                )
            rewalk = repropagate and (target.propagated or target.has_derived_slices())
            with self._history.group(prompt_name(prompt) + (" + re-walk" if rewalk else "")):
                if isinstance(prompt, Box):
                    mask = self.add_box(obj, prompt.z, prompt.xyxy)
                elif isinstance(prompt, Point):
                    mask = self.add_point(obj, prompt.z, prompt.y, prompt.x, prompt.positive)
                else:
                    add = self.add_scribble if isinstance(prompt, Scribble) else self.add_lasso
                    mask = add(obj, prompt.z, prompt.points, prompt.positive)
                summary = None
                if rewalk:  # removing voxels never grows the object past its ends
                    summary = self.propagate(
                        obj,
                        from_slices=[prompt.z],
                        within_extent=self.params.removal_within_extent and not prompt_adds(prompt),
                        progress=progress,
                        cancel=cancel,
                    )
            return Correction(mask, summary)

    @interactive
    @journaled
    def add_scribble(
        self, obj: int, z: int, points: Sequence[Sequence[float]], positive: bool = True
    ) -> np.ndarray:
        """Add a scribble (a polyline of (y, x) vertices) on slice ``z``: positive marks
        object, negative background. The slice becomes an anchor. What it becomes for each
        model is described in :mod:`slicesam.engine.strokes`.

        Returns:
            the object's (y, x) bool mask on slice ``z`` as written into :attr:`labels`.
        """
        with self.lock:
            target = self._get(obj)
            z = self._check_z(z)
            line = stroke_on_slice(points, self.shape[1:], z, "scribble")
            result = self.prompting.scribble(slice_context(self, target, z), line, bool(positive))
            name = prompt_name(Scribble(z, (), bool(positive)))
            return self._write_user_slice(target, z, result, name)

    @interactive
    @journaled
    def add_lasso(
        self, obj: int, z: int, polygon: Sequence[Sequence[float]], positive: bool = True
    ) -> np.ndarray:
        """Add a lasso (a closed polygon of (y, x) vertices) on slice ``z``: positive adds the
        object it outlines, negative removes what it encloses. The slice becomes an anchor.

        Returns:
            the object's (y, x) bool mask on slice ``z`` as written into :attr:`labels`.
        """
        with self.lock:
            target = self._get(obj)
            z = self._check_z(z)
            poly = stroke_on_slice(polygon, self.shape[1:], z, "lasso")
            result = self.prompting.lasso(slice_context(self, target, z), poly, bool(positive))
            name = prompt_name(Lasso(z, (), bool(positive)))
            return self._write_user_slice(target, z, result, name)

    def _write_user_slice(
        self, target: SegObject, z: int, result: SliceResult, name: str
    ) -> np.ndarray:
        """Write a prompt's result on slice ``z`` as a user slice, one undoable action."""
        before = self._state()
        target.slices[z] = result.record(target.slices.get(z))
        claimable = set()
        if self.overwrite == "propagated":
            claimable = {
                o.label_id
                for o in self._objects.values()
                if o.label_id != target.label_id and o.source_at(z) in DERIVED
            }
        self._apply(
            name, before, {z: paint(self.labels[z], target.label_id, result.mask, claimable)}
        )
        return self.labels[z] == target.label_id

    # -- propagation ------------------------------------------------------------------------------
    @interactive
    @journaled
    def propagate(
        self,
        obj: int,
        z_range: tuple[int, int] | None = None,
        *,
        from_slices: Iterable[int] | None = None,
        within_extent: bool = False,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> PropagationSummary:
        """Propagate ``obj`` from the slices the user prompted, in both directions.

        Each next slice is prompted with the bounding box of the current mask (plus a margin of
        ``PropagationParams.margin_model_px`` model pixels). Without ``z_range`` a walk stops
        when the object vanishes, its area jumps, it drifts away, its intensity changes, or
        the model's confidence drops; with ``z_range`` (inclusive) the object is known to span
        the range and walks go to its ends. Between two anchors each walks half way; where
        neither reaches a slice between them, the slice is filled by shape-based
        interpolation of the two anchors. Anchor slices are never overwritten; other objects'
        voxels are never overwritten; slices this object had from an earlier propagation and
        no longer reaches are cleared (:mod:`slicesam.engine.walks`).

        Args:
            obj: label id.
            z_range: (first, last) inclusive slice range, or None (for ``from_slices``: the
                range of the object's last ranged propagation, if any).
            from_slices: re-propagate only from these anchors (a correction on slice z:
                ``from_slices=[z]``); each walk stops where the new mask equals the one already
                there (``PropagationParams.converged_dice``), as far as the correction reaches.
            within_extent: walk only between the object's current first and last slices.
            progress: called as ``progress(done, total)`` after each slice.
            cancel: polled before each slice; when it returns True the propagation stops and
                nothing is changed (``summary.cancelled``).
        """
        with self.lock:
            t0 = time.perf_counter()
            target = self._get(obj)
            if z_range is None and from_slices is not None:
                z_range = target.z_range
            if z_range is not None:
                z_range = tuple(sorted(self._check_z(v) for v in z_range))
            wanted = None if from_slices is None else {self._check_z(z) for z in from_slices}
            inside, starts, (lo, hi) = walks.walk_span(
                target, z_range or (0, self.shape[0] - 1), wanted
            )
            before = self._state()
            outcome = walks.propagate_object(
                object_context(self, target),
                inside,
                starts,
                lo,
                hi,
                constrained=z_range is not None,
                partial=from_slices is not None,
                within=within_extent,
                # brush strokes painted while the walks ran (napari writes into the label
                # array directly) are adopted first: their slices become user slices, kept
                adopt=lambda owned: self.sync_external_edits("paint", slices=owned),
                progress=progress,
                cancel=cancel,
            )
            summary = outcome.summary
            if not summary.cancelled:
                if z_range is not None:
                    target.z_range = (lo, hi)
                target.propagated = True
                self._write_slices(target, f"propagate {obj}", before, outcome.writes)
            summary.seconds = time.perf_counter() - t0
            if progress is not None and not summary.cancelled:
                progress(outcome.total, outcome.total)
            return summary

    @journaled
    def interpolate(self, obj: int) -> list[int]:
        """Fill every slice between two consecutive prompted slices of ``obj`` by shape-based
        interpolation of their masks (replacing propagated masks there; user slices are kept).

        Interpolated slices get the confidence ``INTERPOLATED_CONFIDENCE`` (below the default
        low-confidence threshold, so they are listed among the slices to check).

        Returns:
            the slices written.
        """
        with self.lock:
            target = self._get(obj)
            anchors = target.anchors
            if len(anchors) < 2:
                raise PromptError(
                    f"object {obj} needs two prompted slices to interpolate between "
                    f"(it has {anchors or 'none'})"
                )
            before = self._state()
            masks = walks.interpolate_between(object_context(self, target), anchors)
            updates = {z: (m, interpolated_record(target.slices.get(z))) for z, m in masks.items()}
            self._write_slices(target, f"interpolate {obj}", before, updates)
            return sorted(updates)

    # -- review: where the model is unsure, measurements, clean-up ------------------------------
    @interactive
    def uncertainty(self, obj: int, z: int) -> tuple[np.ndarray, review.Suggestion | None]:
        """Where the model is unsure about ``obj`` on slice ``z``, and a suggested next click.

        The slice's own prompt is decoded again (the user's box and clicks, or for a propagated
        slice the box of its mask plus 3 model pixels, as propagation prompts it) as one mask
        and as the multimask candidates; see :mod:`slicesam.engine.uncertainty`.

        Returns:
            ((y, x) float32 uncertainty map in [0, 1], :class:`Suggestion` or None): the
            suggestion is the most uncertain place near the mask's boundary.
        """
        with self.lock:
            target = self._get(obj)
            z = self._check_z(z)
            current = self.labels[z] == target.label_id
            record = target.slices.get(z)
            prompts = record.prompts if record is not None else None
        if not current.any():
            raise PromptError(f"object {obj} has no mask on slice {z}: nothing to be unsure about")
        box = review.slice_box(current, prompts, self.model_px)
        decoder = self.prompting.decoder_prompts(box, prompts)
        return review.slice_uncertainty(
            self.model, self.embed(z), current, z, decoder, self.model_px
        )

    def stats(self, obj: int) -> ObjectStats:
        """Volume (mL for mm spacing, µm³ for µm), components, holes, compactness and slice
        extent of ``obj`` (see :func:`slicesam.quality.object_stats`)."""
        with self.lock:
            target = self._get(obj)
            z0, mask = object_block(self.labels, target.label_id)
        found = object_stats(mask, self.volume.spacing, self.volume.unit)
        if z0 and found.z_extent is not None:
            first, last = found.z_extent
            found = dataclasses.replace(found, z_extent=(first + z0, last + z0))
        return found

    # -- persistence ---------------------------------------------------------------------
    #: Reopen an autosaved session (:func:`slicesam.engine.restoring.restore`, its arguments).
    restore = classmethod(restoring.restore)

    def __repr__(self) -> str:
        return (
            f"Session({self.volume!r}, model={self.model.name!r}, window={self.window}, "
            f"objects={sorted(self._objects)})"
        )


def restore_session(path: str | Path, **kwargs) -> Session:
    """:meth:`Session.restore` as a function (``slicesam.restore_session``)."""
    return Session.restore(path, **kwargs)


load_session = restore_session
