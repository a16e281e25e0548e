"""How should propagation prompt the next slice? Box, box + mask logits, box + interior points.

Runs P1 (3D box, BENCHMARK.md) and P2 (one box, no z range) on every dataset with each
``PropagationParams.prompt`` choice, sharing embeddings, and prints the mean 3D Dice.

Usage::

    python benchmarks/propagation_prompts.py --data ../shared/datasets [--datasets a,b]
        [--max-objects N] [--out benchmarks/results/propagation_prompts.json]
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from _study import record, study_args

from slicesam.bench.datasets import discover, load_dataset
from slicesam.bench.protocols import Runner, p1_box3d, p2_box1
from slicesam.engine.propagation import default_params

PROMPTS = ("box", "box+mask", "box+points")


def main() -> None:
    args, model, names = study_args(__doc__, "propagation_prompts.json")
    result: dict = {"model": model.name, "datasets": {}}
    print("| dataset | " + " | ".join(f"P1 {p} | P2 {p}" for p in PROMPTS) + " |")
    print("|---|" + "---|" * (2 * len(PROMPTS)))
    for folder in discover(args.data, names):
        ds = load_dataset(folder, max_objects=args.max_objects)
        run = Runner(ds, model)  # one embedding cache for every variant
        row: dict = {}
        for prompt in PROMPTS:
            params = replace(default_params(ds.image.modality), prompt=prompt)
            run.session_kwargs = {"params": params}
            row[f"P1 {prompt}"] = float(np.mean([p1_box3d(run, o)["dice"] for o in ds.objects]))
            row[f"P2 {prompt}"] = float(np.mean([p2_box1(run, o)["dice"] for o in ds.objects]))
        cells = " | ".join(f"{row[f'P1 {p}']:.3f} | {row[f'P2 {p}']:.3f}" for p in PROMPTS)
        record(args.out, result, ds.name, row, f"| {ds.name} | {cells} |")


if __name__ == "__main__":
    main()
