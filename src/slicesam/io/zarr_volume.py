"""Zarr and OME-Zarr volumes, read lazily as (z, y, x).

Two kinds of store are read:

- **OME-Zarr** (OME-NGFF 0.1-0.5; zarr v2 or v3): a group with ``multiscales`` metadata (NGFF
  0.5 keeps it under the ``"ome"`` attribute). As napari and ome-zarr-py do, the first
  multiscale's level 0 (``datasets[0]``, full resolution) is read. Its ``axes`` say which
  dimensions are space (z, y, x: the three ``"space"`` axes; z is the one named "z", else
  the first) and which are channel/time; the voxel size is the level's ``scale``
  transformation (times the multiscale-wide one, if any) and the unit comes from the space
  axes (``"micrometer"`` -> "um"). A bioformats2raw layout (image in series ``0/``) is
  followed. Any non-space axis of size 1 is dropped; one of size > 1 needs ``channel=``.
- **plain zarr arrays** of exactly three dimensions, taken as (z, y, x) with voxel size
  1.0 "px".

Data are never read here: ``data`` is a :class:`~slicesam.io.lazy.SourceSlices` over the
zarr array, so only the chunks of the slices indexed are read (chunk per slice is the
fast layout; any chunking works).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slicesam.errors import VolumeReadError
from slicesam.io._common import describe_exception, not_3d_error, pick_channel, single_channel
from slicesam.io.lazy import LazyArray, SourceSlices

#: Files that mark a folder as a zarr store (v3, v2 group, v2 array).
ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")

#: OME-NGFF unit names (UDUNITS-2) -> slicesam unit strings.
NGFF_UNITS = {
    "angstrom": "angstrom",
    "nanometer": "nm",
    "micrometer": "um",
    "micron": "um",
    "millimeter": "mm",
    "centimeter": "cm",
    "meter": "m",
}
#: slicesam unit strings -> OME-NGFF unit names (for writing).
UNITS_NGFF = {
    "nm": "nanometer",
    "um": "micrometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "angstrom": "angstrom",
}

#: Axis names assumed by NGFF 0.1/0.2, which had no ``axes`` (always 5D).
_IMPLICIT_AXES = "tczyx"


@dataclass(frozen=True)
class ZarrGeometry:
    """Where a zarr volume came from and how its axes map to (z, y, x).

    Attributes:
        store: the store folder given to ``load_volume``.
        image_path: path of the OME-Zarr image group inside the store ("" for the root;
            "0" for a bioformats2raw layout); None for a plain zarr array.
        array_path: path of the array read, relative to the image group (e.g. "0").
        axes: name of each array dimension (e.g. ("c", "z", "y", "x")).
        axis_types: NGFF type of each ("space", "channel", "time", or "" when unknown).
        units: NGFF unit of each dimension (None when not given).
        scale: level-0 voxel size per dimension (product of the dataset and multiscale
            ``scale`` transformations); 1.0 where none.
        translation: level-0 translation per dimension (0.0 where none).
        ngff_version: the multiscales' version ("0.4", "0.5", ...), None for a plain array.
        zarr_format: 2 or 3.
        zyx_axes: the dimensions that are (z, y, x), as indices into ``axes``.
    """

    store: Path
    image_path: str | None
    array_path: str
    axes: tuple[str, ...]
    axis_types: tuple[str, ...]
    units: tuple[str | None, ...]
    scale: tuple[float, ...]
    translation: tuple[float, ...]
    ngff_version: str | None
    zarr_format: int
    zyx_axes: tuple[int, int, int]

    @property
    def is_ome(self) -> bool:
        """Whether the source is an OME-Zarr image (labels can go into its ``labels`` group)."""
        return self.image_path is not None


class ZarrSlices(SourceSlices):
    """A (z, y, x) view of a zarr array (see :class:`~slicesam.io.lazy.SourceSlices`)."""

    @property
    def array(self) -> Any:
        """The zarr array read."""
        return self.source


def is_zarr_store(path: Path) -> bool:
    """Whether ``path`` is a folder holding zarr metadata (``zarr.json``, ``.zgroup`` or
    ``.zarray``)."""
    return path.is_dir() and any((path / name).is_file() for name in ZARR_MARKERS)


def _open(path: Path) -> Any:
    import zarr

    if not is_zarr_store(path):
        raise VolumeReadError(
            f"{path} is not a zarr store: it holds none of {', '.join(ZARR_MARKERS)}"
        )
    try:
        return zarr.open(store=str(path), mode="r")
    except Exception as exc:  # JSONDecodeError, zarr's metadata errors, OSError
        raise VolumeReadError(
            f"could not read {path} as zarr: its metadata are corrupt ({describe_exception(exc)})"
        ) from exc


def ome_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """The OME-NGFF attributes of a group (0.5 nests them under "ome")."""
    ome = attrs.get("ome")
    return ome if isinstance(ome, dict) else attrs


def _axes(path: Path, ms: dict[str, Any], ndim: int) -> tuple[list[str], list[str], list]:
    """(names, types, units) of the multiscale's axes."""
    axes = ms.get("axes")
    if axes is None:
        if ndim == len(_IMPLICIT_AXES):
            names = list(_IMPLICIT_AXES)
        elif ndim == 3:
            names = ["z", "y", "x"]
        else:
            raise VolumeReadError(
                f"{path}: the OME-Zarr multiscales metadata have no 'axes' and the array has "
                f"{ndim} dimensions; cannot tell which are z, y and x"
            )
        return names, ["space" if n in "zyx" else "" for n in names], [None] * ndim
    if not isinstance(axes, list) or len(axes) != ndim:
        raise VolumeReadError(
            f"{path}: the OME-Zarr 'axes' ({axes!r}) do not match the array's {ndim} dimensions"
        )
    names, types, units = [], [], []
    for ax in axes:
        if isinstance(ax, str):  # NGFF 0.3: names only
            name, kind, unit = ax, "", None
        elif isinstance(ax, dict) and isinstance(ax.get("name"), str):
            name, kind, unit = ax["name"], str(ax.get("type") or ""), ax.get("unit")
        else:
            raise VolumeReadError(f"{path}: malformed OME-Zarr axis entry {ax!r}")
        names.append(name)
        types.append(kind or ("space" if name.lower() in ("z", "y", "x") else ""))
        units.append(unit if isinstance(unit, str) else None)
    return names, types, units


def _scale(path: Path, transforms: object, ndim: int, kind: str) -> list[float] | None:
    """The ``kind`` ("scale" or "translation") vector of a coordinateTransformations list."""
    if not transforms:
        return None
    if not isinstance(transforms, list):
        raise VolumeReadError(f"{path}: malformed coordinateTransformations {transforms!r}")
    for t in transforms:
        if isinstance(t, dict) and t.get("type") == kind:
            values = t.get(kind)
            if not isinstance(values, list) or len(values) != ndim:
                raise VolumeReadError(
                    f"{path}: the OME-Zarr {kind} {values!r} does not have one value per "
                    f"dimension ({ndim})"
                )
            try:
                out = [float(v) for v in values]
            except (TypeError, ValueError):
                raise VolumeReadError(f"{path}: non-numeric OME-Zarr {kind} {values!r}") from None
            if not all(math.isfinite(v) for v in out) or (
                kind == "scale" and not all(v > 0 for v in out)
            ):
                raise VolumeReadError(f"{path}: invalid OME-Zarr {kind} {values!r}")
            return out
    return None


def _space_axes(path: Path, names: list[str], types: list[str]) -> tuple[int, int, int]:
    """Indices of the z, y, x dimensions among the space axes."""
    space = [i for i, t in enumerate(types) if t == "space"]
    if len(space) != 3:
        shown = ", ".join(f"{n!r} ({t or 'untyped'})" for n, t in zip(names, types))
        if len(space) == 2:
            raise VolumeReadError(
                f"{path} is a 2D OME-Zarr image (space axes: "
                f"{', '.join(names[i] for i in space)}; axes {shown}); slicesam needs a 3D "
                "volume (z, y, x)"
            )
        raise VolumeReadError(
            f"{path} has {len(space)} space axes ({shown}); slicesam needs exactly three (z, y, x)"
        )
    lower = [names[i].lower() for i in space]
    z = space[lower.index("z")] if "z" in lower else space[0]
    rest = [i for i in space if i != z]
    return z, rest[0], rest[1]


def _unit(units: list, zyx: tuple[int, int, int]) -> str:
    """slicesam unit of the space axes (x's when they differ); "px" when none is given."""
    given = units[zyx[2]] or units[zyx[1]] or units[zyx[0]]
    if given is None:
        return "px"
    return NGFF_UNITS.get(given.lower(), given)


def find_image(path: Path, root: Any) -> tuple[Any, str, dict[str, Any]]:
    """(image group, its path in the store, its OME attributes) of an OME-Zarr store."""
    attrs = ome_attrs(dict(root.attrs))
    if "multiscales" in attrs:
        return root, "", attrs
    if "bioformats2raw.layout" in attrs and "0" in root:
        series = root["0"]
        inner = ome_attrs(dict(series.attrs))
        if "multiscales" in inner:
            return series, "0", inner
    if "plate" in attrs or "well" in attrs:
        kind = "plate" if "plate" in attrs else "well"
        raise VolumeReadError(
            f"{path} is an OME-Zarr {kind} (HCS); open one image of it, e.g. "
            f"{path}/<row>/<column>/<field>"
        )
    arrays = sorted(name for name, _ in root.arrays())
    groups = sorted(name for name, _ in root.groups())
    held = ", ".join([*(f"array {a!r}" for a in arrays), *(f"group {g!r}" for g in groups)])
    raise VolumeReadError(
        f"{path} is a zarr group without OME-Zarr 'multiscales' metadata, so it says "
        f"nothing about which array is the image; it holds {held or 'nothing'}"
        + (f": open one array, e.g. load_volume({str(path / arrays[0])!r})" if arrays else "")
    )


def _convert(dtype: np.dtype) -> tuple[np.dtype, Any]:
    if dtype.kind == "b":
        return np.dtype(np.uint8), lambda a: a.astype(np.uint8)
    return dtype.newbyteorder("="), None


def _check_dtype(path: Path, dtype: np.dtype) -> None:
    if dtype.kind not in "biuf":
        raise VolumeReadError(
            f"{path} holds {dtype} voxels; slicesam reads integer, float or bool volumes"
        )


def image_geometry(
    path: Path, image: Any, image_path: str, attrs: dict[str, Any]
) -> tuple[Any, ZarrGeometry]:
    """The level-0 zarr array of an OME-Zarr image group and its :class:`ZarrGeometry`.

    Raises:
        VolumeReadError: malformed multiscales, axes or scale; not three space axes; a
            missing level-0 array; an unsupported dtype.
    """
    import zarr

    multiscales = attrs.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales or not isinstance(multiscales[0], dict):
        raise VolumeReadError(f"{path}: malformed OME-Zarr 'multiscales' metadata")
    ms = multiscales[0]
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets or "path" not in datasets[0]:
        raise VolumeReadError(f"{path}: the OME-Zarr multiscales list no datasets")
    array_path = str(datasets[0]["path"])
    try:
        array = image[array_path]
    except Exception as exc:
        raise VolumeReadError(
            f"{path}: the OME-Zarr level-0 array {array_path!r} is missing or unreadable "
            f"({describe_exception(exc)})"
        ) from exc
    if not isinstance(array, zarr.Array):
        raise VolumeReadError(f"{path}: the OME-Zarr level 0 {array_path!r} is not an array")
    ndim = array.ndim
    names, types, units = _axes(path, ms, ndim)
    zyx = _space_axes(path, names, types)
    transforms = datasets[0].get("coordinateTransformations")
    scale = _scale(path, transforms, ndim, "scale") or [1.0] * ndim
    outer = _scale(path, ms.get("coordinateTransformations"), ndim, "scale")
    if outer:
        scale = [a * b for a, b in zip(scale, outer)]
    shift = _scale(path, transforms, ndim, "translation") or [0.0] * ndim
    _check_dtype(path, np.dtype(array.dtype))
    geometry = ZarrGeometry(
        store=path,
        image_path=image_path,
        array_path=array_path,
        axes=tuple(names),
        axis_types=tuple(types),
        units=tuple(units),
        scale=tuple(scale),
        translation=tuple(shift),
        ngff_version=str(ms.get("version") or attrs.get("version") or "") or None,
        zarr_format=int(array.metadata.zarr_format),
        zyx_axes=zyx,
    )
    return array, geometry


def read_zarr(
    path: Path, channel: int | None
) -> tuple[LazyArray, tuple[float, float, float], str, ZarrGeometry, dict]:
    """Open a zarr or OME-Zarr store as a lazy (z, y, x) volume.

    Args:
        path: the store folder (an OME-Zarr image, a bioformats2raw store, or a plain 3D
            zarr array).
        channel: index along the one non-space axis of size > 1 (channel or time) of an
            OME-Zarr image; None when there is none.

    Returns:
        ``(data, spacing, unit, geometry, meta)``: ``data`` a lazy (z, y, x)
        :class:`ZarrSlices` in the array's dtype (bool -> uint8, native byte order), nothing
        read yet; ``spacing`` (z, y, x) in ``unit``; ``geometry`` a :class:`ZarrGeometry`.

    Raises:
        VolumeReadError: not a zarr store, corrupt metadata, a group without OME-Zarr
            metadata, an HCS plate, not three space axes, malformed axes/scale, several
            non-space axes, a missing or out-of-range ``channel``, unsupported dtype.
    """
    import zarr

    node = _open(path)
    if isinstance(node, zarr.Array):
        return _plain_array(path, node, channel)
    array, geometry = image_geometry(path, *find_image(path, node))
    names, types = geometry.axes, geometry.axis_types
    ndim = array.ndim
    plan: list[Any] = [None] * ndim
    for letter, i in zip("zyx", geometry.zyx_axes):
        plan[i] = (letter, False)
    others = [i for i in range(ndim) if plan[i] is None]
    many = [i for i in others if array.shape[i] != 1]
    if len(many) > 1:
        listing = ", ".join(f"{names[i]!r} ({array.shape[i]})" for i in many)
        raise VolumeReadError(
            f"{path} has more than one non-space axis of size > 1: {listing}; slicesam "
            "reads (z, y, x) volumes with at most one channel or time axis"
        )
    picked, channels = None, None
    for i in others:
        if i in many:
            label = f"axis {names[i]!r}" + (f", {types[i]}" if types[i] else "")
            picked = pick_channel(path, channel, int(array.shape[i]), label)
            plan[i] = picked
            channels = (int(array.shape[i]), label)
        else:
            plan[i] = 0
    if not many:
        single_channel(path, channel)
    out_dtype, convert = _convert(np.dtype(array.dtype))
    data = ZarrSlices(array, plan, dtype=out_dtype, convert=convert, origin=str(path))
    spacing = tuple(float(geometry.scale[i]) for i in geometry.zyx_axes)
    meta = {
        "format": "ome-zarr",
        "source_shape": tuple(int(s) for s in array.shape),
        "source_axes": "".join(n if len(n) == 1 else f"[{n}]" for n in names),
        "channel": picked,
        "n_channels": channels[0] if channels else 1,
        "channel_axis": channels[1] if channels else None,
        "chunks": tuple(int(c) for c in array.chunks),
    }
    unit = _unit(list(geometry.units), geometry.zyx_axes)
    return data, spacing, unit, geometry, meta  # type: ignore[return-value]


def _plain_array(
    path: Path, array: Any, channel: int | None
) -> tuple[LazyArray, tuple[float, float, float], str, ZarrGeometry, dict]:
    """A plain (z, y, x) zarr array: no metadata, voxel size 1 px."""
    shape = tuple(int(s) for s in array.shape)
    if len(shape) != 3:
        err = not_3d_error(path, shape)
        if len(shape) > 3:
            err = VolumeReadError(
                f"{err}; a plain zarr array says nothing about which dimension is a channel: "
                "store it as OME-Zarr with 'axes' metadata, or as a 3D array"
            )
        raise err
    single_channel(path, channel)
    dtype = np.dtype(array.dtype)
    _check_dtype(path, dtype)
    out_dtype, convert = _convert(dtype)
    plan = [("z", False), ("y", False), ("x", False)]
    data = ZarrSlices(array, plan, dtype=out_dtype, convert=convert, origin=str(path))
    geometry = ZarrGeometry(
        store=path,
        image_path=None,
        array_path="",
        axes=("z", "y", "x"),
        axis_types=("space",) * 3,
        units=(None,) * 3,
        scale=(1.0, 1.0, 1.0),
        translation=(0.0, 0.0, 0.0),
        ngff_version=None,
        zarr_format=int(array.metadata.zarr_format),
        zyx_axes=(0, 1, 2),
    )
    meta = {
        "format": "zarr",
        "source_shape": shape,
        "source_axes": "ZYX",
        "channel": None,
        "n_channels": 1,
        "channel_axis": None,
        "chunks": tuple(int(c) for c in array.chunks),
    }
    return data, (1.0, 1.0, 1.0), "px", geometry, meta
