"""The annotation a session edits: the label volume, its objects and their undo history.

:class:`Annotation` holds one (z, y, x) integer label volume and the objects written into it
(:class:`~slicesam.engine.objects.SegObject`: name, lock state, per-slice records). Every change
goes through it as one undoable :class:`~slicesam.engine.history.Action` and is announced to
listeners. It knows no model: :class:`~slicesam.engine.session.Session` adds prompts and
propagation on top.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np

from ..errors import PromptError
from . import review
from .history import Action, History, SliceDiff
from .journal import journaled
from .label_volume import (
    Labels,
    changed_slices,
    check_labels,
    copy_labels,
    label_values,
    object_block,
    slices_with,
)
from .masks import paint
from .objects import USER, SegObject, SliceRecord

__all__ = ["Annotation"]

UINT16_MAX = np.iinfo(np.uint16).max


class Annotation:
    """A (z, y, x) integer label volume, its objects, and undo/redo of every change.

    Args:
        shape: (z, y, x) shape of the volume annotated.
        labels: an existing integer label array of that shape to write into (e.g. a napari
            Labels layer's data), or a label store (:class:`~slicesam.io.lazy.SliceStore`,
            e.g. a zarr store on disk: then every change reads and writes single slices, and
            whole-volume questions read only the slices holding labels); a new uint16 array
            of zeros when None. Its non-zero values become objects.
    """

    def __init__(self, shape: tuple[int, int, int], labels: Labels | None = None) -> None:
        self.labels = self._init_labels(tuple(int(s) for s in shape), labels)
        # The label volume as the session last left it: edits made behind its back (napari's
        # paint brush) are found by comparison in sync_external_edits().
        self._shadow = copy_labels(self.labels)
        self._objects: dict[int, SegObject] = {
            v: SegObject(v, f"object {v}") for v in sorted(label_values(self.labels)) if v
        }
        self._history = History()
        self._listeners: list[Callable[[list[int]], None]] = []
        #: Every change holds this lock; hold it to read labels and objects consistently.
        self.lock = threading.RLock()

    @staticmethod
    def _init_labels(shape: tuple[int, ...], labels: Labels | None) -> Labels:
        if labels is None:
            return np.zeros(shape, dtype=np.uint16)
        return check_labels(labels, shape)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(z, y, x) shape of the label volume."""
        return tuple(int(s) for s in self.labels.shape)  # type: ignore[return-value]

    def add_listener(self, callback: Callable[[list[int]], None]) -> None:
        """Call ``callback(slices)`` after every change of the label volume or the objects
        (``slices``: the slices whose labels changed; empty when only objects did, e.g. a new,
        renamed or locked object). Called in the thread that made the change."""
        self._listeners.append(callback)

    def _emit(self, slices: Iterable[int]) -> None:
        changed = sorted(set(slices))
        for callback in list(self._listeners):
            callback(changed)

    @property
    def objects(self) -> dict[int, SegObject]:
        """label id -> object (a copy: change objects through the session's methods).

        Safe to call from another thread while the session works (the item list is taken in
        one step). Persistence snapshots objects with :meth:`SegObject.snapshot
        <slicesam.engine.objects.SegObject.snapshot>` and restores them with
        :meth:`set_objects`.
        """
        return {k: v.clone() for k, v in list(self._objects.items())}

    @property
    def object_ids(self) -> list[int]:
        """Sorted label ids of the objects (no copies: cheap on the click path)."""
        return sorted(list(self._objects))

    def _state(self) -> dict[int, SegObject]:
        """The objects as an undo step keeps them (without logits)."""
        return {k: v.clone(logits=False) for k, v in self._objects.items()}

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
        with self.lock:
            if label_id is None:
                used = set(self._objects) | label_values(self.labels)
                label_id = 1
                while label_id in used:
                    label_id += 1
            else:
                if isinstance(label_id, bool) or int(label_id) != label_id or label_id < 1:
                    raise PromptError(f"label_id must be an integer >= 1, got {label_id!r}")
                label_id = int(label_id)
                if label_id in self._objects:
                    raise PromptError(f"label id {label_id} is already used by another object")
            if label_id > np.iinfo(self.labels.dtype).max and not isinstance(
                self.labels, np.ndarray
            ):
                raise PromptError(
                    f"label id {label_id} does not fit the label store's {self.labels.dtype}; "
                    "create the store with a wider dtype (uint32)"
                )
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
        self._set_attribute(obj, "name", str(name), f"rename {obj}")

    @journaled
    def lock_object(self, obj: int, locked: bool = True) -> None:
        """Lock (or unlock) an object: a locked object takes no prompts and no propagation."""
        self._set_attribute(obj, "locked", bool(locked), f"lock {obj}")

    def _set_attribute(self, obj: int, attribute: str, value: object, name: str) -> None:
        with self.lock:
            target = self._get(obj, for_edit=False)
            before = self._state()
            setattr(target, attribute, value)
            self._history.record(Action(name, [], before, self._state()))
            self._emit([])

    @journaled
    def delete_object(self, obj: int) -> None:
        """Remove an object and its voxels (undoable)."""
        with self.lock:
            self._get(obj, for_edit=False)
            before = self._state()
            empty = np.zeros(self.shape[1:], bool)
            writes = (
                (z, paint(self.labels[z], int(obj), empty))
                for z in slices_with(self.labels, int(obj))
            )
            del self._objects[int(obj)]
            self._apply(f"delete object {obj}", before, writes)

    def mask(self, obj: int, z: int) -> np.ndarray:
        """The (y, x) bool mask of object ``obj`` on slice ``z``."""
        self._check_z(z)
        return self.labels[z] == int(obj)

    def confidence(self, obj: int) -> dict[int, float]:
        """slice -> model confidence of the object's mask there (anchors and propagated)."""
        return dict(self._get(obj, for_edit=False).confidence)

    def _check_z(self, z: int) -> int:
        if isinstance(z, bool) or int(z) != z:
            raise PromptError(f"slice index must be an integer, got {z!r}")
        z = int(z)
        if not 0 <= z < self.shape[0]:
            raise PromptError(f"slice z={z} is outside the volume (0..{self.shape[0] - 1})")
        return z

    def _apply(
        self,
        name: str,
        before: dict[int, SegObject],
        writes: dict[int, np.ndarray] | Iterable[tuple[int, np.ndarray]],
    ) -> Action:
        """Write new label slices, record one undoable action and notify listeners.

        ``writes``: slice -> new (y, x) labels, or (slice, labels) pairs in increasing slice
        order, made one at a time (so that a long propagation on big slices never holds all
        its new label slices at once)."""
        diffs = []
        pairs = sorted(writes.items()) if isinstance(writes, dict) else writes
        for z, new in pairs:
            diff = SliceDiff.between(z, self.labels[z], new)
            if diff is not None:
                diffs.append(diff)
                self.labels[z] = new
                self._shadow[z] = new
        action = Action(name, diffs, before, self._state())
        self._history.record(action)
        self._emit(action.slices)
        return action

    def _write_slices(
        self,
        target: SegObject,
        name: str,
        before: dict[int, SegObject],
        updates: dict[int, tuple[np.ndarray, SliceRecord | None]],
    ) -> None:
        """Write ``target``'s new masks and slice records (None: no record) as one action."""
        for z, (_mask, record) in updates.items():
            if record is None:
                del target.slices[z]
            else:
                target.slices[z] = record
        writes = (
            (z, paint(self.labels[z], target.label_id, mask))
            for z, (mask, _record) in sorted(updates.items(), key=lambda item: item[0])
        )
        self._apply(name, before, writes)

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
        with self.lock:
            target = self._get(obj)
            z0, mask = object_block(self.labels, target.label_id)
            new = review.postprocessed(
                mask, fill_holes=fill_holes, keep_largest=keep_largest, per_slice=per_slice
            )
            before = self._state()
            writes = (
                (z0 + int(z), paint(self.labels[z0 + int(z)], target.label_id, new[z]))
                for z in np.flatnonzero((new != mask).any(axis=(1, 2)))
            )
            what = review.postprocess_name(fill_holes=fill_holes, keep_largest=keep_largest)
            action = self._apply(f"{what} {obj}", before, writes)
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
            slices: compare only these slices (the whole volume when None; for a label
                store, the slices it or the last written labels may hold labels in, see
                :func:`~slicesam.engine.label_volume.changed_slices`).

        Returns:
            the slices that changed (empty when nothing did).
        """
        with self.lock:
            if slices is None:
                changed = np.array(changed_slices(self.labels, self._shadow), int)
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
                    now = obj.slices.get(z)
                    painted = SliceRecord(USER) if now is None else now
                    obj.slices[z] = replace(painted, source=USER, confidence=1.0, logits=None)
                self._shadow[z] = self.labels[z]
            action = Action(name, diffs, before, self._state())
            self._history.record(action)
            self._emit(action.slices)
            return action.slices

    @journaled
    def undo(self) -> bool:
        """Undo the last action; False when there is nothing to undo."""
        return self._step(back=True)

    @journaled
    def redo(self) -> bool:
        """Redo the last undone action; False when there is nothing to redo."""
        return self._step(back=False)

    def _step(self, *, back: bool) -> bool:
        """Take back (``back``) or bring back one action of the history; the mask logits of
        the slices it changed are dropped, the others kept."""
        with self.lock:
            action = self._history.pop_undo() if back else self._history.pop_redo()
            if action is None:
                return False
            for diff in reversed(action.diffs) if back else action.diffs:
                diff.apply(self.labels, reverse=back)
            state, slices = (action.state_before if back else action.state_after), action.slices
            for z in slices:
                self._shadow[z] = self.labels[z]
            now = self._objects
            self._objects = {k: v.clone() for k, v in state.items()}
            for k, obj in self._objects.items():
                kept = now[k].slices if k in now else {}
                for z, record in obj.slices.items():
                    if z not in slices and z in kept:
                        record.logits = kept[z].logits
            self._emit(slices)
            return True

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

    @property
    def written_labels(self) -> Labels:
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
        with self.lock:
            self._objects = {int(k): v.clone() for k, v in objects.items()}
            self.forget_history()

    def forget_history(self) -> None:
        """Forget what a restore cannot bring back: the undo history and the model's mask
        logits; the current labels count as written."""
        with self.lock:
            self._shadow = copy_labels(self.labels)
            for obj in self._objects.values():
                for record in obj.slices.values():
                    record.logits = None
            self._history = History()
