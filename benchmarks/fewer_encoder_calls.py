"""Upper bound of "fewer encoder calls" (issue 34): run the model on every k-th slice only and
fill the slices between by shape-based interpolation.

For each object of a split, P1 (3D box) and P2 (one box, no z range) are run as ``slicesam
bench`` runs them (float32, every slice). Then every slice off a stride-k grid (counted from the
prompted slice; the object's first and last slices stay) is replaced by the interpolation
(:func:`slicesam.engine.interpolation.interpolate_masks`) of the grid slices around it, but only
where those two slices agree (Dice >= ``agree``); elsewhere the model's own slices stay, as a
walk would re-run the model there. Prints and writes, per dataset: mean 3D Dice against the
truth of the dense masks and of each (k, agree) variant, and the fraction of the object's slices
the model still runs on. A strided walk would do worse than this bound: its grid slices would be
prompted from k slices away.

    OMP_NUM_THREADS=1 python benchmarks/fewer_encoder_calls.py validation --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

VARIANTS = ((2, 0.0), (2, 0.8), (2, 0.9), (3, 0.0), (3, 0.9))


def strided(mask: np.ndarray, start: int, k: int, agree: float) -> tuple[np.ndarray, int, int]:
    """(z, y, x) bool mask with the off-grid slices interpolated where the grid slices around
    them agree; returns (mask, slices the model runs on, slices of the object)."""
    from slicesam.engine.interpolation import interpolate_masks
    from slicesam.metrics import dice

    zs = np.flatnonzero(mask.reshape(len(mask), -1).any(1))
    if len(zs) == 0:
        return mask, 0, 0
    lo, hi = int(zs[0]), int(zs[-1])
    grid = sorted({lo, hi} | {z for z in range(lo, hi + 1) if (z - start) % k == 0})
    out, used = mask.copy(), len(grid)
    for a, b in zip(grid, grid[1:]):
        if b - a < 2:
            continue
        if dice(mask[a], mask[b]) >= agree:
            out[a + 1 : b] = interpolate_masks(mask[a], mask[b], b - a - 1)
        else:
            used += b - a - 1
    return out, used, hi - lo + 1


def run(split: str, data: Path) -> dict:
    from slicesam.bench.datasets import discover, load_dataset
    from slicesam.bench.protocols import Runner
    from slicesam.bench.simulate import largest_slice, tight_box, z_extent
    from slicesam.metrics import dice
    from slicesam.models.registry import load_model

    model = load_model("litemedsam", device="cpu")
    result: dict = {}
    for folder in discover(data):
        ds = load_dataset(folder, split=split)
        if not ds.objects:
            continue
        runner = Runner(ds, model)
        rows: dict[str, list] = {"P1": [], "P2": []}
        for label in ds.objects:
            gt = runner.gt(label)
            for protocol in rows:
                sess = runner.session()
                obj = sess.new_object()
                if protocol == "P1":
                    z0, z1 = z_extent(gt)
                    start = (z0 + z1) // 2
                    sess.add_box(obj, start, tight_box(gt))
                    sess.propagate(obj, z_range=(z0, z1))
                else:
                    start = largest_slice(gt)
                    sess.add_box(obj, start, tight_box(gt[start]))
                    sess.propagate(obj)
                mask = sess.labels == obj
                figures, fractions = [dice(mask, gt)], []
                for k, agree in VARIANTS:
                    out, used, total = strided(mask, start, k, agree)
                    figures.append(dice(out, gt))
                    fractions.append(used / max(total, 1))
                rows[protocol].append((figures, fractions))
        result[ds.name] = {
            p: {
                "dice_dense_then_variants": np.mean([r[0] for r in v], axis=0).round(4).tolist(),
                "model_fraction": np.mean([r[1] for r in v], axis=0).round(3).tolist(),
            }
            for p, v in rows.items()
        }
        print(ds.name, json.dumps(result[ds.name]), flush=True)
    return {"variants_k_agree": [list(v) for v in VARIANTS], "split": split, "datasets": result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split", choices=("reported", "validation"))
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets")
    )
    parser.add_argument("--out", default="stride_output")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = run(args.split, Path(args.data))
    (out / f"fewer_encoder_calls_{args.split}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
