"""napari reader hook: NIfTI (``.nii``, ``.nii.gz``) and TIFF (``.tif``, ``.tiff``) volumes,
zarr / OME-Zarr stores, folders of DICOM series and DICOM-SEG files (``.dcm``; see
:mod:`slicesam._napari.dicom_layers`). A volume read lazily (zarr; TIFF/NIfTI over 1 GiB) is
shown as a dask array, so napari reads only the slices it draws.

Each file becomes one image layer whose data is the (z, y, x) array of
:func:`slicesam.io.load_volume` (NIfTI reoriented to canonical LPS), with ``scale`` = the voxel
spacing (z, y, x) and the :class:`~slicesam.io.Volume` itself in ``metadata["slicesam_volume"]``
(its source path in ``metadata["slicesam_path"]``), so that labels drawn on it can be written
back with the source geometry (see :mod:`slicesam._napari.writer`).

- Integer files whose name contains "label" or "seg" open as a labels layer.
- Multichannel files (NIfTI 4th dimension, TIFF ``C``/``S``/``T`` axis) open as one image
  layer per channel, named ``"<stem> [c=N]"``. With more than :data:`MAX_CHANNELS` channels
  (e.g. a long time series) only channel 0 is opened, and a warning (a napari notification)
  names the axis and says how to open another channel.
- Unreadable files raise :class:`~slicesam.errors.SliceSamError` with a message for the user.

Imports no torch, napari or Qt.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from slicesam._napari.layer_data import LayerDataTuple, volume_layer_data
from slicesam._napari.metadata_keys import (  # noqa: F401  (NAMES_KEY: the writer imports it here)
    NAMES_KEY,
    NOTE_KEY,
    PATH_KEY,
    VOLUME_KEY,
)
from slicesam.io import SUPPORTED_SUFFIXES, Volume, load_volume
from slicesam.io.lazy import is_lazy

PathOrPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
ReaderFunction = Callable[[PathOrPaths], list[LayerDataTuple]]

#: Lower-case file-name fragments that mark an integer volume as a label map.
LABEL_HINTS = ("label", "seg")

#: Most channels opened as separate layers; beyond that (e.g. a long time series) the reader
#: opens channel 0 only and says how to load another one.
MAX_CHANNELS = 16

#: Colormaps of the channel layers of a multichannel file (cycled).
CHANNEL_COLORMAPS = ("green", "magenta", "cyan", "yellow", "red", "blue")


def _as_paths(path: PathOrPaths) -> list[str]:
    if isinstance(path, (str, os.PathLike)):
        return [os.fspath(path)]
    return [os.fspath(p) for p in path]


def is_supported(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` ends (case-insensitively) with a volume ending slicesam reads."""
    return os.fspath(path).lower().endswith(SUPPORTED_SUFFIXES)


def file_stem(path: str | os.PathLike[str]) -> str:
    """File name without its format ending: ``"ct.nii.gz"`` -> ``"ct"``."""
    name = Path(os.fspath(path)).name
    for suffix in SUPPORTED_SUFFIXES:  # ".nii.gz" is listed before ".nii"
        if name.lower().endswith(suffix):
            return name[: len(name) - len(suffix)] or name
    return Path(name).stem


def looks_like_labels(path: str | os.PathLike[str], data: np.ndarray) -> bool:
    """Integer (z, y, x) data in a file whose name contains "label" or "seg" (a lazy volume
    opens as an image: the widget segments it)."""
    name = Path(os.fspath(path)).name.lower()
    if is_lazy(data):
        return False
    return data.dtype.kind in "iu" and any(hint in name for hint in LABEL_HINTS)


def channel_count(volume: Volume) -> int:
    """Number of channels of the file ``volume`` came from (1 for a plain 3D volume).

    ``volume`` must have been loaded with an explicit ``channel`` (e.g. ``channel=0``):
    ``meta["channel"]`` is then set for multichannel files only. The count is
    ``meta["n_channels"]`` when the reader set it, else the source size divided by the size
    of one (z, y, x) volume.
    """
    if volume.meta.get("channel") is None:
        return 1
    if volume.meta.get("n_channels"):
        return max(int(volume.meta["n_channels"]), 1)
    source_shape = volume.meta.get("source_shape")
    if not source_shape:
        return 1
    n = int(np.prod(source_shape)) // max(int(np.prod(volume.shape)), 1)
    return max(n, 1)


def only_first_channel_note(path: Path, volume: Volume, n: int) -> str:
    """The message shown when a file with ``n`` > :data:`MAX_CHANNELS` channels opens as
    channel 0 only: which axis was picked and how to open another channel."""
    axis = volume.meta.get("channel_axis") or "its non-spatial axis"
    return (
        f"{path.name} has {n} channels/time points along {axis}; opened channel 0 only "
        f"(more than {MAX_CHANNELS}). To open channel N, in the napari console: import "
        f"slicesam; viewer.add_image(slicesam.load_volume({str(path)!r}, channel=N).data); "
        "on the command line: --channel N"
    )


def read_volume(path: str | os.PathLike[str]) -> list[LayerDataTuple]:
    """Read one NIfTI/TIFF file into layer data tuples (one per channel).

    A file with more than :data:`MAX_CHANNELS` channels gives one layer, channel 0, named
    ``"<stem> [c=0 of N]"``; a :class:`UserWarning` (shown by napari as a notification) and
    the layer's ``metadata["slicesam_note"]`` say which axis was picked and how to open
    another channel.

    Raises:
        SliceSamError: unreadable or unsupported file (the message says why).
    """
    p = Path(os.fspath(path)).expanduser()
    stem = file_stem(p)
    first = load_volume(p, channel=0)  # channel=0 is valid for single-channel files too
    n = channel_count(first)
    if n == 1:
        return [volume_layer_data(first, stem, as_labels=looks_like_labels(p, first.data))]
    if n > MAX_CHANNELS:
        note = only_first_channel_note(p, first, n)
        warnings.warn(note, UserWarning, stacklevel=2)
        data, kwargs, layer_type = volume_layer_data(first, f"{stem} [c=0 of {n}]")
        kwargs["metadata"][NOTE_KEY] = note
        return [(data, kwargs, layer_type)]
    layers = []
    for c in range(n):
        vol = first if c == 0 else load_volume(p, channel=c)
        colormap = CHANNEL_COLORMAPS[c % len(CHANNEL_COLORMAPS)]
        layers.append(
            volume_layer_data(vol, f"{stem} [c={c}]", colormap=colormap, blending="additive")
        )
    return layers


def _is_dicom_seg_name(path: str) -> bool:
    return path.lower().endswith(".dcm") and not os.path.isdir(path)


def read_path(path: str | os.PathLike[str]) -> list[LayerDataTuple]:
    """Layer data tuples of one path: a DICOM folder (its image series, then its SEGs), a
    DICOM-SEG file (labels on its series' grid) or a NIfTI/TIFF file."""
    from slicesam._napari import dicom_layers

    p = os.fspath(path)
    if os.path.isdir(p) and _is_zarr(p):
        return read_volume(p)
    if os.path.isdir(p):
        folder = Path(p).expanduser()
        return dicom_layers.series_layers(folder)
    if _is_dicom_seg_name(p):
        return [dicom_layers.seg_layer(p)]
    return read_volume(p)


def read_volumes(path: PathOrPaths) -> list[LayerDataTuple]:
    """Reader function: every path in ``path`` (one path or a list) as layer data tuples."""
    layers: list[LayerDataTuple] = []
    for p in _as_paths(path):
        layers.extend(read_path(p))
    return layers


def _is_zarr(path: str) -> bool:
    """A zarr or OME-Zarr store (a folder with zarr metadata, or named ``*.zarr``)."""
    p = Path(path)
    markers = ("zarr.json", ".zarray", ".zgroup", ".zattrs")
    return p.name.lower().endswith(".zarr") or any((p / m).is_file() for m in markers)


def _readable(path: str) -> bool:
    if os.path.isdir(path) and _is_zarr(path):
        return True
    if os.path.isdir(path):
        from slicesam.io.dicom_folder import looks_like_dicom_folder

        return looks_like_dicom_folder(path)
    return is_supported(path) or _is_dicom_seg_name(path)


def get_reader(path: PathOrPaths) -> ReaderFunction | None:
    """napari ``get_reader`` hook: :func:`read_volumes` for NIfTI/TIFF files, DICOM-SEG files
    and folders holding DICOM files, else ``None``.

    A list of paths is accepted when every one of them is readable (each becomes its own
    layer(s); nothing is stacked).
    """
    paths = _as_paths(path)
    if not paths or not all(_readable(p) for p in paths):
        return None
    return read_volumes
