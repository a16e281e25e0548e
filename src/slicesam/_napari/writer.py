"""napari writer hook: a labels layer -> NIfTI (``.nii.gz``, ``.nii``), TIFF (``.tif``,
``.tiff``) or, for a volume from a DICOM series, DICOM-SEG (``.dcm``) on the grid of its source
volume. A DICOM-SEG gets the object names (``metadata["slicesam_names"]`` or the layer's
``features`` "name" column) and the layer's colours.

The source geometry is the :class:`~slicesam.io.Volume` in ``layer.metadata["slicesam_volume"]``
(put there by the reader and, later, by the widget): the file then has the source's affine,
qform/sform and zooms bit for bit (see :func:`slicesam.io.save_labels`). Without one, the
layer's ``scale`` (z, y, x) is the voxel spacing and NIfTI gets the LPS affine
``diag(-sx, -sy, sz)``.

Imports no torch, napari or Qt.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from slicesam._napari.reader import NAMES_KEY, VOLUME_KEY
from slicesam.errors import VolumeWriteError
from slicesam.io import Volume, save_labels
from slicesam.io.lazy import is_lazy

#: napari (pint) unit names -> slicesam unit strings.
_SLICESAM_UNITS = {
    "millimeter": "mm",
    "micrometer": "um",
    "nanometer": "nm",
    "centimeter": "cm",
    "meter": "m",
}


def _is_nifti(path: str) -> bool:
    return path.lower().endswith((".nii", ".nii.gz"))


def _spacing_from_scale(scale: Any) -> tuple[float, float, float]:
    """The last three ``scale`` entries as (z, y, x) spacing; bad entries become 1.0."""
    if scale is None:
        return (1.0, 1.0, 1.0)
    values = [float(s) for s in scale][-3:]
    values = [1.0] * (3 - len(values)) + values
    return tuple(v if math.isfinite(v) and v > 0 else 1.0 for v in values)  # type: ignore[return-value]


def _unit_from_meta(meta: dict[str, Any], path: str) -> str:
    """slicesam unit of the layer's (z, y, x) units; "mm" (NIfTI) / "px" (TIFF) when unknown."""
    units = meta.get("units")
    if units is not None and not isinstance(units, str):
        units = list(units)[-3:]
        names = {_SLICESAM_UNITS.get(str(u)) for u in units}
        if len(names) == 1 and None not in names:
            return names.pop()  # type: ignore[return-value]
    elif isinstance(units, str) and units in _SLICESAM_UNITS:
        return _SLICESAM_UNITS[units]
    return "mm" if _is_nifti(path) else "px"


def source_volume(labels: np.ndarray, meta: dict[str, Any], path: str) -> Volume:
    """The volume whose geometry the labels are written with.

    The :class:`Volume` in ``meta["metadata"]["slicesam_volume"]`` when there is one
    (``save_labels`` checks its shape against ``labels``), else a geometry-less one with the
    layer's ``scale`` as spacing (z, y, x).
    """
    layer_metadata = meta.get("metadata") or {}
    volume = layer_metadata.get(VOLUME_KEY)
    if isinstance(volume, Volume):
        return volume
    return Volume(
        data=labels,
        spacing=_spacing_from_scale(meta.get("scale")),
        unit=_unit_from_meta(meta, path),
        geometry=None,
    )


def object_names(meta: dict[str, Any]) -> dict[int, str]:
    """{label value: name} from ``metadata["slicesam_names"]``, else from the layer's
    ``features`` table ("index" and "name" columns); background excluded."""
    names = (meta.get("metadata") or {}).get(NAMES_KEY)
    if isinstance(names, dict):
        return {int(k): str(v) for k, v in names.items() if int(k) != 0 and v}
    features = meta.get("features")
    try:
        index, name = list(features["index"]), list(features["name"])
    except Exception:  # no features, or no such columns
        return {}
    return {int(i): str(n) for i, n in zip(index, name, strict=False) if int(i) != 0 and n}


def object_colors(meta: dict[str, Any], values: np.ndarray) -> dict[int, tuple[int, int, int]]:
    """{label value: RGB 0-255} of ``values`` through the layer's colormap; hidden
    (transparent) labels and layers without a usable colormap give none."""
    colormap = meta.get("colormap")
    if colormap is None or not hasattr(colormap, "map") or values.size == 0:
        return {}
    try:
        rgba = np.asarray(colormap.map(values), dtype=float).reshape(len(values), -1)
    except Exception:
        return {}
    return {
        int(v): tuple(int(round(c * 255)) for c in color[:3])  # type: ignore[misc]
        for v, color in zip(values, rgba, strict=True)
        if color.shape[0] == 4 and color[3] > 0
    }


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """napari single-layer writer for labels layers.

    Args:
        path: output file; ``.nii.gz``, ``.nii``, ``.tif``, ``.tiff`` or ``.dcm``
            (DICOM-SEG, for labels of a volume read from a DICOM series).
        data: the layer data, a (z, y, x) integer array (a multiscale list: level 0 is written).
        meta: the layer state (``metadata``, ``scale``, ``units``, ``name``, ...).

    Returns:
        ``[path]`` as written.

    Raises:
        SliceSamError: not 3D, shape different from the source volume, bad values or an
            unsupported ending.
    """
    path = os.fspath(path)
    if meta.get("multiscale"):
        data = data[0]
    labels = data if is_lazy(data) else np.asarray(data)  # a label store is written slice by slice
    if labels.ndim != 3:
        name = meta.get("name", "labels")
        raise VolumeWriteError(
            f"layer {name!r} has {labels.ndim} dimension(s) (shape {tuple(labels.shape)}); "
            "slicesam writes 3D label volumes (z, y, x)"
        )
    like = source_volume(labels, meta, path)
    names = colors = None
    if path.lower().endswith(".dcm"):
        names = object_names(meta)
        values = np.unique(labels)
        colors = object_colors(meta, values[values != 0])
    written = save_labels(path, labels, like=like, names=names, colors=colors)
    return [str(written)]
