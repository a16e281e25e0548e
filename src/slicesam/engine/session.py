"""The interactive segmentation session: objects, prompts, masks, propagation, undo/redo.

A session owns (or is handed) one (z, y, x) integer label volume and writes every result into
it. It talks to the model only through :mod:`slicesam.models.base`'s interface and never
imports torch, Qt or napari.
"""

from __future__ import annotations

import functools
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import PromptError, SliceSamError
from ..intensity import apply_window, resolve_window
from ..io.volume import Volume
from ..metrics import dice
from ..models.base import Embedding, Prediction, SegmentationModel
from ..models.yield_points import set_yield_hook
from ..prompts import Box, Lasso, Point, Scribble, make_box
from ..quality import ObjectStats, keep_largest_component, object_stats
from ..quality import fill_holes as fill_holes_of
from .cache import EmbeddingCache, volume_fingerprint
from .clicks import (
    CLICK_STRATEGIES,
    ClickEdits,
    box_only_click,
    default_click_edits,
    point_model_click,
    points_arrays,
)
from .confidence import combine, stability
from .foreground import ForegroundGate, interactive
from .history import Action, History, SliceDiff
from .interpolation import interpolate_masks
from .journal import Journal, journaled
from .masks import (
    clip_box,
    erode_mask,
    expand_box,
    mask_bbox,
    overshoot,
    overshoot_erosion,
    paint,
    pixel_extent,
)
from .objects import DERIVED, INTERPOLATED, PROPAGATED, USER, SegObject, SlicePrompts
from .propagation import (
    PropagationParams,
    Step,
    WalkReference,
    default_params,
    mean_in,
    predict_box,
    walk,
)
from .strokes import (
    SCRIBBLE_POINTS,
    as_polyline,
    box_only_scribble,
    lasso_mask,
    sample_along,
)
from .uncertainty import Suggestion, suggest_click, uncertainty_map

UINT16_MAX = np.iinfo(np.uint16).max
#: Confidence given to interpolated slices (below the default low-confidence threshold 0.7).
INTERPOLATED_CONFIDENCE = 0.5


@dataclass
class PropagationSummary:
    """What :meth:`Session.propagate` did.

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
    """What :meth:`Session.correct` did.

    Attributes:
        mask: the object's (y, x) bool mask on the prompted slice after the prompt.
        summary: the re-walk from that slice, or None when there was none (the object had no
            propagated slices, or ``repropagate`` was off).
    """

    mask: np.ndarray
    summary: PropagationSummary | None = None

    def __str__(self) -> str:
        return "no re-walk" if self.summary is None else f"re-walk: {self.summary}"


#: A prompt :meth:`Session.correct` takes.
Prompt = Box | Point | Scribble | Lasso


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
            "adaptive" (default), "local" or "region"; see
            :func:`slicesam.engine.clicks.box_only_click`. Models that take point prompts
            (SAM, MobileSAM) use the clicks as prompts instead.
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
        labels: np.ndarray | None = None,
        params: PropagationParams | None = None,
        cache_bytes: int = 2 * 1024**3,
        overwrite: str = "propagated",
        autosave: str | Path | bool | None = None,
        click_strategy: str = "adaptive",
        disk_cache: str | Path | bool | None = None,
        click_edits: ClickEdits | None = None,
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
        if volume.data.size and volume.data.min() == volume.data.max():
            warnings.warn(
                f"the volume is constant (every voxel is {volume.data.flat[0]}): there is no "
                "structure to segment; is it the right file or channel?",
                stacklevel=2,
            )
        if isinstance(model, str):
            from ..models.registry import load_model

            model = load_model(model, checkpoint=checkpoint, device=device)
        self.model: SegmentationModel = model
        self.params = params or default_params(self.volume.modality)
        #: How box-only clicks follow intensities (:class:`~slicesam.engine.clicks.ClickEdits`).
        self.click_edits = click_edits or default_click_edits(self.volume.modality)
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
                # the fast and the reference encoder give slightly different features
                model.capabilities.encoder,
            ]
        )
        store = None
        if disk_cache and model.capabilities.packs_embeddings:
            from .disk_cache import DiskEmbeddingStore, embeddings_cache_dir

            root = embeddings_cache_dir() if disk_cache is True else Path(disk_cache)
            store = DiskEmbeddingStore(root, signature, model.pack, model.unpack)
        #: Interactive work first: background forwards pause while it runs
        #: (:mod:`slicesam.engine.foreground`). A click waits for a background forward to
        #: pause only where the model's pause points are a few milliseconds apart.
        self.gate = ForegroundGate(settle_s=0.03 if model.capabilities.pauses_often else 0.0)
        self.cache = EmbeddingCache(
            signature, max_bytes=cache_bytes, store=store, wait_context=self.gate.released
        )

        #: The autosave journal (:mod:`slicesam.engine.journal`), or None.
        self.autosave: Journal | None = None
        if autosave:
            from .autosave import start_autosave

            start_autosave(self, autosave)

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
        """Call ``callback(slices)`` after every change of the label volume or the objects
        (``slices``: the slices whose labels changed; empty when only objects did, e.g. a new,
        renamed or locked object). Called in the thread that made the change."""
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

    @journaled
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
            self._emit([])
            return label_id

    @journaled
    def rename_object(self, obj: int, name: str) -> None:
        with self._lock:
            target = self._get(obj, for_edit=False)
            before = self._state()
            target.name = str(name)
            self._history.record(Action(f"rename {obj}", [], before, self._state()))
            self._emit([])

    @journaled
    def lock_object(self, obj: int, locked: bool = True) -> None:
        """Lock (or unlock) an object: a locked object takes no prompts and no propagation."""
        with self._lock:
            target = self._get(obj, for_edit=False)
            before = self._state()
            target.locked = bool(locked)
            self._history.record(Action(f"lock {obj}", [], before, self._state()))
            self._emit([])

    @journaled
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
        return self.cache.get_or_compute(z, functools.partial(self._compute_embedding, z))

    def _compute_embedding(self, z: int) -> Embedding:
        with self.gate.working():
            return self.model.embed(apply_window(self.volume.data[z], self.window))

    def limit_threads(self, n: int) -> None:
        """Limit the model's CPU threads for forwards run from the calling thread (used by the
        prefetcher's thread; a no-op for models without a thread pool)."""
        if self.model.capabilities.thread_limit:
            self.model.limit_threads(n)

    def background_setup(self, threads: int | None = None) -> None:
        """Make the calling thread a background worker of this session (the prefetcher's
        ``thread_setup``): its forwards pause at their yield points while interactive work
        runs (:attr:`gate`); ``threads`` also limits its CPU threads."""
        set_yield_hook(self.gate.wait_idle)
        self.gate.register_background()
        if threads:
            self.limit_threads(threads)

    def foreground(self) -> AbstractContextManager[None]:
        """A context for interactive work done outside the session's own methods (e.g. a GUI
        calling the model directly): background forwards pause meanwhile. The session's
        prompts and propagation enter it by themselves."""
        return self.gate.busy()

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
            pred = predict_box(lambda **kw: self._predict(z, **kw), pixel_extent(b.xyxy))
            before = self._state()
            reach = overshoot(pred.mask, b.xyxy)
            if reach is None:
                target.overshoot.pop(z, None)
            else:
                target.overshoot[z] = reach
                k = overshoot_erosion(reach, self.params.max_overshoot_erosion_px)
                pred.mask = erode_mask(pred.mask, k, self.params.min_area_px)
            target.prompts[z] = SlicePrompts(box=b)
            return self._write_user_slice(
                target, z, pred.mask, pred.score, pred.low_res_logits, before, f"box on {z}"
            )

    @interactive
    @journaled
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
            if not self.model.capabilities.points:
                current = self.labels[z] == target.label_id
                # only positive clicks use the neighbour (what they add) and, on an empty
                # slice, the intensities: a negative click skips both
                hint = self._neighbour_mask(target, z) if positive else None
                image = self._unit_slice(z) if positive or current.any() else None
                mask, score = box_only_click(
                    predict,
                    current,
                    point,
                    self.model_px,
                    strategy=self.click_strategy,
                    hint=hint,
                    boxed=prompts.box is not None,
                    image=image,
                    edits=self.click_edits,
                    earlier=prompts.points[:-1],
                )
                logits = None
            else:
                pred = point_model_click(
                    predict,
                    pixel_extent(prompts.box.xyxy) if prompts.box else None,
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
        :meth:`add_lasso` would; then, when ``obj`` already has propagated slices and
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
        with self._lock:
            target = self._get(obj)
            rewalk = repropagate and target.has_derived_slices()
            if isinstance(prompt, Box):
                name, apply = f"box on {prompt.z}", lambda: self.add_box(obj, prompt.z, prompt.xyxy)
            elif isinstance(prompt, Point):
                name = f"click {'+' if prompt.positive else '-'} on {prompt.z}"
                apply = lambda: self.add_point(  # noqa: E731
                    obj, prompt.z, prompt.y, prompt.x, prompt.positive
                )
            elif isinstance(prompt, (Scribble, Lasso)):
                add = self.add_scribble if isinstance(prompt, Scribble) else self.add_lasso
                name = f"{type(prompt).__name__.lower()} {'+' if prompt.positive else '-'}"
                name += f" on {prompt.z}"
                apply = lambda: add(obj, prompt.z, prompt.points, prompt.positive)  # noqa: E731
            else:
                raise PromptError(
                    f"a correction is a Box, Point, Scribble or Lasso, got {type(prompt).__name__}"
                )
            with self._history.group(name + (" + re-walk" if rewalk else "")):
                mask = apply()
                summary = None
                if rewalk:
                    summary = self.propagate(
                        obj, from_slices=[prompt.z], progress=progress, cancel=cancel
                    )
            return Correction(mask, summary)

    def _stroke(self, z: int, points, what: str) -> np.ndarray:
        """A stroke's (N, 2) (y, x) vertices, clipped to the slice; an error when none of it
        lies on the slice."""
        try:
            line = as_polyline(points)
        except (TypeError, ValueError) as exc:
            raise PromptError(f"a {what} needs (y, x) vertices: {exc}") from None
        if not np.isfinite(line).all():
            raise PromptError(f"a {what} has non-finite coordinates")
        h, w = self.shape[1:]
        inside = (
            (line[:, 0] >= 0) & (line[:, 0] <= h - 1) & (line[:, 1] >= 0) & (line[:, 1] <= w - 1)
        )
        if not inside.any():
            raise PromptError(f"the {what} lies outside slice {z} (y 0..{h - 1}, x 0..{w - 1})")
        return np.clip(line, 0, [h - 1, w - 1])

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
        with self._lock:
            target = self._get(obj)
            z = self._check_z(z)
            line = self._stroke(z, points, "scribble")
            prompts = target.prompts.get(z, SlicePrompts())
            predict = lambda **kw: self._predict(z, **kw)  # noqa: E731
            logits = None
            if not self.model.capabilities.points:
                current = self.labels[z] == target.label_id
                mask, score = box_only_scribble(
                    predict, current, line, bool(positive), self.model_px
                )
                sampled = []
            else:
                sampled = [
                    Point(z, float(y), float(x), bool(positive))
                    for y, x in sample_along(line, SCRIBBLE_POINTS)
                ]
                pred = point_model_click(
                    predict,
                    pixel_extent(prompts.box.xyxy) if prompts.box else None,
                    [*prompts.points, *sampled],
                    self._logits.get((target.label_id, z)),
                )
                mask, score, logits = pred.masks[0], float(pred.scores[0]), pred.low_res_logits[0]
            before = self._state()
            target.prompts[z] = SlicePrompts(prompts.box, [*prompts.points, *sampled])
            sign = "+" if positive else "-"
            return self._write_user_slice(
                target, z, mask, score, logits, before, f"scribble {sign} on {z}"
            )

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
        with self._lock:
            target = self._get(obj)
            z = self._check_z(z)
            poly = self._stroke(z, polygon, "lasso")
            current = self.labels[z] == target.label_id
            mask, score = lasso_mask(
                lambda **kw: self._predict(z, **kw), current, poly, bool(positive), self.model_px
            )
            before = self._state()
            target.prompts.setdefault(z, SlicePrompts())
            sign = "+" if positive else "-"
            return self._write_user_slice(
                target, z, mask, score, None, before, f"lasso {sign} on {z}"
            )

    def _unit_slice(self, z: int) -> np.ndarray:
        """Slice ``z`` windowed as the model sees it, as float32 in 0-1."""
        return apply_window(self.volume.data[z], self.window).astype(np.float32) / 255.0

    def _neighbour_mask(self, target: SegObject, z: int) -> np.ndarray | None:
        """The object's mask on the nearest non-empty slice within 2 of ``z``, if any."""
        for d in (1, 2):
            for near in (z - d, z + d):
                if 0 <= near < self.shape[0]:
                    mask = self.labels[near] == target.label_id
                    if mask.any():
                        return mask
        return None

    def _write_user_slice(
        self,
        target: SegObject,
        z: int,
        mask: np.ndarray,
        score: float | None,
        logits: np.ndarray | None,
        before: dict[int, SegObject],
        name: str,
    ) -> np.ndarray:
        """Write a prompt's mask on slice ``z`` as a user slice. ``score`` None: an edit of the
        mask that did not ask the model, as sure as the mask it edited was."""
        if score is None:
            score = target.confidence.get(z, 1.0)
        target.source[z] = USER
        evidence = {"iou": float(score)}
        if logits is not None:
            evidence["stability"] = stability(logits)
        target.evidence[z] = evidence
        target.confidence[z] = combine(evidence)
        if logits is not None:
            self._logits[(target.label_id, z)] = logits
        else:
            self._logits.pop((target.label_id, z), None)
        claimable = set()
        if self.overwrite == "propagated":
            claimable = {
                o.label_id
                for o in self._objects.values()
                if o.label_id != target.label_id and o.source.get(z) in DERIVED
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
    @interactive
    @journaled
    def propagate(
        self,
        obj: int,
        z_range: tuple[int, int] | None = None,
        *,
        from_slices: Iterable[int] | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> PropagationSummary:
        """Propagate ``obj`` from the slices the user prompted, in both directions.

        Each next slice is prompted with the bounding box of the current mask (plus a margin of
        ``PropagationParams.margin_model_px`` model pixels: 3, or 6 on microscopy). Without
        ``z_range`` a walk stops when the object vanishes, its area jumps, it drifts away, its
        intensity changes, or the model's confidence drops; with ``z_range`` (inclusive) the
        object is known to span the range and walks go to its ends. Between two anchors each
        walks half way; where neither reaches a slice between them, the slice is filled by
        shape-based interpolation of the two anchors. Anchor slices are never overwritten;
        other objects' voxels are never overwritten; slices this object had from an earlier
        propagation and no longer reaches are cleared.

        Args:
            obj: label id.
            z_range: (first, last) inclusive slice range, or None (for ``from_slices``: the
                range of the object's last ranged propagation, if any).
            from_slices: re-propagate only from these anchors (a correction on slice z:
                ``from_slices=[z]``); each walk stops where the new mask equals the one already
                there (Dice >= ``PropagationParams.converged_dice``), so the result changes
                only as far as the correction reaches.
            progress: called as ``progress(done, total)`` after each slice.
            cancel: polled before each slice; when it returns True the propagation stops and
                nothing is changed (``summary.cancelled``).
        """
        with self._lock:
            t0 = time.perf_counter()
            target = self._get(obj)
            anchors = target.anchors
            if not anchors:
                raise PromptError(f"object {obj} has no prompted slice: add a box or a click first")
            nz = self.shape[0]
            if z_range is None and from_slices is not None:
                z_range = target.z_range
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
            starts = set(inside)
            if from_slices is not None:
                wanted = {self._check_z(z) for z in from_slices}
                not_anchor = sorted(wanted - set(anchors))
                if not_anchor:
                    raise PromptError(
                        f"slices {not_anchor} are not prompted slices of object {obj} "
                        f"(its prompted slices: {anchors})"
                    )
                starts = wanted & starts
            walks = self._plan_walks(target, inside, starts, lo, hi)
            total = sum(abs(end - a) for a, _, end in walks)
            summary = PropagationSummary(target.label_id)
            before = self._state()
            results: dict[int, Step] = {}
            owned: set[int] = set()  # slices whose content this propagation decides
            done = 0
            margin = self.params.margin_model_px * self.model_px
            partial = from_slices is not None
            reference = (
                self._walk_reference(target) if partial and self.params.rewalk_reference else None
            )
            # a re-walk from a correction may grow a small structure (a positive click asks
            # for that) and keeps the full margin around it
            walk_params = self.params
            if partial:
                walk_params = replace(self.params, max_small_growth=0.0, small_box_inset=0.0)
            erode_px = self._overshoot_erosion(target)
            for anchor, direction, end in walks:
                seed = self.labels[anchor] == target.label_id
                fallback = getattr(target.prompts.get(anchor), "box", None)
                fallback_box = fallback.xyxy if fallback else mask_bbox(seed)
                bound = None
                if constrained and fallback is not None and self.params.bound_by_box:
                    bound = expand_box(pixel_extent(fallback.xyxy), margin, self.shape[1:], 1.0)
                owned.update(range(anchor + direction, end + direction, direction))
                last = seed  # the mask of the slice before the one the walk is at
                for item in walk(
                    anchor,
                    seed,
                    direction,
                    end,
                    self._predict,
                    margin_px=margin,
                    params=walk_params,
                    constrained=constrained,
                    fallback_box=fallback_box,
                    bound=bound,
                    image=self._unit_slice,
                    reference=reference,
                    erode_px=erode_px,
                ):
                    if cancel is not None and cancel():
                        summary.cancelled = True
                        summary.seconds = time.perf_counter() - t0
                        return summary
                    where = "up" if direction > 0 else "down"
                    if isinstance(item, Step):
                        settled = self._settled(target, item, last) if partial else None
                        if settled is not None:
                            summary.stops.append(f"from {anchor} {where}: {settled} at {item.z}")
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
                            # a correction re-walks only as far as it improves the result:
                            # what lies beyond a stop keeps the masks it had
                            owned.difference_update(range(item.z, end + direction, direction))
            if partial:  # as a full propagation would: interpolated below
                owned.update(self._empty_gaps(target, inside, starts))
            # Brush strokes painted while the walks ran (napari writes into the label array
            # directly) are adopted first: their slices become user slices and are kept.
            self.sync_external_edits("paint", slices=owned)
            filled = self._interpolation_fallback(target, inside, results, owned)
            writes: dict[int, np.ndarray] = {}
            for z in sorted(owned):
                if target.source.get(z) == USER:
                    continue
                step = results.get(z)
                if z in filled:
                    writes[z] = paint(self.labels[z], target.label_id, filled[z])
                    target.source[z] = INTERPOLATED
                    target.evidence[z] = {"interpolated": 1.0}
                    target.confidence[z] = INTERPOLATED_CONFIDENCE
                    self._logits.pop((target.label_id, z), None)
                elif step is not None:
                    writes[z] = paint(self.labels[z], target.label_id, step.mask)
                    target.source[z] = PROPAGATED
                    target.evidence[z] = dict(step.evidence)
                    target.confidence[z] = combine(step.evidence)
                    self._logits[(target.label_id, z)] = step.low_res_logits
                elif target.source.get(z) in DERIVED:
                    writes[z] = paint(
                        self.labels[z], target.label_id, np.zeros(self.shape[1:], bool)
                    )
                    del target.source[z]
                    target.confidence.pop(z, None)
                    target.evidence.pop(z, None)
                    self._logits.pop((target.label_id, z), None)
            if z_range is not None:
                target.z_range = (lo, hi)
            self._apply(f"propagate {obj}", before, writes)
            summary.slices = sorted(z for z in results if z in writes and z not in filled)
            summary.interpolated = sorted(filled)
            summary.confidence = {z: target.confidence[z] for z in summary.slices}
            summary.seconds = time.perf_counter() - t0
            if progress is not None:
                progress(total, total)
            return summary

    def _overshoot_erosion(self, target: SegObject) -> int:
        """Pixels to erode the object's propagated masks by: from how far the model's masks
        reached past the user's boxes on the slices that still have one (0 without a box)."""
        reach = [
            r for z, r in target.overshoot.items() if getattr(target.prompts.get(z), "box", None)
        ]
        if not reach:
            return 0
        return overshoot_erosion(float(np.mean(reach)), self.params.max_overshoot_erosion_px)

    def _holds(self, target: SegObject, z: int) -> bool:
        """Whether slice ``z`` holds any voxel of the object."""
        return bool((self.labels[z] == target.label_id).any())

    def _walk_reference(self, target: SegObject) -> WalkReference | None:
        """The object's largest slice (area, mean intensity) as it stands, for re-walks."""
        areas = {z: int((self.labels[z] == target.label_id).sum()) for z in target.source}
        if not areas or max(areas.values()) == 0:
            return None
        z = max(areas, key=areas.__getitem__)
        mask = self.labels[z] == target.label_id
        image = self._unit_slice(z)
        return WalkReference(areas[z], mean_in(image, mask))

    def _plan_walks(
        self, target: SegObject, anchors: list[int], starts: set[int], lo: int, hi: int
    ) -> list[tuple[int, int, int]]:
        """(anchor, direction, last slice) of each walk.

        Between two anchors with a mask each walks half way. An anchor the user left empty
        (the object is not there) does not walk: its neighbour walks up to it. In a
        re-propagation from ``starts`` only, an emptied anchor's neighbours walk again too
        (their half grows).
        """
        present = {a: self._holds(target, a) for a in anchors}
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

    def _settled(self, target: SegObject, step: Step, last: np.ndarray) -> str | None:
        """Why a re-walk from a corrected slice should stop at ``step`` (None: go on).

        It stops where the new mask is (nearly) the one already there, or where the mask
        already there agrees at least as well with the slice before (``last``, already
        re-walked) as the new one does: the correction no longer improves anything; or where
        the mask already there is surer than the new one (its confidence higher by more than
        ``PropagationParams.keep_surer_by``): a re-walk between two anchors would otherwise
        overwrite good propagated slices with worse ones.
        """
        if target.source.get(step.z) not in DERIVED:
            return None
        current = self.labels[step.z] == target.label_id
        if dice(current, step.mask) >= self.params.converged_dice:
            return "unchanged"
        if current.any() and dice(current, last) >= dice(step.mask, last):
            return "no better than before"
        margin = self.params.keep_surer_by
        old_confidence = target.confidence.get(step.z, 0.0)
        if margin >= 0 and current.any() and old_confidence > combine(step.evidence) + margin:
            return "the mask there is surer"
        return None

    def _empty_gaps(self, target: SegObject, anchors: list[int], starts: set[int]) -> set[int]:
        """The slices without the object between two consecutive ``anchors`` that both hold
        it, one of them among ``starts``: a re-walk from a correction hands them to the
        interpolation fallback, as a full propagation does with the slices its walks did not
        reach (CT spinal cord, P3 @5 0.714 -> 0.727; brain 0.321 -> 0.340; BENCHMARKS.md)."""
        out: set[int] = set()
        for a, b in zip(anchors, anchors[1:]):
            if (
                (a in starts or b in starts)
                and b - a > 1
                and self._holds(target, a)
                and self._holds(target, b)
            ):
                out.update(
                    z
                    for z in range(a + 1, b)
                    if target.source.get(z) != USER and not self._holds(target, z)
                )
        return out

    def _interpolation_fallback(
        self,
        target: SegObject,
        anchors: list[int],
        results: dict[int, Step],
        owned: set[int],
    ) -> dict[int, np.ndarray]:
        """Masks for slices between two anchors that no walk reached: shape-based
        interpolation of the two anchors' masks."""
        out: dict[int, np.ndarray] = {}
        for a, b in zip(anchors, anchors[1:]):
            gap = [z for z in range(a + 1, b) if z in owned]
            unreached = [z for z in gap if z not in results]
            if not unreached:
                continue
            first = self.labels[a] == target.label_id
            last = self.labels[b] == target.label_id
            if not first.any() or not last.any():
                continue  # an anchor the user emptied ends the object: nothing to bridge
            masks = interpolate_masks(first, last, b - a - 1)
            for z in unreached:
                out[z] = masks[z - a - 1]
        return out

    @journaled
    def interpolate(self, obj: int) -> list[int]:
        """Fill every slice between two consecutive prompted slices of ``obj`` by shape-based
        interpolation of their masks (replacing propagated masks there; user slices are kept).

        Interpolated slices get the confidence ``INTERPOLATED_CONFIDENCE`` (below the default
        low-confidence threshold, so they are listed among the slices to check).

        Returns:
            the slices written.
        """
        with self._lock:
            target = self._get(obj)
            anchors = target.anchors
            if len(anchors) < 2:
                raise PromptError(
                    f"object {obj} needs two prompted slices to interpolate between "
                    f"(it has {anchors or 'none'})"
                )
            before = self._state()
            writes: dict[int, np.ndarray] = {}
            for a, b in zip(anchors, anchors[1:]):
                if b - a < 2:
                    continue
                masks = interpolate_masks(
                    self.labels[a] == target.label_id, self.labels[b] == target.label_id, b - a - 1
                )
                for z, mask in zip(range(a + 1, b), masks):
                    writes[z] = paint(self.labels[z], target.label_id, mask)
                    target.source[z] = INTERPOLATED
                    target.evidence[z] = {"interpolated": 1.0}
                    target.confidence[z] = INTERPOLATED_CONFIDENCE
                    self._logits.pop((target.label_id, z), None)
            self._apply(f"interpolate {obj}", before, writes)
            return sorted(writes)

    # -- where the model is unsure ----------------------------------------------------------------
    @interactive
    def uncertainty(self, obj: int, z: int) -> tuple[np.ndarray, Suggestion | None]:
        """Where the model is unsure about ``obj`` on slice ``z``, and a suggested next click.

        The slice's own prompt is decoded again (the user's box and clicks, or for a propagated
        slice the box of its mask plus 3 model pixels, as propagation prompts it) as one mask
        and as the multimask candidates; see :mod:`slicesam.engine.uncertainty`.

        Returns:
            ((y, x) float32 uncertainty map in [0, 1], :class:`Suggestion` or None): the
            suggestion is the most uncertain place near the mask's boundary.
        """
        with self._lock:
            target = self._get(obj)
            z = self._check_z(z)
            current = self.labels[z] == target.label_id
            prompts = target.prompts.get(z)
        if not current.any():
            raise PromptError(f"object {obj} has no mask on slice {z}: nothing to be unsure about")
        if prompts is not None and prompts.box is not None:
            box = pixel_extent(prompts.box.xyxy)
        else:
            box = expand_box(
                pixel_extent(mask_bbox(current)), 3 * self.model_px, self.shape[1:], 1.0
            )
        kwargs: dict = {"box": box}
        if prompts is not None and prompts.points and self.model.capabilities.points:
            coords, labels = points_arrays(prompts.points)
            kwargs.update(points=coords, point_labels=labels)
        emb = self.embed(z)
        single = self.model.predict(emb, multimask=False, **kwargs)
        multi = self.model.predict(emb, multimask=True, **kwargs)
        padded = self.model.capabilities.low_res_padded
        side = int(self.model.input_scale_ref) if padded else None
        umap = uncertainty_map(single, multi, emb, side)
        band = max(3.0, 4.0 * self.model_px)
        return umap, suggest_click(umap, current, z, band)

    # -- quality checks and post-processing ----------------------------------------------------
    def stats(self, obj: int) -> ObjectStats:
        """Volume (mL for mm spacing, µm³ for µm), components, holes, compactness and slice
        extent of ``obj`` (see :func:`slicesam.quality.object_stats`)."""
        with self._lock:
            target = self._get(obj)
            mask = self.labels == target.label_id
        return object_stats(mask, self.volume.spacing, self.volume.unit)

    @journaled
    def postprocess(
        self,
        obj: int,
        *,
        fill_holes: bool = False,
        keep_largest: bool = False,
        per_slice: bool = True,
    ) -> list[int]:
        """Fill enclosed holes and/or keep only the largest connected component of ``obj``,
        in each slice (``per_slice``) or in 3D; one undoable action. Filled voxels never take
        another object's voxels. Slices keep their source (user or propagated).

        Returns:
            the slices that changed.
        """
        with self._lock:
            target = self._get(obj)
            mask = self.labels == target.label_id
            new = mask
            if keep_largest:
                new = keep_largest_component(new, per_slice=per_slice)
            if fill_holes:
                new = fill_holes_of(new, per_slice=per_slice)
            before = self._state()
            writes = {
                int(z): paint(self.labels[z], target.label_id, new[z])
                for z in np.flatnonzero((new != mask).any(axis=(1, 2)))
            }
            what = " + ".join(
                n for n, on in (("fill holes", fill_holes), ("keep largest", keep_largest)) if on
            )
            action = self._apply(f"{what or 'post-process'} {obj}", before, writes)
            return action.slices

    # -- edits made outside the session ------------------------------------------------------------
    @journaled
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
    @journaled
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

    @journaled
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
    def undo_name(self) -> str | None:
        """What :meth:`undo` would take back, e.g. "click - on 12 + re-walk" (None: nothing)."""
        return self._history.next_undo

    @property
    def redo_name(self) -> str | None:
        """What :meth:`redo` would bring back (None: nothing)."""
        return self._history.next_redo

    @property
    def can_redo(self) -> bool:
        return self._history.can_redo

    # -- state for persistence (journal, autosave, replay) -------------------------------------
    @property
    def written_labels(self) -> np.ndarray:
        """The (z, y, x) label volume as the session last wrote it: :attr:`labels` without the
        brush strokes not adopted yet (:meth:`sync_external_edits`). Read only."""
        return self._shadow

    @property
    def last_action(self) -> Action | None:
        """The last undoable action (its label diffs and object states), or None."""
        return self._history.last

    def set_objects(self, objects: dict[int, SegObject]) -> None:
        """Replace every object (a restore): the labels stay as they are and count as written;
        undo history and mask logits are forgotten (:meth:`forget_history`)."""
        with self._lock:
            self._objects = {int(k): v.clone() for k, v in objects.items()}
            self.forget_history()

    def forget_history(self) -> None:
        """Forget what a restore cannot bring back: the undo history and the model's mask
        logits; the current labels count as written."""
        with self._lock:
            self._shadow = np.array(self.labels, copy=True)
            self._logits.clear()
            self._history = History()

    @classmethod
    def restore(
        cls,
        path: str | Path,
        *,
        model: str | SegmentationModel | None = None,
        volume: Volume | np.ndarray | None = None,
        image: str | Path | None = None,
        labels: np.ndarray | None = None,
        checkpoint: str | Path | None = None,
        device: str | None = None,
        resume: bool = True,
        **session_kwargs,
    ) -> Session:
        """Reopen an autosaved session from its sidecar folder (or its image's path): labels,
        objects (names, lock state) and prompts.

        Args:
            path: the sidecar folder, or the image whose sidecar to find.
            model: a model instance or registry name (default: the recorded model name).
            volume: the session's volume (default: the recorded image file, checked against
                the recorded content fingerprint).
            image: the image file, when it moved since the session was saved.
            labels: an array to restore the labels into (e.g. a napari layer's data).
            checkpoint, device: for loading ``model`` by name (device default: "auto").
            resume: keep autosaving into the same sidecar (a ``restore`` record marks it).
            **session_kwargs: passed to :class:`Session` (e.g. ``cache_bytes``).

        The window, propagation params, overwrite mode and click settings are the recorded
        ones. Undo history and mask logits are not restored. A model whose weights differ
        from the recorded ones is used with a warning (restoring needs no model output).
        """
        from .autosave import read_autosave, resume_autosave

        saved = read_autosave(path, volume=volume, image=image, labels=labels)
        session = cls(
            saved.volume,
            model=model if model is not None else saved.model,
            checkpoint=checkpoint,
            device=device or "auto",
            labels=saved.labels,
            **{**saved.settings, **session_kwargs},
        )
        session.set_objects(saved.objects)
        resume_autosave(session, saved, resume=resume)
        return session

    def __repr__(self) -> str:
        return (
            f"Session({self.volume!r}, model={self.model.name!r}, window={self.window}, "
            f"objects={sorted(self._objects)})"
        )


def restore_session(path: str | Path, **kwargs) -> Session:
    """:meth:`Session.restore` as a function (``slicesam.restore_session``)."""
    return Session.restore(path, **kwargs)


load_session = restore_session
