"""Side by side: how clicks become masks on LiteMedSAM (rules, learned decoder, f-BRS).

Reads ``slicesam bench`` results (bench.json) of each method on the reported and validation
objects and prints one Markdown table per split: per dataset, P4 (2D: IoU after 1 click,
NoC@85), P3@5 (3D Dice after 5 corrective clicks), and P5 (mean over objects of the largest
Dice drop one click caused, and the worst such drop), plus the mean with equal weight per
dataset.

    SLICESAM_LITEMEDSAM_CLICKS=learned slicesam bench --data ../shared/datasets \\
        --objects validation --protocol P3,P4 --p3-clicks 5 --no-baselines \\
        --out OUT/learned/validation
    python benchmarks/click_methods.py rules=DIR learned=DIR [fbrs=DIR]

Each DIR holds ``reported/bench.json`` and ``validation/bench.json``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np

COLUMNS = ("P4 IoU@1", "P4 IoU@3", "P4 IoU@5", "P4 NoC85", "P3@5", "P5 mean drop", "P5 worst drop")


def figures(summary: dict) -> dict[str, float]:
    """The compared figures of one dataset's bench summary (NaN where not run; NoC@85 only
    from runs of 20 clicks)."""
    p4, p3, p5 = summary.get("P4", {}), summary.get("P3", {}), summary.get("P5", {})
    full = len(p4.get("iou_curve", [])) >= 21
    return {
        "P4 IoU@1": p4.get("iou_at", {}).get("1", np.nan),
        "P4 IoU@3": p4.get("iou_at", {}).get("3", np.nan),
        "P4 IoU@5": p4.get("iou_at", {}).get("5", np.nan),
        "P4 NoC85": p4.get("noc85", np.nan) if full else np.nan,
        "P3@5": p3.get("dice_at", {}).get("5", np.nan),
        "P5 mean drop": p5.get("max_drop", np.nan),
        "P5 worst drop": p5.get("worst_drop", np.nan),
    }


def _f(value: float) -> str:
    return "–" if np.isnan(value) else f"{value:.3f}"


def table(runs: dict[str, Path], split: str) -> str:
    rows = [
        "| dataset | method | " + " | ".join(COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    means: dict[str, list[dict[str, float]]] = {}
    loaded = {m: json.loads((d / split / "bench.json").read_text()) for m, d in runs.items()}
    datasets = sorted(next(iter(loaded.values()))["datasets"])
    for name in datasets:
        for method, result in loaded.items():
            ds = result["datasets"].get(name)
            if ds is None or not ds["summary"].get("n_objects"):
                continue
            f = figures(ds["summary"])
            means.setdefault(method, []).append(f)
            rows.append(f"| {name} | {method} | " + " | ".join(_f(f[c]) for c in COLUMNS) + " |")
    for method, fs in means.items():
        with warnings.catch_warnings():  # a column a method did not run: NaN, no warning
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = {c: float(np.nanmean([f[c] for f in fs])) for c in COLUMNS}
        rows.append(f"| **mean** | {method} | " + " | ".join(_f(mean[c]) for c in COLUMNS) + " |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    runs = {}
    for arg in argv:
        method, _, folder = arg.partition("=")
        runs[method] = Path(folder)
    if not runs:
        print(__doc__)
        return 2
    for split in ("reported", "validation"):
        print(f"\n### {split} objects\n")
        print(table(runs, split))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
