"""Does following the model's suggested click reach NoC@85 sooner than error-based clicks?

Runs BENCHMARK.md's P4 (clicks only, largest slice, error-based clicks) and the same with the
user following :meth:`slicesam.Session.uncertainty`'s suggestion
(:func:`slicesam.bench.protocols.p4_suggested`) on every dataset, sharing embeddings.

Usage::

    python benchmarks/suggested_clicks.py --data ../shared/datasets [--datasets a,b]
        [--max-objects N] [--clicks 20] [--out benchmarks/results/suggested_clicks.json]
"""

from __future__ import annotations

import numpy as np
from _study import save, study_args

from slicesam.bench.datasets import discover, load_dataset
from slicesam.bench.protocols import Runner, p4_clicks2d, p4_suggested


def main() -> None:
    args, model, names = study_args(__doc__, "suggested_clicks.json", clicks=20)
    result: dict = {"model": model.name, "clicks": args.clicks, "datasets": {}}
    print(
        "| dataset | objects | NoC85 error-based | NoC85 suggested | IoU@5 error-based |"
        " IoU@5 suggested | suggestions followed |"
    )
    print("|---|---|---|---|---|---|---|")
    for folder in discover(args.data, names):
        ds = load_dataset(folder, max_objects=args.max_objects)
        run = Runner(ds, model)
        base = [p4_clicks2d(run, label, args.clicks) for label in ds.objects]
        sugg = [p4_suggested(run, label, args.clicks) for label in ds.objects]
        row = {
            "noc85_error": float(np.mean([r["noc85"] for r in base])),
            "noc85_suggested": float(np.mean([r["noc85"] for r in sugg])),
            "iou5_error": float(np.mean([r["iou_curve"][5] for r in base])),
            "iou5_suggested": float(np.mean([r["iou_curve"][5] for r in sugg])),
            "followed": int(sum(r["followed"] for r in sugg)),
            "clicks": int(len(sugg) * args.clicks),
        }
        result["datasets"][ds.name] = row
        print(
            f"| {ds.name} | {len(ds.objects)} | {row['noc85_error']:.1f} | "
            f"{row['noc85_suggested']:.1f} | {row['iou5_error']:.3f} | "
            f"{row['iou5_suggested']:.3f} | {row['followed']} of {row['clicks']} |",
            flush=True,
        )
        save(args.out, result)


if __name__ == "__main__":
    main()
