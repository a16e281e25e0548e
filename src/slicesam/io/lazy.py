"""Lazy (z, y, x) volumes: arrays that read only the slices asked for.

A :class:`~slicesam.io.volume.Volume`'s ``data`` is either an in-memory ``numpy.ndarray`` or a
:class:`LazyArray`: an object with ``shape``, ``dtype`` and ``ndim`` whose indexing (by ints and
slices, as numpy) reads just the voxels indexed from the file or store and returns a numpy
array. The engine asks such a volume for one slice at a time (``data[z]``) and for the small
sample of slices :func:`slice_sample` picks for the intensity window; it never reads the whole.

- :class:`SourceSlices` puts a (z, y, x) view (channel taken, axes permuted and flipped) on a
  sliceable source: a zarr array, tifffile's ``aszarr()`` store opened by zarr, or nibabel's
  array proxy (``img.dataobj``).
- :class:`NonFiniteGuard` refuses or replaces NaN/inf voxels slice by slice, as the eager
  readers do for the whole volume.
- :class:`SliceStore` is the writable kind, for label volumes kept on disk
  (:class:`slicesam.io.zarr_labels.ZarrLabels`).
- :func:`layer_data` gives napari what it shows lazily (a dask array).

No zarr, dask or nibabel import at module level.
"""

from __future__ import annotations

import math
import operator
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np

from slicesam.errors import VolumeReadError
from slicesam.io._common import describe_exception

#: The most slices :func:`slice_sample` takes (the window of a lazy volume comes from them).
SAMPLE_SLICES = 16
#: At most about this many voxels in a sample (fewer slices for big slices), at least 3 slices.
SAMPLE_VOXELS = 32 * 1024**2
#: Lazy TIFF/NIfTI reading starts at this many bytes of (z, y, x) voxels (``load_volume``).
LAZY_BYTES = 1024**3

Key = tuple[int | slice, int | slice, int | slice]


def is_lazy(data: object) -> bool:
    """Whether ``data`` is a lazy volume array (anything but an in-memory numpy array)."""
    return not isinstance(data, np.ndarray)


def wants_lazy(lazy: bool | None, nbytes: int) -> bool:
    """Whether a TIFF/NIfTI reader reads lazily: as ``lazy`` says, or when None, when the
    (z, y, x) voxels take more than :data:`LAZY_BYTES`."""
    return bool(lazy) if lazy is not None else int(nbytes) > LAZY_BYTES


def read_slice(data: Any, z: int) -> np.ndarray:
    """Slice ``z`` of a (z, y, x) array (numpy, :class:`LazyArray`, zarr, dask, ...) as a
    (y, x) numpy array."""
    return np.asarray(data[int(z)])


def sample_indices(n_slices: int, slice_voxels: int) -> list[int]:
    """The slices a sample of a (z, y, x) volume reads: evenly spaced from first to last,
    at most :data:`SAMPLE_SLICES` and about :data:`SAMPLE_VOXELS` voxels (at least 3 slices,
    or all when there are fewer)."""
    if n_slices <= 0:
        return []
    k = SAMPLE_VOXELS // max(1, int(slice_voxels))
    k = max(3, min(SAMPLE_SLICES, k, n_slices))
    k = min(k, n_slices)
    return sorted({int(round(v)) for v in np.linspace(0, n_slices - 1, k)})


def slice_sample(data: Any) -> np.ndarray:
    """The voxels statistics of ``data`` (z, y, x) are computed from: an in-memory array
    itself (every voxel, unchanged), else the slices of :func:`sample_indices` stacked as a
    (k, y, x) numpy array."""
    if not is_lazy(data):
        return data
    shape = tuple(int(s) for s in data.shape)
    zs = sample_indices(shape[0], math.prod(shape[1:]))
    return np.stack([read_slice(data, z) for z in zs]) if zs else np.zeros((0, *shape[1:]))


def _normalize_key(key: object, shape: tuple[int, ...]) -> Key:
    """A numpy basic index of a 3D array as three ints/slices (ints made non-negative)."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = (slice(None),) * (len(shape) - (len(key) - 1))
        key = key[:i] + fill + key[i + 1 :]
    if len(key) > len(shape):
        raise IndexError(f"too many indices for a {len(shape)}D array: {key!r}")
    key = key + (slice(None),) * (len(shape) - len(key))
    out: list[int | slice] = []
    for k, n in zip(key, shape):
        if isinstance(k, slice):
            out.append(k)
            continue
        try:
            i = operator.index(k)
        except TypeError:
            raise IndexError(
                f"a lazy volume takes ints and slices as indices, got {type(k).__name__}"
            ) from None
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of bounds for an axis of size {n}")
        out.append(i % n)
    return tuple(out)  # type: ignore[return-value]


class LazyArray(ABC):
    """A read-only (z, y, x) array that reads only what is indexed.

    Indexing with ints and slices (numpy basic indexing) returns a numpy array;
    ``np.asarray(lazy)`` reads every slice (avoid it on big volumes).
    """

    ndim = 3

    @property
    @abstractmethod
    def shape(self) -> tuple[int, int, int]:
        """(z, y, x) shape."""

    @property
    @abstractmethod
    def dtype(self) -> np.dtype:
        """dtype of what indexing returns."""

    @abstractmethod
    def read(self, key: Key) -> np.ndarray:
        """The voxels of a normalised key (three ints/slices, ints non-negative)."""

    def __getitem__(self, key: object) -> np.ndarray:
        return self.read(_normalize_key(key, self.shape))

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        for z in range(self.shape[0]):
            yield self[z]

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        out = np.empty(self.shape, dtype=self.dtype)
        for z in range(self.shape[0]):
            out[z] = self[z]
        return out if dtype is None else out.astype(dtype, copy=False)

    def to_dask(self) -> Any:
        """A dask array of this volume, one chunk per slice, read when computed (what napari
        shows lazily)."""
        import dask.array as da

        return da.from_array(
            self,
            chunks=(1, *self.shape[1:]),
            asarray=False,
            fancy=False,
            lock=False,
            meta=np.empty((0, 0, 0), dtype=self.dtype),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"


#: What a source axis becomes: an int (that index is taken: a channel, a singleton) or
#: ``(output axis "z" | "y" | "x", flipped)``.
AxisPlan = int | tuple[str, bool]


def _source_index(k: int | slice, n: int, flip: bool) -> tuple[int | slice, bool]:
    """The index into a source axis of size ``n`` for the output index ``k`` and whether
    the axis read must then be reversed."""
    if isinstance(k, int):
        return (n - 1 - k if flip else k), False
    r = range(n)[k]
    if len(r) == 0:
        return slice(0, 0), False
    first, last = r[0], r[-1]
    step = r.step
    if flip:
        first, last, step = n - 1 - first, n - 1 - last, -step
    lo, hi = min(first, last), max(first, last)
    return slice(lo, hi + 1, abs(step)), step < 0


class SourceSlices(LazyArray):
    """A (z, y, x) view of a sliceable source array, read on demand.

    Args:
        source: anything indexed by a tuple of ints/slices with numpy semantics (a zarr
            array, nibabel's ``img.dataobj``, ...), of any number of dimensions.
        plan: one entry per source axis (:data:`AxisPlan`): an int takes that index (a
            channel, a singleton), ``("z" | "y" | "x", flipped)`` makes it that output axis,
            reversed when ``flipped``.
        dtype: the dtype of what is returned (the source's when None).
        convert: applied to every block read (e.g. bool -> uint8, scaling to float32); must
            return ``dtype``.
        lock: serialise reads (for sources that share a file handle, e.g. tifffile's store).
        origin: what the data came from, for messages.
        owner: an object kept alive (and open) as long as this view, e.g. the
            ``tifffile.TiffFile`` whose store ``source`` reads.
    """

    def __init__(
        self,
        source: Any,
        plan: Sequence[AxisPlan],
        *,
        dtype: np.dtype | None = None,
        convert: Callable[[np.ndarray], np.ndarray] | None = None,
        lock: bool = False,
        origin: str = "",
        owner: object = None,
    ) -> None:
        src_shape = tuple(int(s) for s in source.shape)
        if len(plan) != len(src_shape):
            raise ValueError(f"plan {plan!r} does not match the source shape {src_shape}")
        outs = [p[0] for p in plan if not isinstance(p, int)]
        if sorted(outs) != ["x", "y", "z"]:
            raise ValueError(f"plan {plan!r} must name each of z, y, x once")
        self.source = source
        self.plan = tuple(plan)
        self.origin = origin
        self.owner = owner
        self._src_shape = src_shape
        sizes = {p[0]: n for p, n in zip(plan, src_shape) if not isinstance(p, int)}
        self._shape = (sizes["z"], sizes["y"], sizes["x"])
        self._dtype = np.dtype(dtype if dtype is not None else source.dtype)
        self._convert = convert
        self._lock = threading.Lock() if lock else nullcontext()

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def read(self, key: Key) -> np.ndarray:
        try:
            return self._read(key)
        except (IndexError, VolumeReadError):
            raise
        except Exception as exc:  # codec errors, truncated files, missing chunks, I/O
            where = f"slice z={key[0]}" if isinstance(key[0], int) else "the slices read"
            raise VolumeReadError(
                f"could not read {where} of {self.origin or 'the volume'} (the file or store "
                f"may be damaged or truncated): {describe_exception(exc)}"
            ) from exc

    def _read(self, key: Key) -> np.ndarray:
        by_axis = dict(zip("zyx", key))
        index: list[int | slice] = []
        reverse: list[bool] = []
        kept: list[str] = []  # output axes in source order, for those not dropped
        for p, n in zip(self.plan, self._src_shape):
            if isinstance(p, int):
                index.append(p)
                continue
            axis, flip = p
            ix, rev = _source_index(by_axis[axis], n, flip)
            index.append(ix)
            if not isinstance(ix, int):
                kept.append(axis)
                reverse.append(rev)
        with self._lock:
            block = np.asarray(self.source[tuple(index)])
        flips = tuple(i for i, r in enumerate(reverse) if r)
        if flips:
            block = np.flip(block, axis=flips)
        order = [kept.index(a) for a in "zyx" if a in kept]
        block = np.transpose(block, order) if order != sorted(order) else block
        if not block.dtype.isnative:
            block = block.astype(block.dtype.newbyteorder("="))
        if self._convert is not None:
            block = self._convert(block)
        return np.ascontiguousarray(block, dtype=self._dtype)


class NonFiniteGuard(LazyArray):
    """A float (z, y, x) :class:`LazyArray` whose NaN/inf voxels are refused or replaced
    when read (the lazy counterpart of ``load_volume``'s whole-volume check).

    Args:
        inner: the lazy array.
        fill: value replacing non-finite voxels (cast to the dtype); None: a block holding
            one raises :class:`~slicesam.errors.VolumeReadError`.
        origin: the file, for the message.
    """

    def __init__(self, inner: LazyArray, fill: float | None, origin: str) -> None:
        self.inner = inner
        self.fill = fill
        self.origin = origin

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.inner.shape

    @property
    def dtype(self) -> np.dtype:
        return self.inner.dtype

    def read(self, key: Key) -> np.ndarray:
        block = self.inner.read(key)
        finite = np.isfinite(block)
        if finite.all():
            return block
        if self.fill is None:
            n_bad = int(block.size - np.count_nonzero(finite))
            where = f"slice z={key[0]}" if isinstance(key[0], int) else "the slices read"
            raise VolumeReadError(
                f"{self.origin} has {n_bad} non-finite voxels (NaN or inf) in {where}; pass "
                "fill_nonfinite=<value> to replace them (e.g. load_volume(path, "
                "fill_nonfinite=0); command line: --fill-nonfinite 0)"
            )
        out = block.copy()
        out[~finite] = self.fill
        return out


class SliceStore(LazyArray):
    """A writable (z, y, x) label volume kept outside memory (e.g. a zarr store on disk).

    Besides reading, it takes writes (``store[z] = slice_2d``, or any basic index) and knows
    which slices may hold non-zero labels, so that whole-volume questions (which values are
    present, where an object is) read only those.
    """

    @abstractmethod
    def __setitem__(self, key: object, value: np.ndarray) -> None:
        """Write ``value`` at ``key`` (numpy basic indexing)."""

    @abstractmethod
    def nonzero_slices(self) -> list[int]:
        """Sorted slices that may hold a non-zero voxel (every slice that does is listed;
        a listed one may have been cleared since)."""

    @abstractmethod
    def scratch_copy(self) -> SliceStore:
        """A copy of the current content, kept in memory, compressed (same shape, dtype)."""


def as_volume_data(obj: Any) -> np.ndarray | LazyArray:
    """Volume data from what a user passed: a numpy array or :class:`LazyArray` as it is;
    another 3D array-like with a numpy dtype and numpy indexing (zarr, dask, h5py) wrapped
    so that it is read slice by slice (:class:`SourceSlices`); anything else through
    ``np.asarray``."""
    if isinstance(obj, (np.ndarray, LazyArray)):
        return obj
    try:
        shape = tuple(int(s) for s in obj.shape)
        np.dtype(obj.dtype)
        indexable = hasattr(obj, "__getitem__")
    except (AttributeError, TypeError, ValueError):
        return np.asarray(obj)
    if len(shape) != 3 or not indexable:
        return np.asarray(obj)
    return SourceSlices(obj, [("z", False), ("y", False), ("x", False)], origin=type(obj).__name__)


def layer_data(data: Any) -> Any:
    """What napari should show for a volume's ``data``: an in-memory array as it is, a
    :class:`LazyArray` as a dask array (one chunk per slice, read when displayed)."""
    return data.to_dask() if isinstance(data, LazyArray) else data
