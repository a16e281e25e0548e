"""TIFF stacks (ImageJ, OME or plain/tifffile-shaped): reading as (z, y, x) and label writing.

TIFF data stay as stored (axes Z, Y, X; no reorientation). The voxel size comes from, in order:
ImageJ metadata (``spacing`` for z, the XResolution/YResolution tags for x/y, ``unit``),
tifffile "shaped" JSON metadata (``spacing``, ``unit``, ``axes``; what :func:`write_tiff` writes
for dtypes ImageJ cannot hold), or OME-XML ``PhysicalSize{X,Y,Z}``; otherwise 1.0 "px".
"""

from __future__ import annotations

import contextlib
import logging
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from slicesam.errors import VolumeReadError
from slicesam.io._common import (
    check_fits,
    content_mismatch_hint,
    describe_exception,
    format_bytes,
    not_3d_error,
    pick_channel,
    single_channel,
)
from slicesam.io.lazy import SourceSlices, wants_lazy

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
        unit_text: the unit exactly as the source stored it (e.g. "micron", ``"\\u00B5m"``),
            written back to label files; ``None`` when the source had none.
        resolution: the source's (XResolution, YResolution) tag values as (numerator,
            denominator) pairs, written back verbatim; ``None`` when absent or unusable.
    """

    spacing: tuple[float, float, float]
    unit: str
    axes: str
    shape: tuple[int, ...]
    imagej: bool = False
    unit_text: str | None = None
    resolution: tuple[tuple[int, int], tuple[int, int]] | None = None


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


def _unit_text(tf: tifffile.TiffFile) -> str | None:
    """The unit string as stored in ImageJ or tifffile shaped metadata, or ``None``."""
    if tf.is_imagej:
        unit = (tf.imagej_metadata or {}).get("unit")
    else:
        shaped = tf.shaped_metadata
        unit = shaped[0].get("unit") if shaped else None
    return unit if isinstance(unit, str) else None


def _raw_resolution(page: tifffile.TiffPage) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(XResolution, YResolution) as stored, when both are positive rationals."""
    values = []
    for name in ("XResolution", "YResolution"):
        tag = page.tags.get(name)
        value = tag.value if tag is not None else None
        if not (isinstance(value, tuple) and len(value) == 2):
            return None
        num, den = (int(v) for v in value)
        if num <= 0 or den <= 0:
            return None
        values.append((num, den))
    return values[0], values[1]


def _axes_shape(tf: tifffile.TiffFile, series: tifffile.TiffPageSeries) -> tuple[str, tuple]:
    """Axes and shape to interpret; keeps a singleton Z where the file says it is a stack."""
    full_axes = series.get_axes(False)
    full_shape = tuple(int(s) for s in series.get_shape(False))
    kept = _kept_axes(tf, full_axes, full_shape)
    return "".join(full_axes[i] for i in kept), tuple(full_shape[i] for i in kept)


def _kept_axes(tf: tifffile.TiffFile, full_axes: str, full_shape: tuple) -> list[int]:
    """Positions (in the unsqueezed series) of the axes :func:`_axes_shape` keeps."""
    if tf.is_shaped and not tf.is_imagej and not tf.is_ome:
        return list(range(len(full_axes)))  # shaped metadata: the shape exactly as written
    keep_z = bool(tf.is_imagej and "slices" in (tf.imagej_metadata or {}))
    return [
        i
        for i, (ax, n) in enumerate(zip(full_axes, full_shape))
        if n != 1 or ax in "YX" or (ax == "Z" and keep_z)
    ]


def _plan(
    path: Path, axes: str, shape: tuple[int, ...], channel: int | None
) -> tuple[str, tuple, int | None, tuple[int, str] | None]:
    """Decide how to index the source array.

    Returns:
        ``(axes, index, channel, channels)``: the axes with Z named, the index into the
        source array, the channel taken (``None`` without a channel axis) and
        ``(number of channels, axis description)`` or ``None``.

    Raises:
        VolumeReadError: 2D image, unsupported axes, more than one channel axis, or a missing
            / out-of-range ``channel``.
    """
    axes = axes.upper()
    if "Z" not in axes:
        generic = [i for i, ax in enumerate(axes) if ax in "IQ"]
        if generic:
            i = generic[-1]
            axes = axes[:i] + "Z" + axes[i + 1 :]
    if "Y" not in axes or "X" not in axes or len(set(axes)) != len(axes):
        raise VolumeReadError(f"{path}: unsupported TIFF axes {axes!r} (shape {shape})")
    if "Z" not in axes:
        planes = [(ax, n) for ax, n in zip(axes, shape) if ax not in "YXS" and n > 1]
        if len(planes) == 1:
            ax, n = planes[0]
            raise VolumeReadError(
                f"{path} has no Z axis: axes {axes!r}, shape {shape}, i.e. {n} planes along "
                f"{ax!r} ({_AXIS_NAMES.get(ax, 'not z')}); slicesam needs a 3D (z, y, x) stack. "
                "If these planes are z slices (ImageJ files saved without axes store stacks as "
                "channels), re-save with axes ZYX, e.g. tifffile.imwrite(path, data, "
                "imagej=True, metadata={'axes': 'ZYX'}), or set Slices in Fiji's Image > "
                "Properties"
            )
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
    channels = None
    if many:
        i, ax, n = many[0]
        name = _AXIS_NAMES.get(ax)
        label = f"axis {ax!r}" + (f", {name}" if name else "")
        picked = pick_channel(path, channel, n, label)
        index[i] = picked
        channels = (n, label)
    else:
        single_channel(path, channel)
    for i, _ax, n in others:
        if n == 1:
            index[i] = 0
    return axes, tuple(index), picked, channels


def _read_selected(
    path: Path,
    tf: tifffile.TiffFile,
    series: tifffile.TiffPageSeries,
    shape: tuple[int, ...],
    index: tuple,
    max_bytes: int | None,
) -> np.ndarray:
    """Read ``series`` reshaped to ``shape`` and indexed by ``index``, checking memory first.

    Uncompressed contiguous data are memory-mapped, so only the selected channel is copied
    into memory; other files are decoded whole (all channels) and then indexed.
    """
    dtype = series.dtype
    if dtype is None:
        raise VolumeReadError(f"{path}: the pages of the first series have different data types")
    n_total = math.prod(shape)
    n_kept = math.prod(
        n for n, ix in zip(shape, index) if isinstance(ix, slice)
    )  # voxels of one (z, y, x) volume
    offset = series.dataoffset
    mappable = offset is not None and dtype.kind in "uif" and n_total > 0
    needed = n_kept * dtype.itemsize * (1 if mappable else 2)
    if not mappable:
        needed += (n_total - n_kept) * dtype.itemsize
    kept_shape = "x".join(str(n) for n, ix in zip(shape, index) if isinstance(ix, slice))
    what = f"one {kept_shape} volume of {dtype}"
    if n_kept != n_total and not mappable:
        what += (
            f" (the file is compressed or tiled, so all {n_total // max(n_kept, 1)} channels "
            "are decoded)"
        )
    check_fits(path, needed, what, max_bytes)
    if mappable:
        size = path.stat().st_size
        if offset + n_total * dtype.itemsize > size:
            raise VolumeReadError(
                f"could not read {path} as TIFF: the file is truncated (the image data need "
                f"{format_bytes(offset + n_total * dtype.itemsize)}, the file has "
                f"{format_bytes(size)}); re-export or re-copy it"
            )
        mm = np.memmap(
            path, dtype=np.dtype(tf.byteorder + dtype.char), mode="r", offset=offset,
            shape=(n_total,),
        )  # fmt: skip
        try:
            return np.array(mm.reshape(shape)[index], dtype=dtype.newbyteorder("="))
        finally:
            del mm
    return np.asarray(series.asarray()).reshape(shape)[index]


def _lazy_selected(path: Path, axes: str, index: tuple) -> SourceSlices:
    """The (z, y, x) view of the first series, read page by page through tifffile's zarr
    store (``aszarr``); the file stays open for the life of the view."""
    import zarr

    tf = tifffile.TiffFile(path)
    try:
        series = tf.series[0]
        dtype = series.dtype
        if dtype is None or dtype.kind not in "biuf":
            raise VolumeReadError(f"{path}: unsupported TIFF data type {dtype}")
        full_axes = series.get_axes(False)
        full_shape = tuple(int(n) for n in series.get_shape(False))
        offset = series.dataoffset
        end = None if offset is None else offset + math.prod(full_shape) * dtype.itemsize
        if end is not None and end > path.stat().st_size:
            raise VolumeReadError(
                f"could not read {path} as TIFF: the file is truncated (the image data need "
                f"{format_bytes(end)}, the file has {format_bytes(path.stat().st_size)}); "
                "re-export or re-copy it"
            )
        source = zarr.open(series.aszarr(level=0, squeeze=False), mode="r")
    except BaseException:
        tf.close()
        raise
    plan: list[int | tuple[str, bool]] = [0] * len(full_axes)
    for pos, ax, ix in zip(_kept_axes(tf, full_axes, full_shape), axes, index):
        plan[pos] = (ax.lower(), False) if isinstance(ix, slice) else int(ix)
    bool_data = dtype.kind == "b"
    return SourceSlices(
        source,
        plan,
        dtype=np.dtype(np.uint8) if bool_data else dtype.newbyteorder("="),
        convert=(lambda a: a.astype(np.uint8)) if bool_data else None,
        lock=True,  # one file handle for every thread
        origin=str(path),
        owner=tf,
    )


@contextlib.contextmanager
def _quiet_tifffile():
    """Silence tifffile's own log lines while reading: a damaged file's problem is reported
    once, in slicesam's error, not first as a cryptic tifffile warning."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def read_tiff(
    path: Path, channel: int | None, max_bytes: int | None = None, lazy: bool | None = False
) -> tuple[np.ndarray | SourceSlices, tuple[float, float, float], str, TiffGeometry, dict]:
    """Read the first series of a TIFF file as a (z, y, x) array.

    Axes: Y and X are the image plane; Z is the ``Z`` axis or, without one, the last generic
    stack axis (tifffile ``I``/``Q``; plain multi-page files). Any other non-singleton axis
    (``C``, ``S`` for RGB, ``T``, a leading ``Q`` of a 4D array, ...) is a channel axis and
    needs ``channel=``.

    Args:
        path: an existing ``.tif`` / ``.tiff`` file.
        channel: index along the single channel axis, ``None`` for single-channel stacks.
        max_bytes: memory the read may use; ``None``: the memory available now. Checked from
            the tags before any pixel is read. Uncompressed contiguous files are
            memory-mapped and only the chosen channel is copied. Not used for lazy reads.
        lazy: True reads nothing now: ``data`` is a lazy (z, y, x)
            :class:`~slicesam.io.lazy.SourceSlices` that decodes the pages indexed
            (tifffile's ``aszarr`` store); None decides by size
            (:func:`~slicesam.io.lazy.wants_lazy`); False reads the volume into memory.

    Returns:
        ``(data, spacing, unit, geometry, meta)``: ``data`` (z, y, x) in the file's dtype
        (native byte order; bool becomes uint8), ``spacing`` (z, y, x) and ``unit`` as
        described in the module docstring.

    Raises:
        VolumeReadError: not a TIFF / truncated, 2D image, multichannel without a valid
            ``channel``, or too large for ``max_bytes``.
    """
    try:
        with _quiet_tifffile(), tifffile.TiffFile(path) as tf:
            if not tf.series:
                raise VolumeReadError(f"{path} contains no image data")
            series = tf.series[0]
            raw_axes, shape = _axes_shape(tf, series)
            axes, index, picked, channels = _plan(path, raw_axes, shape, channel)
            spacing, unit = _spacing_unit(tf)
            unit_text = _unit_text(tf)
            resolution = _raw_resolution(tf.pages[0])
            imagej = bool(tf.is_imagej)
            n_kept = math.prod(n for n, ix in zip(shape, index) if isinstance(ix, slice))
            itemsize = series.dtype.itemsize if series.dtype is not None else 1
            if wants_lazy(lazy, n_kept * itemsize):
                data = _lazy_selected(path, axes, index)
            else:
                data = _read_selected(path, tf, series, shape, index, max_bytes)
    except VolumeReadError:
        raise
    except Exception as exc:  # TiffFileError, ValueError (truncated), OSError, struct ...
        hint = content_mismatch_hint(path, "tiff")
        if hint:
            raise VolumeReadError(f"could not read {path} as TIFF: {hint}") from exc
        raise VolumeReadError(
            f"could not read {path} as TIFF (the file may be truncated or corrupt): "
            f"{describe_exception(exc)}"
        ) from exc

    if isinstance(data, np.ndarray):
        kept = "".join(ax for ax, ix in zip(axes, index) if isinstance(ix, slice))
        data = np.ascontiguousarray(np.moveaxis(data, [kept.index(a) for a in "ZYX"], [0, 1, 2]))
        if data.dtype == bool:
            data = data.astype(np.uint8)
        if np.iscomplexobj(data):
            raise VolumeReadError(f"{path} holds complex voxels ({data.dtype}); not supported")

    geometry = TiffGeometry(
        spacing=spacing,
        unit=unit,
        axes=axes,
        shape=tuple(shape),
        imagej=imagej,
        unit_text=unit_text
        if unit_text is not None and normalize_unit(unit_text) == unit
        else None,
        resolution=resolution,
    )
    meta = {
        "format": "tiff",
        "source_axes": axes,
        "source_shape": tuple(shape),
        "channel": picked,
        "n_channels": channels[0] if channels else 1,
        "channel_axis": channels[1] if channels else None,
    }
    return data, spacing, unit, geometry, meta


def write_tiff(
    path: Path,
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    unit: str,
    geometry: TiffGeometry | None = None,
) -> None:
    """Write an integer (z, y, x) label array as a ZYX TIFF with the voxel size (not atomic).

    uint8/uint16 stacks with more than one slice are written as ImageJ hyperstacks
    (``resolution`` = 1/x, 1/y pixel size, metadata ``spacing`` = z, ``unit``, ``axes`` ZYX), so
    Fiji shows the calibration. Other dtypes (uint32, ...) and one-slice stacks (which ImageJ
    cannot tell from a 2D image) are written as plain TIFF with the same resolution tags and
    tifffile shaped JSON metadata ``{"spacing": z, "unit": ..., "axes": "ZYX"}``, which
    :func:`read_tiff` understands. ResolutionUnit is NONE (as ImageJ writes it; the unit is in
    the metadata), never the TIFF default "inch".

    With the source's :class:`TiffGeometry` (same ``spacing``), its resolution tags and unit
    string are written verbatim, so the calibration equals the source's exactly.
    """
    sz, sy, sx = (_positive(s) for s in spacing)
    resolution: tuple = (1.0 / sx, 1.0 / sy)
    unit_text = unit
    if geometry is not None and tuple(geometry.spacing) == tuple(spacing):
        raw = geometry.resolution
        if raw is not None and all(
            math.isclose(den / num, size, rel_tol=1e-9) for (num, den), size in zip(raw, (sx, sy))
        ):  # only when the tags are where the voxel size came from (not OME, not defaults)
            resolution = raw
        text = geometry.unit_text
        if text is not None and text.isascii() and normalize_unit(text) == unit:
            unit_text = text  # TIFF descriptions are ASCII: "µm" is written as "um"
    if labels.dtype in _IMAGEJ_DTYPES and labels.shape[0] > 1:
        metadata: dict[str, object] = {"axes": "ZYX", "spacing": sz}
        if unit and unit != "px":
            metadata["unit"] = unit_text
        tifffile.imwrite(
            path,
            labels,
            imagej=True,
            photometric="minisblack",
            resolution=resolution,
            resolutionunit=tifffile.RESUNIT.NONE,
            metadata=metadata,
        )
    else:
        metadata = {"axes": "ZYX", "spacing": sz, "unit": unit_text or "px"}
        # minisblack: one grey page per z (tifffile would store (z, y, 3) as RGB otherwise)
        tifffile.imwrite(
            path,
            labels,
            photometric="minisblack",
            resolution=resolution,
            resolutionunit=tifffile.RESUNIT.NONE,
            metadata=metadata,
        )
