"""The radiologist's DICOM path on the real CT series in ``../shared/dicom/ct_totalseg``.

Load the series folder, read the TotalSegmentator reference labels (NIfTI on the dcm2niix grid)
onto it with ``load_volume(..., like=series)``, give each structure one tight box on its largest
slice (protocol P2 of ``../shared/BENCHMARK.md``), propagate, and report the 3D Dice against the
reference; then write the labels as DICOM-SEG and read them back.

The shared series was anonymised with its StudyInstanceUID and SeriesInstanceUID blanked (its
SOPInstanceUIDs survive in the file meta). slicesam refuses to write a SEG for it rather than
invent study identifiers; the script prints that refusal, then repeats the write on a copy
whose blank UIDs were filled the way a PACS import assigns them (new UIDs), which is what a
user with an intact export has.

Usage::

    python benchmarks/dicom_end_to_end.py [--series ../shared/dicom/ct_totalseg]
        [--objects liver,spleen] [--out benchmarks/results/dicom/dicom_end_to_end.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import slicesam
from slicesam.bench.runner import cpu_name
from slicesam.demo import tight_box_on_largest_slice
from slicesam.errors import VolumeWriteError


def restored_copy(folder: Path, into: Path) -> Path:
    """A copy of ``folder`` whose blank Study/Series/SOP Instance UIDs are filled (one new
    study and series UID; SOP UIDs from the file meta)."""
    import pydicom
    from pydicom.uid import generate_uid

    study, series = generate_uid(), generate_uid()
    into.mkdir(parents=True)
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = ds.StudyInstanceUID or study
        ds.SeriesInstanceUID = ds.SeriesInstanceUID or series
        ds.SOPInstanceUID = ds.SOPInstanceUID or ds.file_meta.MediaStorageSOPInstanceUID
        ds.SOPClassUID = ds.SOPClassUID or ds.file_meta.MediaStorageSOPClassUID
        ds.save_as(into / f.name)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default="../shared/dicom/ct_totalseg")
    parser.add_argument("--objects", default="liver,spleen")
    parser.add_argument("--model", default="litemedsam")
    parser.add_argument("--out", default="benchmarks/results/dicom/dicom_end_to_end.json")
    args = parser.parse_args()
    root = Path(args.series)
    meta = json.loads((root / "meta.json").read_text())
    ids = {name: int(k) for k, name in meta["label_names"].items()}

    t0 = time.perf_counter()
    vol = slicesam.load_volume(root / "dicom")
    load_s = time.perf_counter() - t0
    reference = slicesam.load_labels(root / "labels_reference.nii.gz", like=vol)
    print(f"{vol} loaded in {load_s:.2f} s; reference labels on the series grid")

    sess = slicesam.Session(vol, model=args.model, autosave=False)
    rows = []
    for name in args.objects.split(","):
        truth = reference == ids[name]
        t1 = time.perf_counter()
        obj = sess.new_object(name)
        z, box = tight_box_on_largest_slice(truth)
        sess.add_box(obj, z=z, box=box)
        sess.propagate(obj)
        seconds = time.perf_counter() - t1
        score = slicesam.dice(sess.labels == obj, truth)
        rows.append({"object": name, "dice": round(float(score), 4), "seconds": round(seconds, 1)})
        print(f"{name:10s} Dice {score:.3f}  ({seconds:.1f} s, box on slice {z})")

    names = {i: o.name for i, o in sess.objects.items()}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            slicesam.save_labels(Path(tmp) / "seg.dcm", sess.labels, like=vol, names=names)
            refusal = None
        except VolumeWriteError as exc:
            refusal = str(exc)
            print(f"as exported, the series cannot get a SEG: {refusal}")
        copy = restored_copy(root / "dicom", Path(tmp) / "series")
        vol2 = slicesam.load_volume(copy)
        assert np.array_equal(vol2.data, vol.data)
        seg = slicesam.save_labels(Path(tmp) / "seg.dcm", sess.labels, like=vol2, names=names)
        back = slicesam.load_labels(seg, like=vol2)
        exact = bool(np.array_equal(back, sess.labels))
        size = seg.stat().st_size
        print(f"DICOM-SEG written ({size / 1e3:.0f} kB) and read back: voxel for voxel {exact}")
        shutil.copy(seg, Path(tmp) / "kept.dcm")

    result = {
        "cpu": cpu_name(),
        "series": str(root),
        "shape": list(vol.shape),
        "spacing_mm": list(vol.spacing),
        "load_seconds": round(load_s, 2),
        "objects": rows,
        "seg_refused_as_exported": refusal,
        "seg_round_trip_exact": exact,
        "seg_bytes": size,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out} ({cpu_name()})")


if __name__ == "__main__":
    main()
