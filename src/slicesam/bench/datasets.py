"""Benchmark datasets: a folder with ``image.*``, ``labels.*`` and ``meta.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SliceSamError
from ..io import load_volume
from ..io.volume import Volume

#: Objects evaluated per dataset unless ``all_objects`` is asked for (BENCHMARK.md).
DEFAULT_MAX_OBJECTS = 10
#: The disjoint sets of structures of ``meta.json`` (BENCHMARK.md, "Splits"): reported figures,
#: the structures that decide whether a change is adopted, and the only ones a learned component
#: may be fitted on.
SPLITS = {
    "reported": "objects",
    "validation": "validation_objects",
    "training": "training_objects",
}


@dataclass
class Dataset:
    """One benchmark dataset, loaded.

    Attributes:
        name: folder name.
        image: the volume (z, y, x), NIfTI in LPS as ``load_volume`` gives it.
        labels: (z, y, x) integer ground truth on the image's grid.
        objects: label ids to evaluate (those of the split's ``meta.json`` list present in the
            labels).
        split: which set of structures: "reported", "validation" or "training".
        names: label id -> structure name.
        meta: the meta.json content.
    """

    name: str
    image: Volume
    labels: np.ndarray
    objects: list[int]
    names: dict[int, str]
    meta: dict
    split: str = "reported"


def _find(folder: Path, stem: str) -> Path:
    hits = sorted(p for p in folder.iterdir() if p.name.split(".")[0] == stem and p.is_file())
    if not hits:
        raise SliceSamError(f"benchmark dataset {folder} has no {stem}.* file")
    return hits[0]


def discover(root: str | Path, names: list[str] | None = None) -> list[Path]:
    """Dataset folders under ``root`` (those with a meta.json), optionally only ``names``."""
    root = Path(root)
    if not root.is_dir():
        raise SliceSamError(f"benchmark data folder {root} does not exist")
    found = sorted(p for p in root.iterdir() if (p / "meta.json").is_file())
    if names:
        known = {p.name: p for p in found}
        missing = [n for n in names if n not in known]
        if missing:
            raise SliceSamError(
                f"unknown dataset(s) {', '.join(missing)}; found: {', '.join(known) or 'none'}"
            )
        found = [known[n] for n in names]
    if not found:
        raise SliceSamError(f"no dataset folder with a meta.json under {root}")
    return found


def load_dataset(
    folder: str | Path,
    *,
    all_objects: bool = False,
    max_objects: int | None = None,
    only: list[int] | None = None,
    split: str = "reported",
) -> Dataset:
    """Load image and labels with the project's own reader (one orientation for both).

    Args:
        folder: the dataset folder.
        all_objects: evaluate every reported id present (default: the first 10, as
            BENCHMARK.md reports them); the validation and training splits are evaluated
            whole.
        max_objects: evaluate at most this many (quick runs).
        only: evaluate only these label ids.
        split: "reported" (``meta["objects"]``), "validation" or "training" (:data:`SPLITS`);
            a dataset without that list has no objects in it.
    """
    if split not in SPLITS:
        raise SliceSamError(f"unknown object split {split!r}; choose from {', '.join(SPLITS)}")
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    image = load_volume(_find(folder, "image"))
    labels = load_volume(_find(folder, "labels")).data
    if labels.shape != image.data.shape:
        raise SliceSamError(
            f"{folder.name}: labels grid {labels.shape} differs from the image's {image.shape}"
        )
    labels = np.asarray(labels).astype(np.int64)
    present = set(np.unique(labels).tolist())
    objects = [int(i) for i in meta.get(SPLITS[split], []) if int(i) in present]
    if split == "reported" and not all_objects:
        objects = objects[:DEFAULT_MAX_OBJECTS]
    if only:
        objects = [i for i in objects if i in set(only)]
    if max_objects is not None:
        objects = objects[:max_objects]
    names = {int(k): v for k, v in meta.get("label_names", {}).items()}
    return Dataset(folder.name, image, labels, objects, names, meta, split)
