"""Torch-free geometry shared by backends and engine: how a slice maps to the model input."""

from __future__ import annotations


def longest_side_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h, w) after scaling so the longest side is ``long_side`` (rounded half up)."""
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)
