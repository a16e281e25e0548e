"""napari layers of DICOM: a series folder as an image layer (its SEGs as labels layers), and a
DICOM-SEG file as a labels layer on the grid of the series it references.

Labels layers of a SEG carry the segment names (``features`` "name", shown by napari on hover,
and ``metadata["slicesam_names"]``) and colours, and the series :class:`~slicesam.io.Volume` in
``metadata["slicesam_volume"]``, so that saving them again (``.dcm``, ``.nii.gz``) keeps the
series geometry. Imports no torch, napari or Qt.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from slicesam._napari.layer_data import LayerDataTuple, volume_layer_data
from slicesam._napari.metadata_keys import NAMES_KEY
from slicesam.errors import VolumeReadError
from slicesam.io import Volume, load_volume
from slicesam.io.dicom_folder import folder_contents, looks_like_dicom_folder
from slicesam.io.dicom_seg import SegReference, read_dicom_seg, seg_reference


def series_layers(folder: Path) -> list[LayerDataTuple]:
    """Layer data of a DICOM folder: one image layer per image series, then one labels layer
    per DICOM-SEG in the folder that references one of them."""
    contents = folder_contents(folder)
    if not contents.image_series:
        if contents.segmentations:
            return [seg_layer(contents.segmentations[0])]
        raise VolumeReadError(f"{folder} holds no DICOM image series")
    several = len(contents.image_series) > 1
    layers, volumes = [], []
    for uid, description in contents.image_series:
        volume = load_volume(folder, series=uid if several else None)
        name = f"{folder.name} {description}".strip() if several else folder.name
        layers.append(volume_layer_data(volume, name))
        volumes.append(volume)
    for seg_file in contents.segmentations:
        ref = seg_reference(seg_file)
        match = next((v for v in volumes if _references(ref, v)), None)
        if match is not None:
            layers.append(labels_layer(seg_file, match))
    return layers


def _references(ref: SegReference, volume: Volume) -> bool:
    """Whether the SEG of ``ref`` segments ``volume`` (by series UID, else by its slices)."""
    geometry = volume.geometry
    if ref.series_uid and geometry.series_uid:
        return ref.series_uid == geometry.series_uid
    return bool(ref.sop_instance_uids) and ref.sop_instance_uids <= set(geometry.sop_instance_uids)


def _candidate_folders(seg_file: Path) -> list[Path]:
    """Where the series of a SEG file may be: its own folder, that folder's subfolders, and
    the folders beside it (e.g. ``study/seg.dcm`` + ``study/CT/``, ``study/SEG/`` +
    ``study/CT/``)."""
    here = seg_file.parent
    found = [here]
    for root in (here, here.parent):
        try:
            found += sorted(p for p in root.iterdir() if p.is_dir() and p not in found)
        except OSError:
            continue
    return [p for p in found if looks_like_dicom_folder(p)]


def find_series_volume(seg_file: Path) -> Volume:
    """The series a SEG file references, loaded from a folder next to it.

    Raises:
        VolumeReadError: the file is not a SEG, or no folder next to it holds its series.
    """
    ref = seg_reference(seg_file)
    for folder in _candidate_folders(seg_file):
        try:
            contents = folder_contents(folder)
        except VolumeReadError:
            continue
        for uid, _description in contents.image_series:
            several = len(contents.image_series) > 1
            if ref.series_uid and uid and uid != ref.series_uid:
                continue
            volume = load_volume(folder, series=uid if several else None)
            if _references(ref, volume):
                return volume
    raise VolumeReadError(
        f"{seg_file.name} segments the series {ref.series_uid or '(no UID)'}, which is not in "
        f"{seg_file.parent} nor in a folder beside it; put the SEG next to its series folder, "
        "or open the series folder (its SEGs open with it)"
    )


def seg_layer(seg_file: str | os.PathLike[str]) -> LayerDataTuple:
    """Labels layer data of a DICOM-SEG file on the grid of its series (found beside it)."""
    path = Path(os.fspath(seg_file))
    return labels_layer(path, find_series_volume(path))


def labels_layer(seg_file: Path, volume: Volume) -> LayerDataTuple:
    """Labels layer data of ``seg_file`` read onto ``volume``'s (z, y, x) grid: the series'
    layer settings (scale, units, source volume) with the segments' names and colours."""
    seg = read_dicom_seg(seg_file, volume.geometry)
    name = seg_file.stem if seg_file.suffix.lower() == ".dcm" else seg_file.name
    _data, kwargs, _kind = volume_layer_data(volume, name, as_labels=True)
    values = sorted(seg.names)
    kwargs["metadata"][NAMES_KEY] = dict(seg.names)
    kwargs["features"] = {
        "index": [0, *values],
        "name": ["background", *(seg.names[v] for v in values)],
    }
    if values and all(v in seg.colors for v in values):
        colormap: dict[Any, Any] = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0)}
        for value, rgb in seg.colors.items():
            colormap[value] = (*(c / 255.0 for c in rgb), 1.0)
        kwargs["colormap"] = colormap
    return np.asarray(seg.labels), kwargs, "labels"
