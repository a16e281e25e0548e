"""Intensity windows: how voxel values become the 0-255 image the model sees.

The window is fixed for a session because cached embeddings depend on it.
"""

from __future__ import annotations

import numpy as np

from .errors import SliceSamError
from .io.lazy import slice_sample

#: Named CT windows in Hounsfield units (lo, hi).
CT_PRESETS: dict[str, tuple[float, float]] = {
    "soft_tissue": (-160.0, 240.0),
    "lung": (-1000.0, 200.0),
    "bone": (-450.0, 1050.0),
    "brain": (0.0, 80.0),
}

#: Percentiles used for MR and microscopy volumes.
PERCENTILES = (0.5, 99.5)


def default_window(data: np.ndarray, modality: str | None) -> tuple[float, float]:
    """The default (lo, hi) window for a volume.

    CT gets the soft-tissue window (-160, 240) HU. Every other modality gets the 0.5 and 99.5
    percentiles of the voxels above the volume minimum (background excluded), as in MedSAM's
    own preprocessing. For a lazy volume these come from a sample of evenly spaced slices
    (:func:`slicesam.io.lazy.slice_sample`), never from a pass over the whole volume.

    Args:
        data: (z, y, x) array of any real dtype: in memory (every voxel counts), or lazy
            (:class:`~slicesam.io.lazy.LazyArray`, zarr, dask: the sample counts).
        modality: "CT", "MR", "microscopy" or None.
    """
    if modality == "CT":
        return CT_PRESETS["soft_tissue"]
    data = slice_sample(data)
    finite = data[np.isfinite(data)] if np.issubdtype(data.dtype, np.floating) else data.ravel()
    if finite.size == 0:
        raise SliceSamError("the volume has no finite voxel: no intensity window can be computed")
    vmin = finite.min()
    foreground = finite[finite > vmin]
    if foreground.size == 0:
        # A constant volume: any window maps it to one grey level.
        return _nonempty(float(vmin), float(vmin))
    lo, hi = np.percentile(foreground, PERCENTILES)
    if hi <= lo:  # (nearly) binary image: use the full range instead
        lo, hi = vmin, foreground.max()
    return _nonempty(float(lo), float(hi))


def _nonempty(lo: float, hi: float) -> tuple[float, float]:
    """(lo, hi) widened to hi > lo by a step that float32 arithmetic can still see (for
    huge values, lo + 1 == lo)."""
    if hi > lo and np.float32(hi) > np.float32(lo):
        return lo, hi
    return lo, lo + max(1.0, abs(lo) * 1e-6)


def resolve_window(
    window: tuple[float, float] | str | None, data: np.ndarray, modality: str | None
) -> tuple[float, float]:
    """Turn a user window (None, a CT preset name, or (lo, hi)) into a validated (lo, hi)."""
    if window is None:
        return default_window(data, modality)
    if isinstance(window, str):
        if window not in CT_PRESETS:
            raise SliceSamError(
                f"unknown window preset {window!r}; choose one of {', '.join(CT_PRESETS)} "
                "or pass (lo, hi)"
            )
        return CT_PRESETS[window]
    try:
        lo, hi = (float(v) for v in window)
    except (TypeError, ValueError):
        raise SliceSamError(f"window must be (lo, hi) numbers, got {window!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        raise SliceSamError(f"window must satisfy lo < hi with finite values, got ({lo}, {hi})")
    return lo, hi


def apply_window(slice_2d: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Clip a slice to ``window`` and scale it to uint8 0-255.

    Args:
        slice_2d: (y, x) array of any real dtype.
        window: (lo, hi) with lo < hi.

    Returns:
        (y, x) uint8 array.
    """
    lo, hi = window
    img = np.clip(np.asarray(slice_2d, dtype=np.float32), lo, hi)
    img = (img - lo) * (255.0 / (hi - lo))
    return np.rint(img).astype(np.uint8)
