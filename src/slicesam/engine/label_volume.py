"""Whole-volume questions about a (z, y, x) label volume, answered slice-wise when it is a store.

An annotation's labels are either an in-memory ``numpy.ndarray`` (answered with whole-array
numpy, exactly as before) or a :class:`~slicesam.io.lazy.SliceStore` (labels on disk, e.g.
:class:`~slicesam.io.zarr_labels.ZarrLabels`): then only the slices the store says may hold
labels are read, one at a time, and nothing of the volume's size is allocated.
"""

from __future__ import annotations

import numpy as np

from ..errors import SliceSamError
from ..io.lazy import SliceStore

#: A label volume an annotation writes into.
Labels = np.ndarray | SliceStore


def check_labels(labels: object, shape: tuple[int, ...]) -> Labels:
    """``labels`` when it is an integer (z, y, x) array or label store of ``shape``."""
    if not isinstance(labels, (np.ndarray, SliceStore)):
        raise SliceSamError(
            f"labels must be a numpy array or a label store (labels_store=), got "
            f"{type(labels).__name__}"
        )
    if tuple(labels.shape) != shape:
        raise SliceSamError(f"labels shape {labels.shape} does not match the volume's {shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise SliceSamError(f"labels must have an integer dtype, got {labels.dtype}")
    return labels


def copy_labels(labels: Labels) -> Labels:
    """A copy of the labels' current content (a store: a compressed in-memory store)."""
    if isinstance(labels, SliceStore):
        return labels.scratch_copy()
    return labels.copy()


def label_values(labels: Labels) -> set[int]:
    """The values present in the labels (0 included when present)."""
    if not isinstance(labels, SliceStore):
        return {int(v) for v in np.unique(labels)}
    found: set[int] = set()
    for z in labels.nonzero_slices():
        found.update(int(v) for v in np.unique(labels[z]))
    return found


def slices_with(labels: Labels, value: int) -> list[int]:
    """Sorted slices holding at least one voxel of ``value`` (> 0)."""
    if not isinstance(labels, SliceStore):
        return [int(z) for z in np.flatnonzero((labels == value).any(axis=(1, 2)))]
    return [z for z in labels.nonzero_slices() if (labels[z] == value).any()]


def object_block(labels: Labels, value: int) -> tuple[int, np.ndarray]:
    """``(z0, mask)``: the (z, y, x) bool mask of ``value`` over slices z0.. of it.

    In-memory labels give the whole volume's mask (z0 = 0). A store gives the slab from the
    first to the last slice holding the value (one empty slice when there is none): 3D
    components, holes and surfaces of the object are the same there, since the slices
    around the slab hold none of it.
    """
    if not isinstance(labels, SliceStore):
        return 0, labels == value
    zs = slices_with(labels, value)
    if not zs:
        return 0, np.zeros((1, *labels.shape[1:]), dtype=bool)
    return zs[0], np.stack([labels[z] == value for z in range(zs[0], zs[-1] + 1)])


def changed_slices(labels: Labels, shadow: Labels) -> list[int]:
    """Sorted slices where ``labels`` and ``shadow`` (same shape) differ.

    With stores only the slices either may hold labels in are compared (a slice holding
    none in both is zero in both); writes must go through the store object (as napari's
    brush does when the store is the layer's data), not around it into the zarr array.
    """
    if isinstance(labels, np.ndarray) and isinstance(shadow, np.ndarray):
        return [int(z) for z in np.flatnonzero((labels != shadow).any(axis=(1, 2)))]
    candidates: set[int] = set()
    for side in (labels, shadow):
        if isinstance(side, SliceStore):
            candidates.update(side.nonzero_slices())
        else:
            candidates.update(int(z) for z in np.flatnonzero(side.any(axis=(1, 2))))
    return [z for z in sorted(candidates) if not np.array_equal(labels[z], shadow[z])]
