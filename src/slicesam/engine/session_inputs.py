"""What a :class:`~slicesam.engine.session.Session` is built from, checked and prepared: its
volume, the label array it writes into, and whether it may autosave into it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import SliceSamError
from ..io.lazy import as_volume_data, is_lazy, slice_sample
from ..io.volume import Volume
from .label_volume import Labels

__all__ = ["check_autosave", "session_labels", "session_volume", "warn_if_constant"]


def session_volume(volume: Volume | np.ndarray) -> tuple[Volume, np.ndarray]:
    """The :class:`~slicesam.io.volume.Volume` a session works on (an array is wrapped in
    one), and the voxels checked here and windowed by default: all of them as the (z, y, x)
    array itself, or for a lazy volume a (k, y, x) sample of slices
    (:func:`~slicesam.io.lazy.slice_sample`).

    Raises:
        SliceSamError: the volume is not 3D, or has NaN or infinite voxels.
    """
    if not isinstance(volume, Volume):
        volume = Volume(data=as_volume_data(volume))
    if volume.data.ndim != 3:
        raise SliceSamError(f"a session needs a 3D (z, y, x) volume, got shape {volume.data.shape}")
    seen = slice_sample(volume.data)
    if np.issubdtype(seen.dtype, np.floating) and not np.isfinite(seen).all():
        raise SliceSamError(
            "the volume has NaN or infinite voxels; load it with "
            "load_volume(path, fill_nonfinite=<value>) to replace them"
        )
    return volume, seen


def session_labels(
    volume: Volume, labels: Labels | None, labels_store: str | Path | None
) -> Labels | None:
    """The (z, y, x) label array a session on ``volume`` writes into: ``labels``; the zarr
    store at ``labels_store`` (:func:`~slicesam.io.zarr_labels.open_label_store`); for a lazy
    volume without either, a compressed in-memory store
    (:func:`~slicesam.io.zarr_labels.memory_label_store`); else None (a new uint16 array)."""
    if labels_store is not None:
        if labels is not None:
            raise SliceSamError("pass labels= or labels_store=, not both")
        from ..io.zarr_labels import open_label_store

        return open_label_store(labels_store, volume.shape)
    if labels is None and is_lazy(volume.data):
        from ..io.zarr_labels import memory_label_store

        return memory_label_store(volume.shape)
    return labels


def warn_if_constant(volume: Volume, seen: np.ndarray) -> None:
    """Warn (at the session's caller) when the voxels ``seen`` of ``volume`` are all equal:
    there is nothing to segment."""
    if seen.size and seen.min() == seen.max():
        lazy = is_lazy(volume.data)
        where = f"every voxel of the {len(seen)} slices sampled" if lazy else "every voxel"
        warnings.warn(
            f"the volume is constant ({where} is {seen.flat[0]}): there is no "
            "structure to segment; is it the right file or channel?",
            stacklevel=3,
        )


def check_autosave(autosave: str | Path | bool | None, labels: Labels) -> None:
    """Refuse ``autosave`` when ``labels`` is a label store rather than a numpy array."""
    if autosave and not isinstance(labels, np.ndarray):
        raise SliceSamError(
            "autosave is not available when the labels are a label store (a lazy volume, "
            "or labels_store=): its snapshots hold the whole label volume in memory; "
            "pass labels_store=<path> to keep every change on disk instead"
        )
