"""The sample volumes shipped with the package (third-party data; see sample_volumes/NOTICE).

Installed from a wheel (``pip install .``), they live in ``slicesam/sample_volumes``; in a source
checkout and an editable install (``pip install -e .``), in the repository's ``sample_volumes/``
(the only copy; see ``hatch_build.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import SliceSamError

SAMPLES = {
    "ct_abdomen": ("ct_abdomen_totalseg", "image.nii.gz", "labels.nii.gz"),
    "mr_abdomen": ("mr_abdomen_totalseg", "image.nii.gz", "labels.nii.gz"),
    "nuclei": ("nuclei_arabidopsis_1135", "image.tif", "labels.tif"),
}


@dataclass(frozen=True)
class Sample:
    """Paths of one sample: image, reference labels and its meta.json content."""

    key: str
    image: Path
    labels: Path
    meta: dict

    def label_id(self, name: str) -> int:
        """Label id of a structure by name (e.g. "liver")."""
        for key, value in self.meta.get("label_names", {}).items():
            if value == name:
                return int(key)
        raise SliceSamError(f"sample {self.key} has no structure named {name!r}")


def samples_dir() -> Path:
    """The folder holding the sample volumes."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "sample_volumes", here.parents[1] / "sample_volumes"):
        if candidate.is_dir():
            return candidate
    raise SliceSamError(
        "sample volumes not found: reinstall napari-slicesam (they ship inside the package)"
    )


def get_sample(key: str) -> Sample:
    """One of ``SAMPLES`` ("ct_abdomen", "mr_abdomen", "nuclei")."""
    if key not in SAMPLES:
        raise SliceSamError(f"unknown sample {key!r}; choose one of {', '.join(SAMPLES)}")
    folder, image, labels = SAMPLES[key]
    root = samples_dir() / folder
    meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
    return Sample(key, root / image, root / labels, meta)
