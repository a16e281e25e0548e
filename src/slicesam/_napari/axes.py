"""Mapping between napari data coordinates and a session's (z, y, x) when the user slices
along another axis than the first (e.g. coronal or sagittal for an LPS volume)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Names shown for the slicing axis of an LPS-oriented (z, y, x) volume.
AXIS_NAMES = ("axial (z)", "coronal (y)", "sagittal (x)")


class AxisMap:
    """The session sees ``np.moveaxis(data, axis, 0)``: slicing axis first, the others in order.

    Args:
        axis: the data axis the user slices along (0, 1 or 2).
    """

    def __init__(self, axis: int = 0) -> None:
        if axis not in (0, 1, 2):
            raise ValueError(f"slicing axis must be 0, 1 or 2, got {axis}")
        self.axis = axis
        self.perm = (axis, *[i for i in range(3) if i != axis])

    def to_session(self, coord: Sequence[float]) -> tuple[float, float, float]:
        """Data coordinates (3,) -> session (z, y, x)."""
        return tuple(float(coord[p]) for p in self.perm)  # type: ignore[return-value]

    def to_data(self, zyx: Sequence[float]) -> np.ndarray:
        """Session (z, y, x) -> data coordinates (3,)."""
        out = np.zeros(3)
        for i, p in enumerate(self.perm):
            out[p] = zyx[i]
        return out

    def view(self, array: np.ndarray) -> np.ndarray:
        """A (z, y, x) view of a data-ordered array (no copy)."""
        return np.moveaxis(array, self.axis, 0)

    def unview(self, array: np.ndarray) -> np.ndarray:
        """The data-ordered view of a session-ordered array (no copy)."""
        return np.moveaxis(array, 0, self.axis)

    def spacing(self, scale: Sequence[float]) -> tuple[float, float, float]:
        return tuple(float(scale[p]) for p in self.perm)  # type: ignore[return-value]
