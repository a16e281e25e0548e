"""Label volumes in chunked zarr stores: kept on disk while a session runs, saved as OME-Zarr.

- :class:`ZarrLabels` is a (z, y, x) label volume in a zarr array (one chunk per slice,
  zstd-compressed; an all-zero slice stores nothing). A session writes and reads it slice by
  slice, so labels of a volume larger than memory never need to fit in it.
  :func:`open_label_store` opens or creates one on disk (``Session(..., labels_store=path)``),
  :func:`memory_label_store` keeps one compressed in memory.
- :func:`write_ome_zarr_labels` saves labels as an OME-NGFF label image: into the ``labels``
  group of the OME-Zarr image they belong to (``<image>/labels/<name>``, with the image's
  axes, level-0 scale and NGFF version, as the spec and napari-ome-zarr expect), or as a store
  of its own (NGFF 0.4, zarr v2: a multiscales image with ``image-label`` metadata, axes
  z, y, x, scale = the volume's spacing). Written slice by slice, never whole.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from slicesam.errors import VolumeReadError, VolumeWriteError
from slicesam.io._common import describe_exception
from slicesam.io.lazy import Key, SliceStore
from slicesam.io.volume import Volume
from slicesam.io.zarr_volume import (
    UNITS_NGFF,
    find_image,
    image_geometry,
    is_zarr_store,
    ome_attrs,
)

#: dtype of a new label store.
DEFAULT_DTYPE = np.dtype(np.uint16)
#: Name of the label image slicesam writes into an OME-Zarr image's ``labels`` group.
LABEL_NAME = "slicesam"


def _is_fancy(key: object) -> bool:
    parts = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, (np.ndarray, list)) for k in parts)


class ZarrLabels(SliceStore):
    """A (z, y, x) integer label volume in a zarr array.

    Indexing reads (numpy basic indexing; coordinate arrays as ``zarr``'s ``vindex``, which
    is what napari's paint brush sends); assignment writes. It keeps the set of slices that
    may hold labels (:meth:`nonzero_slices`), updated by every write made through it.

    Args:
        array: a 3D zarr array of an integer dtype.
        nonzero: the slices that hold labels, when known (a new store: none); None scans
            the store once, slice by slice.
    """

    def __init__(self, array: Any, nonzero: Iterable[int] | None = None) -> None:
        self.array = array
        self._guard = threading.Lock()
        if nonzero is None:
            nonzero = self._scan()
        self._nonzero: set[int] = {int(z) for z in nonzero}

    def _scan(self) -> list[int]:
        if int(self.array.nchunks_initialized) == 0:
            return []
        return [z for z in range(self.shape[0]) if np.asarray(self.array[z]).any()]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    def read(self, key: Key) -> np.ndarray:
        return np.asarray(self.array[key])

    def __getitem__(self, key: object) -> np.ndarray:
        if _is_fancy(key):
            return np.asarray(self.array.vindex[key])
        return super().__getitem__(key)

    def __setitem__(self, key: object, value: np.ndarray) -> None:
        value = np.asarray(value)
        if _is_fancy(key):
            zs = np.unique(np.asarray((key if isinstance(key, tuple) else (key,))[0]))
            self.array.vindex[key] = value
            if value.any():
                with self._guard:
                    self._nonzero.update(int(z) % self.shape[0] for z in zs)
            return
        if not isinstance(key, tuple):
            key = (key,)
        self.array[key] = value
        first = key[0] if key else slice(None)
        if isinstance(first, slice):
            zs = set(range(self.shape[0])[first])
            whole = False
        else:
            zs = {int(first) % self.shape[0]}
            whole = all(isinstance(k, slice) and k == slice(None) for k in key[1:])
        with self._guard:
            if value.any():
                self._nonzero.update(zs)
            elif whole:  # a whole slice written with zeros: it holds no labels any more
                self._nonzero.difference_update(zs)

    def nonzero_slices(self) -> list[int]:
        with self._guard:
            return sorted(self._nonzero)

    def scratch_copy(self) -> ZarrLabels:
        copy = memory_label_store(self.shape, self.dtype)
        zs = self.nonzero_slices()
        for z in zs:
            copy.array[z] = self.array[z]
        return ZarrLabels(copy.array, nonzero=zs)

    def to_dask(self) -> Any:
        """The labels as a dask array on the zarr array's chunks."""
        import dask.array as da

        return da.from_zarr(self.array)

    def __repr__(self) -> str:
        return f"ZarrLabels(shape={self.shape}, dtype={self.dtype}, store={self.array.store!r})"


def _chunks(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """One chunk per slice (the session writes whole slices)."""
    return (1, int(shape[1]), int(shape[2]))


def memory_label_store(shape: tuple[int, int, int], dtype: object = DEFAULT_DTYPE) -> ZarrLabels:
    """An empty (z, y, x) label volume in a compressed in-memory zarr store."""
    import zarr
    from zarr.storage import MemoryStore

    shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
    array = zarr.create_array(
        MemoryStore(), shape=shape, chunks=_chunks(shape), dtype=np.dtype(dtype), fill_value=0
    )
    return ZarrLabels(array, nonzero=())


def _label_array_at(path: Path) -> Any:
    """The 3D label array of an existing store: a plain array, or level 0 of an OME-Zarr
    (label) image whose non-space axes have size 1."""
    import zarr

    try:
        node = zarr.open(store=str(path), mode="r+")
    except Exception as exc:
        raise VolumeReadError(
            f"could not open the labels store {path}: {describe_exception(exc)}"
        ) from exc
    if isinstance(node, zarr.Array):
        return node
    attrs = ome_attrs(dict(node.attrs))
    ms = attrs.get("multiscales")
    if isinstance(ms, list) and ms and isinstance(ms[0], dict) and ms[0].get("datasets"):
        array = node[str(ms[0]["datasets"][0]["path"])]
        if sum(int(n) != 1 for n in array.shape) <= 3 and array.ndim == 3:
            return array
    raise VolumeReadError(
        f"{path} is a zarr group, not a 3D label array; give a new path (slicesam creates "
        "the store) or the path of a (z, y, x) zarr array"
    )


def open_label_store(
    path: str | os.PathLike[str],
    shape: tuple[int, int, int],
    dtype: object = DEFAULT_DTYPE,
) -> ZarrLabels:
    """Open the (z, y, x) label store at ``path``, or create it there (zarr v3, one chunk
    per slice, zstd, fill 0) when nothing exists yet.

    An existing store must be a zarr array (or an OME-Zarr label image with a 3D level 0)
    of an unsigned integer dtype and of ``shape``; its labels are kept and become objects.
    It is scanned once, slice by slice, for the slices that hold labels.

    Raises:
        VolumeReadError: ``path`` is something else, or the store's shape/dtype do not fit.
    """
    import zarr

    p = Path(os.fspath(path)).expanduser()
    shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
    if p.exists() and not (p.is_dir() and not any(p.iterdir())):
        if not is_zarr_store(p):
            raise VolumeReadError(
                f"labels store {p} exists and is not a zarr store; give a new path or an "
                "existing zarr label array"
            )
        array = _label_array_at(p)
        if tuple(int(s) for s in array.shape) != shape:
            raise VolumeReadError(
                f"labels store {p} has shape {tuple(array.shape)}, the volume has {shape} (z, y, x)"
            )
        kind = np.dtype(array.dtype).kind
        if kind != "u":
            raise VolumeReadError(
                f"labels store {p} holds {array.dtype}; labels must be unsigned integers"
            )
        return ZarrLabels(array)
    try:
        array = zarr.create_array(
            str(p), shape=shape, chunks=_chunks(shape), dtype=np.dtype(dtype), fill_value=0
        )
    except Exception as exc:
        raise VolumeReadError(
            f"could not create the labels store {p}: {describe_exception(exc)}"
        ) from exc
    return ZarrLabels(array, nonzero=())


# --------------------------------------------------------------------------- OME-Zarr output


def _out_dtype(dtype: np.dtype) -> np.dtype:
    """The unsigned dtype labels of ``dtype`` are written as (the rules of
    :func:`slicesam.io.writer.as_label_array`, decided from the dtype alone)."""
    if dtype.kind == "b":
        return np.dtype(np.uint8)
    if dtype.kind == "u" and dtype.itemsize <= 4:
        return dtype.newbyteorder("=")
    if dtype.kind == "i" and dtype.itemsize <= 4:
        return np.dtype(f"uint{8 * dtype.itemsize}")
    if dtype.kind in "uif":
        return np.dtype(np.uint32)
    raise VolumeWriteError(f"labels must be an integer array, got dtype {dtype}")


def _as_out(z: int, plane: np.ndarray, out: np.ndarray | np.dtype) -> np.ndarray:
    """One (y, x) slice checked and cast to the output dtype."""
    out = np.dtype(out)
    if plane.dtype.kind == "b" or plane.dtype == out:
        return plane.astype(out, copy=False)
    if plane.dtype.kind == "f" and (
        not np.isfinite(plane).all() or not np.array_equal(plane, np.round(plane))
    ):
        raise VolumeWriteError(
            f"labels slice z={z} holds non-integral or non-finite values; labels must be integers"
        )
    if plane.size and plane.min() < 0:
        raise VolumeWriteError(f"labels must be non-negative; slice z={z} has {plane.min()}")
    if plane.size and plane.max() > np.iinfo(out).max:
        raise VolumeWriteError(f"label value {plane.max()} on slice z={z} does not fit in {out}")
    return plane.astype(out)


def _slices_to_write(labels: Any) -> Iterable[int]:
    if isinstance(labels, SliceStore):
        return labels.nonzero_slices()
    return range(int(labels.shape[0]))


def _label_metadata(
    version: str,
    names: Mapping[int, str] | None,
    colors: Mapping[int, tuple[int, int, int]] | None,
    source: str | None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"version": version} if version == "0.4" else {}
    if colors:
        meta["colors"] = [
            {"label-value": int(k), "rgba": [*(int(c) for c in rgb[:3]), 255]}
            for k, rgb in sorted(colors.items())
        ]
    if names:
        meta["properties"] = [
            {"label-value": int(k), "name": str(v)} for k, v in sorted(names.items())
        ]
    if source is not None:
        meta["source"] = {"image": source}
    return meta


def _multiscales(
    version: str, name: str, axes: list[dict[str, str]], scale: list[float], shift: list[float]
) -> list[dict[str, Any]]:
    transforms: list[dict[str, Any]] = [{"type": "scale", "scale": scale}]
    if any(shift):
        transforms.append({"type": "translation", "translation": shift})
    ms: dict[str, Any] = {
        "name": name,
        "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": transforms}],
    }
    if version == "0.4":
        ms["version"] = "0.4"
    return [ms]


def _attrs(version: str, body: dict[str, Any]) -> dict[str, Any]:
    """Group attributes: NGFF 0.5 nests them under "ome" (with the version), 0.4 does not."""
    return {"ome": {"version": version, **body}} if version == "0.5" else body


def _write_label_image(
    folder: Path,
    labels: Any,
    *,
    zarr_format: int,
    version: str,
    shape: tuple[int, ...],
    zyx_axes: tuple[int, int, int],
    axes: list[dict[str, str]],
    scale: list[float],
    shift: list[float],
    name: str,
    label_meta: dict[str, Any],
) -> None:
    """Write a new label image group at ``folder``: multiscales (one level, "0") +
    image-label metadata, array of ``shape`` with labels' (z, y, x) on ``zyx_axes``."""
    import zarr

    out = _out_dtype(np.dtype(labels.dtype))
    chunks = tuple(
        int(shape[i]) if i in zyx_axes[1:] else 1 for i in range(len(shape))
    )  # one chunk per z slice
    group = zarr.open_group(str(folder), mode="w", zarr_format=zarr_format)
    key_encoding: dict[str, Any] | None = (
        {"name": "v2", "separator": "/"} if zarr_format == 2 else None
    )  # NGFF 0.4: "/"-separated chunk keys
    array = group.create_array(
        "0",
        shape=shape,
        chunks=chunks,
        dtype=out,
        fill_value=0,
        chunk_key_encoding=key_encoding,
        dimension_names=[a["name"] for a in axes] if zarr_format == 3 else None,
    )
    zi, yi, xi = zyx_axes
    for z in _slices_to_write(labels):
        plane = np.asarray(labels[z])
        if not plane.any():
            continue
        plane = _as_out(z, plane, out)
        if yi > xi:
            plane = plane.T
        index = tuple(
            z if i == zi else slice(None) if i in (yi, xi) else 0 for i in range(len(shape))
        )
        array[index] = plane
    group.attrs.update(
        _attrs(
            version,
            {
                "multiscales": _multiscales(version, name, axes, scale, shift),
                "image-label": label_meta,
            },
        )
    )


def _axes_json(names: Iterable[str], types: Iterable[str], units: Iterable[str | None]) -> list:
    out = []
    for n, t, u in zip(names, types, units):
        entry = {"name": n}
        if t:
            entry["type"] = t
        if u:
            entry["unit"] = u
        out.append(entry)
    return out


def _check_shape(p: Path, labels: Any, like: Volume) -> None:
    if tuple(int(s) for s in labels.shape) != like.shape:
        raise VolumeWriteError(
            f"labels shape {tuple(labels.shape)} does not match the image shape {like.shape} "
            f"(z, y, x); nothing was written to {p.name}. Labels need one value per image voxel"
        )


def _temp_sibling(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")


def _replace_folder(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target``, replacing an earlier folder there (moved aside first)."""
    old = None
    if target.exists():
        old = _temp_sibling(target)
        target.rename(old)
    try:
        tmp.rename(target)
    except OSError:
        if old is not None:
            old.rename(target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_ome_zarr_labels(
    path: Path,
    labels: Any,
    like: Volume,
    *,
    names: Mapping[int, str] | None = None,
    colors: Mapping[int, tuple[int, int, int]] | None = None,
    name: str = LABEL_NAME,
) -> Path:
    """Save a (z, y, x) label volume as an OME-NGFF label image.

    Args:
        path: an OME-Zarr image store (the labels go to ``<path>/labels/<name>``, next to the
            image, with its axes, level-0 scale and translation, zarr format and NGFF
            version; non-space axes get size 1), or any other ``.zarr``/``.ome.zarr`` path
            (a label image of its own: NGFF 0.4, zarr v2, axes z, y, x in ``like.unit``,
            scale ``like.spacing``; an earlier label image there is replaced).
        labels: (z, y, x) integer labels with ``like.shape``: a numpy array or a
            :class:`~slicesam.io.lazy.SliceStore` (only its labelled slices are read).
        like: the image the labels belong to.
        names: label value -> name, written as ``image-label`` ``properties``.
        colors: label value -> RGB 0-255, written as ``image-label`` ``colors``.
        name: the label image's name in the image's ``labels`` group.

    The label image is written to a temporary folder and renamed into place, and the
    ``labels`` group's list is updated after it, so readers never see half a label image.

    Returns:
        the folder of the label image written.

    Raises:
        VolumeWriteError: shape mismatch, bad label values, an image store whose grid is not
            ``like``'s, or an I/O failure.
    """
    import zarr

    _check_shape(path, labels, like)
    image = None
    if is_zarr_store(path):
        try:
            root = zarr.open(store=str(path), mode="r")
            if isinstance(root, zarr.Group):
                attrs = ome_attrs(dict(root.attrs))
                if "image-label" not in attrs:
                    image = find_image(path, root)
        except VolumeReadError:
            image = None
        except Exception as exc:
            raise VolumeWriteError(f"cannot read the zarr store {path}: {exc}") from exc
        if image is None and not _is_label_image(path):
            raise VolumeWriteError(
                f"{path} is a zarr store but neither an OME-Zarr image nor a label image "
                "slicesam wrote; nothing was written (choose a new path)"
            )
    try:
        if image is not None:
            return _write_next_to_image(path, image, labels, like, names, colors, name)
        return _write_standalone(path, labels, like, names, colors, name)
    except (VolumeWriteError, VolumeReadError):
        raise
    except Exception as exc:
        raise VolumeWriteError(f"could not write {path}: {describe_exception(exc)}") from exc


def _is_label_image(path: Path) -> bool:
    import zarr

    try:
        root = zarr.open(store=str(path), mode="r")
    except Exception:
        return False
    return isinstance(root, zarr.Group) and "image-label" in ome_attrs(dict(root.attrs))


def _write_standalone(
    path: Path,
    labels: Any,
    like: Volume,
    names: Mapping[int, str] | None,
    colors: Mapping[int, tuple[int, int, int]] | None,
    name: str,
) -> Path:
    unit = UNITS_NGFF.get(like.unit)
    axes = _axes_json("zyx", ["space"] * 3, [unit] * 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    try:
        _write_label_image(
            tmp,
            labels,
            zarr_format=2,
            version="0.4",
            shape=like.shape,
            zyx_axes=(0, 1, 2),
            axes=axes,
            scale=[float(s) for s in like.spacing],
            shift=[0.0, 0.0, 0.0],
            name=name,
            label_meta=_label_metadata("0.4", names, colors, None),
        )
        _replace_folder(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _write_next_to_image(
    path: Path,
    found: tuple[Any, str, dict[str, Any]],
    labels: Any,
    like: Volume,
    names: Mapping[int, str] | None,
    colors: Mapping[int, tuple[int, int, int]] | None,
    name: str,
) -> Path:
    import zarr

    array, geometry = image_geometry(path, *found)
    image_path = found[1]
    zyx_shape = tuple(int(array.shape[i]) for i in geometry.zyx_axes)
    if zyx_shape != like.shape:
        raise VolumeWriteError(
            f"{path} holds an image of shape {zyx_shape} (z, y, x), the labels have "
            f"{like.shape}; nothing was written"
        )
    shape = tuple(int(n) if i in geometry.zyx_axes else 1 for i, n in enumerate(array.shape))
    version = "0.5" if geometry.zarr_format == 3 else "0.4"
    scale = [float(s) if i in geometry.zyx_axes else 1.0 for i, s in enumerate(geometry.scale)]
    shift = [
        float(t) if i in geometry.zyx_axes else 0.0 for i, t in enumerate(geometry.translation)
    ]
    axes = _axes_json(geometry.axes, geometry.axis_types, geometry.units)
    image_root = path / image_path if image_path else path
    labels_dir = image_root / "labels"
    labels_group = zarr.open_group(str(labels_dir), mode="a", zarr_format=geometry.zarr_format)
    target = labels_dir / name
    tmp = _temp_sibling(target)
    try:
        _write_label_image(
            tmp,
            labels,
            zarr_format=geometry.zarr_format,
            version=version,
            shape=shape,
            zyx_axes=geometry.zyx_axes,
            axes=axes,
            scale=scale,
            shift=shift,
            name=name,
            label_meta=_label_metadata(version, names, colors, "../../"),
        )
        _replace_folder(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    listed = ome_attrs(dict(labels_group.attrs)).get("labels") or []
    if name not in listed:
        listed = [*listed, name]
    labels_group.attrs.update(_attrs(version, {"labels": list(listed)}))
    return target
