"""A ready batch over the three sample volumes, to try ``slicesam batch`` (and measure it).

``python -m slicesam.batch.sample_jobs DIR`` writes ``DIR/manifest.csv`` and one
``DIR/NAME.prompts.json`` per sample: for each reported structure of the sample (its
``meta.json`` ``objects``), the tight box of the reference mask on the slice where it is
largest, as ``slicesam demo`` prompts its organs. Then::

    slicesam batch DIR/manifest.csv --out labels/
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from ..io import load_volume
from ..samples import SAMPLES, get_sample


def sample_prompts(key: str, max_objects: int | None = None) -> dict:
    """The prompts document of sample ``key``: one box per reported structure (label id and
    name kept), on the slice where its reference mask is largest."""
    from ..demo import tight_box_on_largest_slice

    sample = get_sample(key)
    labels = load_volume(sample.labels).data
    names = sample.meta.get("label_names", {})
    ids = [int(v) for v in sample.meta.get("objects", [])][:max_objects]
    objects = []
    for label in ids:
        mask = labels == label
        if not mask.any():
            continue
        z, box = tight_box_on_largest_slice(mask)
        name = names.get(str(label), f"object {label}")
        objects.append({"id": label, "name": name, "boxes": [{"z": z, "box": list(box)}]})
    return {"objects": objects}


def write_sample_jobs(folder: str | Path, max_objects: int | None = None) -> Path:
    """Write the prompts of every sample and a manifest (image, prompts, name) into
    ``folder``; return the manifest's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for key in SAMPLES:
        prompts = folder / f"{key}.prompts.json"
        prompts.write_text(json.dumps(sample_prompts(key, max_objects), indent=1))
        rows.append([str(get_sample(key).image), prompts.name, key])
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "prompts", "name"])
        writer.writerows(rows)
    return manifest


def _objects(prompts: Path) -> int:
    return len(json.loads(prompts.read_text())["objects"])


if __name__ == "__main__":  # pragma: no cover
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "sample_jobs")
    path = write_sample_jobs(target)
    counts = [_objects(target / f"{key}.prompts.json") for key in SAMPLES]
    print(f"wrote {path} ({len(SAMPLES)} volumes, {sum(counts)} objects)")
