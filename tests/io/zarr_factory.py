"""Tiny zarr / OME-Zarr stores for the io tests, written with zarr itself (no slicesam code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr

#: (name, type, unit) of OME-NGFF axes, by letter.
AXES = {
    "t": {"name": "t", "type": "time"},
    "c": {"name": "c", "type": "channel"},
    "z": {"name": "z", "type": "space"},
    "y": {"name": "y", "type": "space"},
    "x": {"name": "x", "type": "space"},
}


def plain_zarr(path: Path, data: np.ndarray, chunks: tuple[int, ...] | None = None) -> Path:
    """A plain zarr v3 array holding ``data`` (one chunk per first-axis index by default)."""
    chunks = chunks or (1, *data.shape[1:])
    array = zarr.create_array(str(path), shape=data.shape, chunks=chunks, dtype=data.dtype)
    array[...] = data
    return path


def ome_zarr(
    path: Path,
    data: np.ndarray,
    axes: str = "zyx",
    scale: tuple[float, ...] | None = None,
    unit: str | None = "micrometer",
    version: str = "0.4",
    translation: tuple[float, ...] | None = None,
    outer_scale: tuple[float, ...] | None = None,
    levels: int = 1,
) -> Path:
    """An OME-Zarr image: NGFF 0.4 in zarr v2 ("/" chunk keys) or 0.5 in zarr v3, with
    ``levels`` resolution levels (each halving y and x) and the given axes and scale."""
    fmt = 2 if version == "0.4" else 3
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    scale = scale or (1.0,) * data.ndim
    datasets = []
    level = data
    for i in range(levels):
        chunks = tuple(1 if a not in "yx" else n for a, n in zip(axes, level.shape))
        kwargs: dict[str, Any] = {}
        if fmt == 2:
            kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        array = group.create_array(
            str(i), shape=level.shape, chunks=chunks, dtype=level.dtype, **kwargs
        )
        array[...] = level
        factor = [2.0**i if a in "yx" else 1.0 for a in axes]
        transforms: list[dict[str, Any]] = [
            {"type": "scale", "scale": [s * f for s, f in zip(scale, factor)]}
        ]
        if translation is not None:
            transforms.append({"type": "translation", "translation": list(translation)})
        datasets.append({"path": str(i), "coordinateTransformations": transforms})
        index = tuple(slice(None, None, 2) if a in "yx" else slice(None) for a in axes)
        level = level[index]
    axes_json = []
    for a in axes:
        entry = dict(AXES[a])
        if entry["type"] == "space" and unit:
            entry["unit"] = unit
        axes_json.append(entry)
    ms: dict[str, Any] = {"axes": axes_json, "datasets": datasets, "name": "image"}
    if outer_scale is not None:
        ms["coordinateTransformations"] = [{"type": "scale", "scale": list(outer_scale)}]
    if version == "0.4":
        ms["version"] = "0.4"
        group.attrs["multiscales"] = [ms]
    else:
        group.attrs["ome"] = {"version": version, "multiscales": [ms]}
    return path


def blobs(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A uint16 (z, y, x) volume with a few bright balls on a dim noisy background."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    out = rng.integers(50, 80, shape).astype(np.uint16)
    for _ in range(3):
        c = [rng.integers(0, n) for n in shape]
        r = max(2, min(shape) // 4)
        inside = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r
        out[inside] = 1000 + rng.integers(0, 50)
    return out
