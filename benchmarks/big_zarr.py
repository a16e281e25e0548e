"""A volume larger than the memory it may take: one box and a 50-slice propagation on a
generated 2048 x 2048 x 512 uint16 zarr volume (4 GiB of voxels), with peak RSS and timings.

Two steps, each in its own process so that the measured one holds only what a user's session
holds:

1. ``generate``: writes the volume chunk by chunk (one chunk per slice, blosc-zstd with
   bitshuffle): a noisy background with a gradient, ~150 bright ellipsoids ("cells") and one
   large ellipsoid at the centre, the object segmented. Only a few slices are ever in memory.
2. ``run``: ``load_volume`` (lazy), ``Session(vol, model=..., labels_store=...)`` (labels in a
   zarr store on disk), one box on the object's middle slice, ``propagate`` through 50 slices
   (``z_range``), then the labels saved as OME-Zarr next to the image. Reports the time to
   the first mask (open + session + box), the propagation time, the Dice of the 50 slices
   against the generated ellipsoid, the RSS after each step and the peak RSS
   (``ru_maxrss``).

Usage::

    python benchmarks/big_zarr.py [--dir /tmp/slicesam-big-zarr] [--shape 512 2048 2048]
        [--slices 50] [--model litemedsam] [--out benchmarks/results/big_zarr/result.json]
    python benchmarks/big_zarr.py generate --dir DIR      # only step 1
    python benchmarks/big_zarr.py run --dir DIR           # only step 2 (volume already there)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 33
#: The object segmented: an ellipsoid at the volume's centre, semi-axes as fractions of
#: (z, y, x) (z semi-axis 0.16 x 512 = 82 slices, in-plane 0.09 x 2048 = 184 px).
TARGET_AXES = (0.16, 0.09, 0.11)
TARGET_VALUE = 3000


@dataclass(frozen=True)
class Blob:
    center: tuple[float, float, float]
    axes: tuple[float, float, float]
    value: int

    def section(self, z: int) -> tuple[float, float] | None:
        """In-plane semi-axes (y, x) of the blob's cross-section at slice z, or None."""
        t = 1.0 - ((z - self.center[0]) / self.axes[0]) ** 2
        if t <= 0:
            return None
        s = float(np.sqrt(t))
        return self.axes[1] * s, self.axes[2] * s


def blobs(shape: tuple[int, int, int]) -> tuple[Blob, list[Blob]]:
    """The target ellipsoid and the other "cells" (deterministic)."""
    nz, ny, nx = shape
    target = Blob(
        (nz / 2, ny / 2, nx / 2),
        (TARGET_AXES[0] * nz, TARGET_AXES[1] * ny, TARGET_AXES[2] * nx),
        TARGET_VALUE,
    )
    rng = np.random.default_rng(SEED)
    cells = []
    while len(cells) < 150:
        c = (rng.uniform(0, nz), rng.uniform(0, ny), rng.uniform(0, nx))
        r = rng.uniform(15, 70)
        axes = (rng.uniform(8, 30), r, r * rng.uniform(0.6, 1.4))
        # keep the cells away from the target, so the object is one component
        d = np.sqrt(sum(((a - b) / (s + r)) ** 2 for a, b, s in zip(c, target.center, target.axes)))
        if d > 1.3:
            cells.append(Blob(c, axes, int(rng.integers(1200, 2600))))
    return target, cells


def paint(plane: np.ndarray, blob: Blob, z: int) -> None:
    section = blob.section(z)
    if section is None:
        return
    ry, rx = section
    cy, cx = blob.center[1], blob.center[2]
    y0, y1 = max(0, int(cy - ry)), min(plane.shape[0], int(cy + ry) + 2)
    x0, x1 = max(0, int(cx - rx)), min(plane.shape[1], int(cx + rx) + 2)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.ogrid[y0:y1, x0:x1]
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    region = plane[y0:y1, x0:x1]
    region[inside] = np.maximum(region[inside], blob.value)


def target_mask(shape: tuple[int, int, int], z: int) -> np.ndarray:
    plane = np.zeros(shape[1:], np.uint16)
    paint(plane, blobs(shape)[0], z)
    return plane > 0


#: Voxel size (z, y, x) in micrometres written into the OME-Zarr metadata.
SPACING_UM = (2.0, 0.4, 0.4)


def generate(folder: Path, shape: tuple[int, int, int]) -> dict:
    """Write the volume to ``folder/image.ome.zarr`` (OME-Zarr 0.5, zarr v3, one level)
    slice by slice."""
    import zarr
    from zarr.codecs import BloscCodec, BloscShuffle

    t0 = time.perf_counter()
    path = folder / "image.ome.zarr"
    if path.exists():
        shutil.rmtree(path)
    folder.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    scale = [{"type": "scale", "scale": list(SPACING_UM)}]
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
        ],
    }
    array = group.create_array(
        "0",
        shape=shape,
        chunks=(1, *shape[1:]),
        dtype=np.uint16,
        compressors=BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.bitshuffle),
        fill_value=0,
    )
    target, cells = blobs(shape)
    ny, nx = shape[1:]
    gradient = (np.linspace(0, 120, nx)[None, :] + np.linspace(0, 80, ny)[:, None]).astype(
        np.uint16
    )
    for z in range(shape[0]):
        rng = np.random.default_rng((SEED, z))
        plane = rng.integers(150, 214, size=(ny, nx), dtype=np.uint16) + gradient
        for blob in (*cells, target):
            paint(plane, blob, z)
        array[z] = plane
    stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return {"seconds": time.perf_counter() - t0, "bytes_on_disk": stored}


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(folder: Path, n_slices: int, model: str) -> dict:
    """One box and a propagation through ``n_slices`` slices on the generated volume."""
    from slicesam import Session, load_volume, save_labels

    rss: dict[str, float] = {"start": rss_mib()}
    t0 = time.perf_counter()
    vol = load_volume(folder / "image.ome.zarr")
    t_open = time.perf_counter()
    rss["opened"] = rss_mib()
    labels_path = folder / "labels.zarr"
    if labels_path.exists():
        shutil.rmtree(labels_path)
    sess = Session(vol, model=model, labels_store=labels_path)
    t_session = time.perf_counter()
    rss["session"] = rss_mib()

    shape = vol.shape
    zc = shape[0] // 2
    truth = target_mask(shape, zc)
    ys, xs = np.nonzero(truth)
    box = (int(xs.min()) - 10, int(ys.min()) - 10, int(xs.max()) + 10, int(ys.max()) + 10)
    obj = sess.new_object("target")
    mask = sess.add_box(obj, zc, box)
    t_box = time.perf_counter()
    rss["first mask"] = rss_mib()

    lo = zc - n_slices // 2
    hi = lo + n_slices - 1
    summary = sess.propagate(obj, z_range=(lo, hi))
    t_prop = time.perf_counter()
    rss["propagated"] = rss_mib()

    inter = union = 0
    for z in range(lo, hi + 1):
        pred, gt = sess.mask(obj, z), target_mask(shape, z)
        inter += int((pred & gt).sum())
        union += int(pred.sum() + gt.sum())
    t_dice = time.perf_counter()
    saved = save_labels(folder / "image.ome.zarr", sess.labels, like=vol)
    t_save = time.perf_counter()
    rss["saved"] = rss_mib()
    return {
        "shape_zyx": list(shape),
        "dtype": str(vol.data.dtype),
        "voxel_bytes": int(np.prod(shape)) * vol.data.dtype.itemsize,
        "model": model,
        "box_slice": zc,
        "box_xyxy": list(box),
        "z_range": [lo, hi],
        "slices_written": len(summary.slices),
        "first_mask_dice": float(2 * (mask & truth).sum() / (mask.sum() + truth.sum())),
        "dice_over_range": 2 * inter / union if union else 0.0,
        "seconds": {
            "open": t_open - t0,
            "session (model load + window sample)": t_session - t_open,
            "box (embed + decode)": t_box - t_session,
            "time to first mask (open + session + box)": t_box - t0,
            "propagate": t_prop - t_box,
            "propagate per slice": (t_prop - t_box) / max(1, n_slices - 1),
            "save OME-Zarr labels": t_save - t_dice,
        },
        "rss_mib": rss,
        "peak_rss_mib": peak_rss_mib(),
        "labels_saved_to": str(saved),
        "labels_slices_on_disk": len(sess.labels.nonzero_slices()),
    }


def machine() -> dict:
    cpu = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Model name" in ln), ""
        )
    except (OSError, subprocess.CalledProcessError):
        pass
    import torch

    return {
        "cpu": cpu or platform.processor(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", nargs="?", choices=["all", "generate", "run"], default="all")
    parser.add_argument("--dir", default="/tmp/slicesam-big-zarr", type=Path)
    parser.add_argument("--shape", nargs=3, type=int, default=[512, 2048, 2048])
    parser.add_argument("--slices", type=int, default=50)
    parser.add_argument("--model", default="litemedsam")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated volume")
    args = parser.parse_args()
    shape = tuple(args.shape)

    if args.step == "generate":
        gen = generate(args.dir, shape)  # type: ignore[arg-type]
        (args.dir / "generate.json").write_text(json.dumps(gen))
        print(json.dumps(gen))
        return
    if args.step == "run":
        load_before = os.getloadavg()
        result = run(args.dir, args.slices, args.model)
        result["machine"] = machine()
        # other processes on the machine slow the encoder: say how busy it was
        result["machine"]["load_average_1min_before_after"] = [load_before[0], os.getloadavg()[0]]
        made = args.dir / "generate.json"
        if made.is_file():
            result["generate"] = json.loads(made.read_text())
        text = json.dumps(result, indent=2)
        print(text if args.out is None else json.dumps(result))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
        return
    cmd = [
        sys.executable,
        __file__,
        "generate",
        "--dir",
        str(args.dir),
        "--shape",
        *map(str, shape),
    ]
    gen = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    gib = gen["bytes_on_disk"] / 2**30
    print(f"generated {shape} in {gen['seconds']:.0f} s, {gib:.2f} GiB on disk")
    cmd = [sys.executable, __file__, "run", "--dir", str(args.dir), "--slices", str(args.slices)]
    cmd += ["--model", args.model] + (["--out", str(args.out)] if args.out else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr)
    print(json.dumps(json.loads(done.stdout.strip().splitlines()[-1]), indent=2))
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
