"""TIFF stacks (ImageJ, OME or plain/tifffile-shaped): reading as (z, y, x) and label writing.

TIFF data stay as stored (axes Z, Y, X; no reorientation). The voxel size comes from, in order:
ImageJ metadata (``spacing`` for z, the XResolution/YResolution tags for x/y, ``unit``),
tifffile "shaped" JSON metadata (``spacing``, ``unit``, ``axes``; what :func:`write_tiff` writes
for dtypes ImageJ cannot hold), or OME-XML ``PhysicalSize{X,Y,Z}``; otherwise 1.0 "px".
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from slicesam.errors import VolumeReadError
from slicesam.io._common import describe_exception, not_3d_error, pick_channel, single_channel

_UM = "um"
_UNIT_ALIASES = {
    "um": _UM,
    "µm": _UM,  # micro sign U+00B5
    "μm": _UM,  # greek mu U+03BC
    "\\u00b5m": _UM,  # ImageJ writes the escape sequence literally
    "\\u03bcm": _UM,
    "micron": _UM,
    "microns": _UM,
    "micrometer": _UM,
    "micrometre": _UM,
    "nm": "nm",
    "nanometer": "nm",
    "nanometre": "nm",
    "mm": "mm",
    "millimeter": "mm",
    "millimetre": "mm",
    "cm": "cm",
    "m": "m",
    "px": "px",
    "pixel": "px",
    "pixels": "px",
    "": "px",
}

_AXIS_NAMES = {"C": "channel", "S": "RGB samples", "T": "time"}

#: dtypes that ImageJ TIFF can hold (labels in other integer types go to a plain TIFF).
_IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


@dataclass(eq=False)
class TiffGeometry:
    """Source geometry of a TIFF volume.

    Attributes:
        spacing: voxel size (z, y, x) in ``unit``.
        unit: "um", "nm", "mm", "px", ... (normalised).
        axes: the tifffile axes of the source series, e.g. "ZYX", "ZCYX", "QYX".
        shape: the source series shape (same length as ``axes``).
        imagej: whether the source was an ImageJ hyperstack.
    """

    spacing: tuple[float, float, float]
    unit: str
    axes: str
    shape: tuple[int, ...]
    imagej: bool = False


def normalize_unit(unit: object) -> str:
    """Normalise a TIFF unit string: micron, µm, ``\\u00B5m`` -> "um"; pixel -> "px"."""
    if unit is None:
        return "px"
    text = str(unit).strip()
    return _UNIT_ALIASES.get(text.lower(), text)


def _positive(value: object, default: float = 1.0) -> float:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) and f > 0 else default


def _resolution_spacing(page: tifffile.TiffPage) -> tuple[float, float]:
    """(y, x) pixel size from the YResolution / XResolution tags (pixels per unit)."""

    def one(tag_name: str) -> float:
        tag = page.tags.get(tag_name)
        if tag is None:
            return 1.0
        value = tag.value
        try:
            num, den = value
            return _positive(float(den) / float(num)) if num else 1.0
        except (TypeError, ValueError):
            return _positive(1.0 / float(value)) if value else 1.0

    return one("YResolution"), one("XResolution")


def _ome_spacing(xml: str) -> tuple[tuple[float, float, float], str] | None:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    pixels = next((el for el in root.iter() if el.tag.endswith("Pixels")), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None
    sx = _positive(pixels.get("PhysicalSizeX"))
    sy = _positive(pixels.get("PhysicalSizeY", sx))
    sz = _positive(pixels.get("PhysicalSizeZ", 1.0))
    unit = normalize_unit(pixels.get("PhysicalSizeXUnit", "µm"))
    return (sz, sy, sx), unit


def _spacing_unit(tf: tifffile.TiffFile) -> tuple[tuple[float, float, float], str]:
    page = tf.pages[0]
    sy, sx = _resolution_spacing(page)
    if tf.is_imagej:
        ij = tf.imagej_metadata or {}
        return (_positive(ij.get("spacing", 1.0)), sy, sx), normalize_unit(ij.get("unit"))
    shaped = tf.shaped_metadata
    if shaped and ("spacing" in shaped[0] or "unit" in shaped[0]):
        md = shaped[0]
        return (_positive(md.get("spacing", 1.0)), sy, sx), normalize_unit(md.get("unit"))
    if tf.is_ome and tf.ome_metadata:
        ome = _ome_spacing(tf.ome_metadata)
        if ome is not None:
            return ome
    return (1.0, 1.0, 1.0), "px"


def _axes_shape(tf: tifffile.TiffFile, series: tifffile.TiffPageSeries) -> tuple[str, tuple]:
    """Axes and shape to interpret; keeps a singleton Z where the file says it is a stack."""
    full_axes = series.get_axes(False)
    full_shape = tuple(int(s) for s in series.get_shape(False))
    if tf.is_shaped and not tf.is_imagej and not tf.is_ome:
        return full_axes, full_shape  # shaped metadata: the shape exactly as written
    keep_z = bool(tf.is_imagej and "slices" in (tf.imagej_metadata or {}))
    axes, shape = "", []
    for ax, n in zip(full_axes, full_shape):
        if n != 1 or ax in "YX" or (ax == "Z" and keep_z):
            axes += ax
            shape.append(n)
    return axes, tuple(shape)


def read_tiff(
    path: Path, channel: int | None
) -> tuple[np.ndarray, tuple[float, float, float], str, TiffGeometry, dict]:
    """Read the first series of a TIFF file as a (z, y, x) array.

    Axes: Y and X are the image plane; Z is the ``Z`` axis or, without one, the last generic
    stack axis (tifffile ``I``/``Q``; plain multi-page files). Any other non-singleton axis
    (``C``, ``S`` for RGB, ``T``, a leading ``Q`` of a 4D array, ...) is a channel axis and
    needs ``channel=``.

    Returns:
        ``(data, spacing, unit, geometry, meta)``: ``data`` (z, y, x) in the file's dtype
        (bool becomes uint8), ``spacing`` (z, y, x) and ``unit`` as described in the module
        docstring.

    Raises:
        VolumeReadError: not a TIFF / truncated, 2D image, or multichannel without a valid
            ``channel``.
    """
    try:
        with tifffile.TiffFile(path) as tf:
            if not tf.series:
                raise VolumeReadError(f"{path} contains no image data")
            series = tf.series[0]
            axes, shape = _axes_shape(tf, series)
            spacing, unit = _spacing_unit(tf)
            imagej = bool(tf.is_imagej)
            data = np.asarray(series.asarray()).reshape(shape)
    except VolumeReadError:
        raise
    except Exception as exc:  # TiffFileError, ValueError (truncated), OSError, struct ...
        raise VolumeReadError(
            f"could not read {path} as TIFF (the file may be truncated or corrupt): "
            f"{describe_exception(exc)}"
        ) from exc

    axes = axes.upper()
    if "Z" not in axes:
        generic = [i for i, ax in enumerate(axes) if ax in "IQ"]
        if generic:
            i = generic[-1]
            axes = axes[:i] + "Z" + axes[i + 1 :]
    if "Y" not in axes or "X" not in axes:
        raise VolumeReadError(f"{path}: unsupported TIFF axes {axes!r} (shape {shape})")
    if "Z" not in axes:
        raise not_3d_error(path, (shape[axes.index("Y")], shape[axes.index("X")]))

    others = [(i, ax, n) for i, (ax, n) in enumerate(zip(axes, shape)) if ax not in "ZYX"]
    many = [(i, ax, n) for i, ax, n in others if n != 1]
    if len(many) > 1:
        listing = ", ".join(f"{ax!r} ({n})" for _, ax, n in many)
        raise VolumeReadError(
            f"{path} has axes {axes!r} (shape {shape}) with more than one non-spatial axis: "
            f"{listing}; slicesam reads ZYX stacks with at most one channel axis"
        )
    index: list[object] = [slice(None)] * len(axes)
    picked = None
    if many:
        i, ax, n = many[0]
        name = _AXIS_NAMES.get(ax)
        label = f"axis {ax!r}" + (f", {name}" if name else "")
        picked = pick_channel(path, channel, n, label)
        index[i] = picked
    else:
        single_channel(path, channel)
    for i, _ax, n in others:
        if n == 1:
            index[i] = 0
    data = data[tuple(index)]
    kept = "".join(ax for ax in axes if ax in "ZYX")
    data = np.ascontiguousarray(np.moveaxis(data, [kept.index(a) for a in "ZYX"], [0, 1, 2]))
    if data.dtype == bool:
        data = data.astype(np.uint8)
    if np.iscomplexobj(data):
        raise VolumeReadError(f"{path} holds complex voxels ({data.dtype}); not supported")

    geometry = TiffGeometry(
        spacing=spacing, unit=unit, axes=axes, shape=tuple(shape), imagej=imagej
    )
    meta = {"format": "tiff", "source_axes": axes, "source_shape": tuple(shape), "channel": picked}
    return data, spacing, unit, geometry, meta


def write_tiff(
    path: Path, labels: np.ndarray, spacing: tuple[float, float, float], unit: str
) -> None:
    """Write an integer (z, y, x) label array as a ZYX TIFF with the voxel size (not atomic).

    uint8/uint16 stacks with more than one slice are written as ImageJ hyperstacks
    (``resolution`` = 1/x, 1/y pixel size, metadata ``spacing`` = z, ``unit``, ``axes`` ZYX), so
    Fiji shows the calibration. Other dtypes (uint32, ...) and one-slice stacks (which ImageJ
    cannot tell from a 2D image) are written as plain TIFF with the same resolution tags and
    tifffile shaped JSON metadata ``{"spacing": z, "unit": ..., "axes": "ZYX"}``, which
    :func:`read_tiff` understands.
    """
    sz, sy, sx = (_positive(s) for s in spacing)
    resolution = (1.0 / sx, 1.0 / sy)
    if labels.dtype in _IMAGEJ_DTYPES and labels.shape[0] > 1:
        metadata: dict[str, object] = {"axes": "ZYX", "spacing": sz}
        if unit and unit != "px":
            metadata["unit"] = unit
        tifffile.imwrite(
            path,
            labels,
            imagej=True,
            photometric="minisblack",
            resolution=resolution,
            metadata=metadata,
        )
    else:
        metadata = {"axes": "ZYX", "spacing": sz, "unit": unit or "px"}
        # minisblack: one grey page per z (tifffile would store (z, y, 3) as RGB otherwise)
        tifffile.imwrite(
            path, labels, photometric="minisblack", resolution=resolution, metadata=metadata
        )
