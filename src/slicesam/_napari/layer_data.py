"""The napari layer data tuple of a :class:`~slicesam.io.Volume`: data (a dask array for a lazy
volume), scale, units, the source volume in ``metadata`` and, for images, the contrast limits of
the default window. Shared by the reader, the DICOM layers and the sample data; imports no
torch, napari or Qt."""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import Any

from slicesam._napari.metadata_keys import PATH_KEY, VOLUME_KEY
from slicesam.intensity import default_window
from slicesam.io import Volume
from slicesam.io.lazy import layer_data

#: napari layer data tuple: (data, layer keyword arguments, layer type).
LayerDataTuple = tuple[Any, dict[str, Any], str]

#: slicesam unit names -> unit strings napari (pint) understands.
_NAPARI_UNITS = {"mm": "mm", "um": "um", "nm": "nm", "cm": "cm", "m": "m", "px": "pixel"}


def _napari_has_units() -> bool:
    """Layers take ``units=`` from napari 0.6 on."""
    try:
        version = _metadata.version("napari")
    except _metadata.PackageNotFoundError:
        return False
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts) >= (0, 6)


def volume_layer_data(
    volume: Volume,
    name: str,
    *,
    as_labels: bool = False,
    colormap: str = "gray",
    blending: str | None = None,
) -> LayerDataTuple:
    """Layer data tuple for a :class:`Volume`.

    Args:
        volume: the volume; its ``data`` (z, y, x) becomes the layer data (not copied).
        name: layer name.
        as_labels: make a labels layer (the data must be integer).
        colormap: image colormap (ignored for labels).
        blending: image blending mode; ``None`` keeps napari's default.

    Returns:
        ``(data, kwargs, "image" | "labels")`` with ``scale`` = ``volume.spacing`` (z, y, x),
        ``metadata`` = {``VOLUME_KEY``: volume, ``PATH_KEY``: str(path) or None}, ``units``
        (napari >= 0.6, known units) and, for images, ``contrast_limits`` from
        :func:`slicesam.intensity.default_window` (CT: -160..240 HU, otherwise the 0.5/99.5
        percentiles above the minimum).
    """
    kwargs: dict[str, Any] = {
        "name": name,
        "scale": tuple(float(s) for s in volume.spacing),
        "metadata": {
            VOLUME_KEY: volume,
            PATH_KEY: str(volume.path) if volume.path is not None else None,
        },
    }
    unit = _NAPARI_UNITS.get(volume.unit)
    if unit is not None and _napari_has_units():
        kwargs["units"] = (unit,) * 3
    data = layer_data(volume.data)  # a lazy volume: a dask array napari reads as it draws
    if as_labels:
        return data, kwargs, "labels"
    kwargs["contrast_limits"] = tuple(
        float(v) for v in default_window(volume.data, volume.modality)
    )
    kwargs["colormap"] = colormap
    if blending is not None:
        kwargs["blending"] = blending
    return data, kwargs, "image"
