"""The interactive segmentation session: objects, prompts, masks, propagation, undo/redo.

A session owns (or is handed) one (z, y, x) integer label volume and writes every result into
it. It talks to the model only through :mod:`slicesam.models.base`'s interface and never
imports torch, Qt or napari.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PromptError, SliceSamError
from ..intensity import apply_window, resolve_window
from ..io.volume import Volume
from ..models.base import Embedding, Prediction, SegmentationModel
from ..prompts import Box, Point, make_box
from .cache import EmbeddingCache, volume_fingerprint
from .clicks import box_only_click, point_model_click
from .history import Action, History, SliceDiff
from .masks import clip_box, mask_bbox, paint
from .objects import PROPAGATED, USER, SegObject, SlicePrompts
from .propagation import PropagationParams, Step, walk

UINT16_MAX = np.iinfo(np.uint16).max


@dataclass
class PropagationSummary:
    """What :meth:`Session.propagate` did.

    Attributes:
        label_id: the object propagated.
        slices: sorted slice indices written by propagation (anchors excluded).
        confidence: slice -> model confidence of the mask written there.
        stops: one line per walk: where and why it ended.
        cancelled: True when cancelled; then nothing was changed.
        seconds: wall time.
    """

    label_id: int
    slices: list[int] = field(default_factory=list)
    confidence: dict[int, float] = field(default_factory=dict)
    stops: list[str] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0

    def __str__(self) -> str:
        if self.cancelled:
            return f"object {self.label_id}: propagation cancelled, nothing changed"
        span = f"{self.slices[0]}-{self.slices[-1]}" if self.slices else "none"
        mean = np.mean(list(self.confidence.values())) if self.confidence else float("nan")
        return (
            f"object {self.label_id}: {len(self.slices)} slices written ({span}), "
            f"mean confidence {mean:.2f}, {self.seconds:.1f} s; " + "; ".join(self.stops)
        )


class Session:
    """Segment objects in a volume with a promptable model, slice by slice.

    Args:
        volume: a :class:`~slicesam.io.volume.Volume` or a (z, y, x) array.
        model: a registry name ("litemedsam", "sam_vit_b", ...) or a model instance
            implementing :class:`~slicesam.models.base.SegmentationModel`.
        checkpoint: weights file for the model (required for SAM).
        device: "auto" (CUDA > MPS > CPU), "cpu", "cuda" or "mps".
        window: (lo, hi) intensity window, a CT preset name, or None for the default (CT soft
            tissue (-160, 240) HU; otherwise the 0.5-99.5 percentiles). Fixed for the session.
        labels: an existing (z, y, x) integer label array to write into (e.g. a napari Labels
            layer's data); a new uint16 array of zeros when None.
        params: propagation thresholds.
        cache_bytes: memory budget of the embedding cache.
        overwrite: which voxels of *other* objects a user prompt (box, click) may take on
            its slice: "propagated" (default) takes voxels that another object only has there
            by propagation, never those of another object's own prompted slice; "none" never
            takes any. Propagation never overwrites another object's voxels.
    """

    def __init__(
        self,
        volume: Volume | np.ndarray,
        *,
        model: str | SegmentationModel = "litemedsam",
        checkpoint: str | Path | None = None,
        device: str = "auto",
        window: tuple[float, float] | str | None = None,
        labels: np.ndarray | None = None,
        params: PropagationParams | None = None,
        cache_bytes: int = 2 * 1024**3,
        overwrite: str = "propagated",
    ) -> None:
        if overwrite not in ("propagated", "none"):
            raise SliceSamError(f"overwrite must be 'propagated' or 'none', got {overwrite!r}")
        self.overwrite = overwrite
        if not isinstance(volume, Volume):
            volume = Volume(data=np.asarray(volume))
        if volume.data.ndim != 3:
            raise SliceSamError(
                f"a session needs a 3D (z, y, x) volume, got shape {volume.data.shape}"
            )
        if np.issubdtype(volume.data.dtype, np.floating) and not np.isfinite(volume.data).all():
            raise SliceSamError(
                "the volume has NaN or infinite voxels; load it with "
                "load_volume(path, fill_nonfinite=<value>) to replace them"
            )
        self.volume = volume
        self.window = resolve_window(window, volume.data, volume.modality)
        if isinstance(model, str):
            from ..models.registry import load_model

            model = load_model(model, checkpoint=checkpoint, device=device)
        self.model: SegmentationModel = model
        self.params = params or PropagationParams()
        self.labels = self._init_labels(labels)
        # The label volume as the session last left it: edits made behind its back (napari's
        # paint brush) are found by comparison in sync_external_edits().
        self._shadow = self.labels.copy()
        self._objects: dict[int, SegObject] = {}
        for value in np.unique(self.labels):
            if value:
                self._objects[int(value)] = SegObject(int(value), f"object {int(value)}")
        self._logits: dict[tuple[int, int], np.ndarray] = {}
        self._history = History()
        self._listeners: list[Callable[[list[int]], None]] = []
        self._lock = threading.RLock()
        signature = "|".join(
            [
                volume_fingerprint(volume.data),
                f"{self.window[0]:g},{self.window[1]:g}",
                model.name,
                model.weights_sha256,
            ]
        )
        self.cache = EmbeddingCache(signature, max_bytes=cache_bytes)

    # -- setup ------------------------------------------------------------------------------
    def _init_labels(self, labels: np.ndarray | None) -> np.ndarray:
        shape = self.volume.data.shape
        if labels is None:
            return np.zeros(shape, dtype=np.uint16)
        if labels.shape != shape:
            raise SliceSamError(
                f"labels shape {labels.shape} does not match the volume's {tuple(shape)}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise SliceSamError(f"labels must have an integer dtype, got {labels.dtype}")
        return labels

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.volume.data.shape)  # type: ignore[return-value]

    @property
    def model_px(self) -> float:
        """Slice pixels per model-input pixel (longest side / model input side)."""
        return max(self.shape[1], self.shape[2]) / self.model.input_scale_ref

    def add_listener(self, callback: Callable[[list[int]], None]) -> None:
        """Call ``callback(slices)`` after every change of the label volume."""
        self._listeners.append(callback)

    def _emit(self, slices: Iterable[int]) -> None:
        changed = sorted(set(slices))
        for callback in list(self._listeners):
            callback(changed)

    # -- objects ----------------------------------------------------------------------------
    @property
    def objects(self) -> dict[int, SegObject]:
        """label id -> object (a copy: change objects through the session's methods).

        Safe to call from another thread while the session works (the item list is taken in
        one step).
        """
        return {k: v.clone() for k, v in list(self._objects.items())}

    @property
    def object_ids(self) -> list[int]:
        """Sorted label ids of the objects (no copies: cheap on the click path)."""
        return sorted(list(self._objects))

    def _state(self) -> dict[int, SegObject]:
        return {k: v.clone() for k, v in self._objects.items()}

    def _get(self, obj: int, *, for_edit: bool = True) -> SegObject:
        if isinstance(obj, bool) or not isinstance(obj, (int, np.integer)):
            raise PromptError(f"object ids are integers, got {obj!r}")
        found = self._objects.get(int(obj))
        if found is None:
            known = ", ".join(map(str, sorted(self._objects))) or "none yet; call new_object()"
            raise PromptError(f"unknown object {obj}; existing objects: {known}")
        if for_edit and found.locked:
            raise PromptError(f"object {obj} ({found.name}) is locked; unlock it to edit")
        return found

    def new_object(self, name: str | None = None, label_id: int | None = None) -> int:
        """Create an object and return its label id (1, 2, ... unless ``label_id`` is given).

        Ids never collide with an existing object or with values already in the label volume.
        """
        with self._lock:
            if label_id is None:
                used = set(self._objects) | {int(v) for v in np.unique(self.labels)}
                label_id = 1
                while label_id in used:
                    label_id += 1
            else:
                if isinstance(label_id, bool) or int(label_id) != label_id or label_id < 1:
                    raise PromptError(f"label_id must be an integer >= 1, got {label_id!r}")
                label_id = int(label_id)
                if label_id in self._objects:
                    raise PromptError(f"label id {label_id} is already used by another object")
            if label_id > UINT16_MAX and self.labels.dtype.itemsize < 4:
                self.labels = self.labels.astype(np.uint32)
                self._shadow = self._shadow.astype(np.uint32)
            before = self._state()
            self._objects[label_id] = SegObject(label_id, name or f"object {label_id}")
            self._history.record(Action(f"new object {label_id}", [], before, self._state()))
            return label_id

    def rename_object(self, obj: int, name: str) -> None:
        with self._lock:
            target = self._get(obj, for_edit=False)
            before = self._state()
            target.name = str(name)
            self._history.record(Action(f"rename {obj}", [], before, self._state()))

    def lock_object(self, obj: int, locked: bool = True) -> None:
        """Lock (or unlock) an object: a locked object takes no prompts and no propagation."""
        with self._lock:
            target = self._get(obj, for_edit=False)
            before = self._state()
            target.locked = bool(locked)
            self._history.record(Action(f"lock {obj}", [], before, self._state()))

    def delete_object(self, obj: int) -> None:
        """Remove an object and its voxels (undoable)."""
        with self._lock:
            self._get(obj, for_edit=False)
            before = self._state()
            writes = {
                int(z): paint(self.labels[z], int(obj), np.zeros(self.shape[1:], bool))
                for z in np.flatnonzero((self.labels == obj).any(axis=(1, 2)))
            }
            del self._objects[int(obj)]
            self._apply(f"delete object {obj}", before, writes)

    def mask(self, obj: int, z: int) -> np.ndarray:
        """The (y, x) bool mask of object ``obj`` on slice ``z``."""
        self._check_z(z)
        return self.labels[z] == int(obj)

    def confidence(self, obj: int) -> dict[int, float]:
        """slice -> model confidence of the object's mask there (anchors and propagated)."""
        return dict(self._get(obj, for_edit=False).confidence)

    # -- embeddings ---------------------------------------------------------------------------
    def embed(self, z: int) -> Embedding:
        """The (cached) embedding of slice ``z``."""
        self._check_z(z)
        return self.cache.get_or_compute(
            z, lambda: self.model.embed(apply_window(self.volume.data[z], self.window))
        )

    def _predict(self, z: int, **prompts) -> Prediction:
        return self.model.predict(self.embed(z), **prompts)

    # -- prompts --------------------------------------------------------------------------------
    def _check_z(self, z: int) -> int:
        if isinstance(z, bool) or int(z) != z:
            raise PromptError(f"slice index must be an integer, got {z!r}")
        z = int(z)
        if not 0 <= z < self.shape[0]:
            raise PromptError(f"slice z={z} is outside the volume (0..{self.shape[0] - 1})")
        return z

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
        with self._lock:
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
            pred = self._predict(z, box=b.xyxy)
            before = self._state()
            target.prompts[z] = SlicePrompts(box=b)
            return self._write_user_slice(
                target,
                z,
                pred.masks[0],
                float(pred.scores[0]),
                pred.low_res_logits[0],
                before,
                f"box on {z}",
            )

    def add_point(self, obj: int, z: int, y: float, x: float, positive: bool = True) -> np.ndarray:
        """Add a click at (y, x) on slice ``z``: positive adds the region it lands on, negative
        removes it. The slice becomes an anchor.

        Returns:
            the object's (y, x) bool mask on slice ``z`` as written into :attr:`labels`.
        """
        with self._lock:
            target = self._get(obj)
            z = self._check_z(z)
            h, w = self.shape[1:]
            if not (0 <= y <= h - 1 and 0 <= x <= w - 1):
                raise PromptError(
                    f"point (y={y}, x={x}) is outside slice {z} (y 0..{h - 1}, x 0..{w - 1})"
                )
            point = Point(z, float(y), float(x), bool(positive))
            prompts = target.prompts.get(z, SlicePrompts())
            prompts = SlicePrompts(prompts.box, [*prompts.points, point])
            predict = lambda **kw: self._predict(z, **kw)  # noqa: E731
            if self.model.box_only:
                current = self.labels[z] == target.label_id
                mask, score = box_only_click(predict, current, point, self.model_px)
                logits = None
            else:
                pred = point_model_click(
                    predict,
                    prompts.box.xyxy if prompts.box else None,
                    prompts.points,
                    self._logits.get((target.label_id, z)),
                )
                mask, score, logits = pred.masks[0], float(pred.scores[0]), pred.low_res_logits[0]
            before = self._state()
            target.prompts[z] = prompts
            sign = "+" if positive else "-"
            return self._write_user_slice(
                target, z, mask, score, logits, before, f"click {sign} on {z}"
            )

    def _write_user_slice(
        self,
        target: SegObject,
        z: int,
        mask: np.ndarray,
        score: float,
        logits: np.ndarray | None,
        before: dict[int, SegObject],
        name: str,
    ) -> np.ndarray:
        target.source[z] = USER
        target.confidence[z] = score
        if logits is not None:
            self._logits[(target.label_id, z)] = logits
        else:
            self._logits.pop((target.label_id, z), None)
        claimable = set()
        if self.overwrite == "propagated":
            claimable = {
                o.label_id
                for o in self._objects.values()
                if o.label_id != target.label_id and o.source.get(z) == PROPAGATED
            }
        self._apply(name, before, {z: paint(self.labels[z], target.label_id, mask, claimable)})
        return self.labels[z] == target.label_id

    def _apply(
        self, name: str, before: dict[int, SegObject], writes: dict[int, np.ndarray]
    ) -> Action:
        """Write new label slices, record one undoable action and notify listeners."""
        diffs = []
        for z, new in sorted(writes.items()):
            diff = SliceDiff.between(z, self.labels[z], new)
            if diff is not None:
                diffs.append(diff)
                self.labels[z] = new
                self._shadow[z] = new
        action = Action(name, diffs, before, self._state())
        self._history.record(action)
        self._emit(action.slices)
        return action

    # -- propagation ------------------------------------------------------------------------------
    def propagate(
        self,
        obj: int,
        z_range: tuple[int, int] | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> PropagationSummary:
        """Propagate ``obj`` from every slice the user prompted, in both directions.

        Each next slice is prompted with the bounding box of the current mask (plus a margin of
        3 model pixels). Without ``z_range`` a walk stops when the object vanishes, its area
        jumps, it drifts away, or the model's confidence drops; with ``z_range`` (inclusive) the
        object is known to span the range and walks go to its ends. Between two anchors each
        walks half way. Anchor slices are never overwritten; other objects' voxels are never
        overwritten; slices this object had from an earlier propagation and no longer reaches
        are cleared.

        Args:
            obj: label id.
            z_range: (first, last) inclusive slice range, or None.
            progress: called as ``progress(done, total)`` after each slice.
            cancel: polled before each slice; when it returns True the propagation stops and
                every change it made is rolled back (``summary.cancelled``).
        """
        with self._lock:
            t0 = time.perf_counter()
            target = self._get(obj)
            anchors = target.anchors
            if not anchors:
                raise PromptError(f"object {obj} has no prompted slice: add a box or a click first")
            nz = self.shape[0]
            constrained = z_range is not None
            if constrained:
                lo, hi = sorted(self._check_z(v) for v in z_range)  # type: ignore[union-attr]
            else:
                lo, hi = 0, nz - 1
            inside = [a for a in anchors if lo <= a <= hi]
            if not inside:
                raise PromptError(
                    f"object {obj}'s prompted slices {anchors} are all outside z_range ({lo}, {hi})"
                )
            walks = []
            for i, a in enumerate(inside):
                down_end = (inside[i - 1] + a) // 2 + 1 if i > 0 else lo
                up_end = (a + inside[i + 1]) // 2 if i + 1 < len(inside) else hi
                if a > down_end:
                    walks.append((a, -1, down_end))
                if a < up_end:
                    walks.append((a, +1, up_end))
            total = sum(abs(end - a) for a, _, end in walks)
            summary = PropagationSummary(target.label_id)
            before = self._state()
            writes: dict[int, np.ndarray] = {}
            results: dict[int, Step] = {}
            done = 0
            margin = self.params.margin_model_px * self.model_px
            for anchor, direction, end in walks:
                seed = self.labels[anchor] == target.label_id
                fallback = getattr(target.prompts.get(anchor), "box", None)
                fallback_box = fallback.xyxy if fallback else mask_bbox(seed)
                for item in walk(
                    anchor,
                    seed,
                    direction,
                    end,
                    lambda z, box: self._predict(z, box=box),
                    margin_px=margin,
                    params=self.params,
                    constrained=constrained,
                    fallback_box=fallback_box,
                ):
                    if cancel is not None and cancel():
                        summary.cancelled = True
                        summary.seconds = time.perf_counter() - t0
                        return summary
                    if isinstance(item, Step):
                        results[item.z] = item
                        done += 1
                        if progress is not None:
                            progress(done, total)
                    else:
                        where = "up" if direction > 0 else "down"
                        summary.stops.append(f"from {anchor} {where}: {item.reason} at {item.z}")
            # Commit: write reached slices, clear stale propagated ones in the range.
            for z in range(lo, hi + 1):
                if target.source.get(z) == USER:
                    continue
                step = results.get(z)
                if step is not None:
                    writes[z] = paint(self.labels[z], target.label_id, step.mask)
                    target.source[z] = PROPAGATED
                    target.confidence[z] = step.score
                    self._logits[(target.label_id, z)] = step.low_res_logits
                elif target.source.get(z) == PROPAGATED:
                    writes[z] = paint(
                        self.labels[z], target.label_id, np.zeros(self.shape[1:], bool)
                    )
                    del target.source[z]
                    target.confidence.pop(z, None)
                    self._logits.pop((target.label_id, z), None)
            self._apply(f"propagate {obj}", before, writes)
            summary.slices = sorted(results)
            summary.confidence = {z: results[z].score for z in summary.slices}
            summary.seconds = time.perf_counter() - t0
            if progress is not None:
                progress(total, total)
            return summary

    # -- edits made outside the session ------------------------------------------------------------
    def sync_external_edits(
        self, name: str = "paint", slices: Iterable[int] | None = None
    ) -> list[int]:
        """Adopt changes made to :attr:`labels` behind the session's back (e.g. napari's brush).

        Every slice where the label volume differs from what the session last wrote becomes a
        user slice (an anchor) of each object whose voxels changed there, so propagation never
        overwrites it; a painted label id that is not an object yet becomes one. The change is
        one undoable action.

        Args:
            name: the undo entry's name.
            slices: compare only these slices (the whole volume when None).

        Returns:
            the slices that changed (empty when nothing did).
        """
        with self._lock:
            if slices is None:
                changed = np.flatnonzero((self.labels != self._shadow).any(axis=(1, 2)))
            else:
                zs = sorted({self._check_z(z) for z in slices})
                changed = np.array(
                    [z for z in zs if not np.array_equal(self.labels[z], self._shadow[z])], int
                )
            if changed.size == 0:
                return []
            before = self._state()
            diffs = []
            for z in changed.tolist():
                diff = SliceDiff.between(z, self._shadow[z], self.labels[z])
                if diff is None:
                    continue
                diffs.append(diff)
                touched = set(np.unique(diff.before).tolist()) | set(np.unique(diff.after).tolist())
                for label in sorted(touched - {0}):
                    obj = self._objects.get(int(label))
                    if obj is None:
                        obj = self._objects[int(label)] = SegObject(int(label), f"object {label}")
                    obj.source[z] = USER
                    obj.confidence[z] = 1.0
                    self._logits.pop((obj.label_id, z), None)
                self._shadow[z] = self.labels[z]
            action = Action(name, diffs, before, self._state())
            self._history.record(action)
            self._emit(action.slices)
            return action.slices

    def low_confidence_slices(self, obj: int, threshold: float = 0.7) -> list[int]:
        """Sorted slices where ``obj``'s mask has a confidence below ``threshold``."""
        conf = self._get(obj, for_edit=False).confidence
        return sorted(z for z, c in conf.items() if c < threshold)

    def next_low_confidence(
        self, obj: int, z: int, direction: int = 1, threshold: float = 0.7
    ) -> int | None:
        """The nearest low-confidence slice after (direction=1) or before (-1) slice ``z``."""
        weak = self.low_confidence_slices(obj, threshold)
        ahead = [v for v in weak if (v > z if direction > 0 else v < z)]
        if not ahead:
            return None
        return min(ahead) if direction > 0 else max(ahead)

    # -- undo / redo ------------------------------------------------------------------------------
    def undo(self) -> bool:
        """Undo the last action; False when there is nothing to undo."""
        with self._lock:
            action = self._history.pop_undo()
            if action is None:
                return False
            for diff in reversed(action.diffs):
                diff.apply(self.labels, reverse=True)
            self._restore(action.state_before, action.slices)
            return True

    def redo(self) -> bool:
        """Redo the last undone action; False when there is nothing to redo."""
        with self._lock:
            action = self._history.pop_redo()
            if action is None:
                return False
            for diff in action.diffs:
                diff.apply(self.labels)
            self._restore(action.state_after, action.slices)
            return True

    def _restore(self, state: dict[int, SegObject], slices: list[int]) -> None:
        for z in slices:
            self._shadow[z] = self.labels[z]
        self._objects = {k: v.clone() for k, v in state.items()}
        for key in [k for k in self._logits if k[1] in slices or k[0] not in self._objects]:
            del self._logits[key]
        self._emit(slices)

    @property
    def can_undo(self) -> bool:
        return self._history.can_undo

    @property
    def can_redo(self) -> bool:
        return self._history.can_redo

    def __repr__(self) -> str:
        return (
            f"Session({self.volume!r}, model={self.model.name!r}, window={self.window}, "
            f"objects={sorted(self._objects)})"
        )
