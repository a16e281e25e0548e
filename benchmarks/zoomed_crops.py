"""Would a zoomed crop around the box help LiteMedSAM on small objects?

The oracle setting (every slice of every object prompted with its own tight ground-truth box),
once with the whole slice embedded (what slicesam does) and once per zoom factor F with only a
square crop around the box embedded: side F x the box's longer side (at least ``--min-side``
pixels), centred on the box, clipped to the slice; the crop's mask is pasted back. Prints the
mean 3D Dice per dataset.

Usage::

    python benchmarks/zoomed_crops.py --data ../shared/datasets [--datasets a,b]
        [--factors 2,3] [--min-side 64] [--max-objects N]
        [--out benchmarks/results/zoomed_crops.json]
"""

from __future__ import annotations

import numpy as np
from _study import record, study_args

from slicesam.bench.datasets import discover, load_dataset
from slicesam.bench.simulate import tight_box
from slicesam.engine.masks import pixel_extent
from slicesam.engine.session import Session
from slicesam.intensity import apply_window
from slicesam.metrics import dice


def crop_window(box, shape, factor: float, min_side: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the square crop around a pixel box (x0, y0, x1, y1) in a slice."""
    x0, y0, x1, y1 = box
    side = max(factor * max(x1 - x0 + 1, y1 - y0 + 1), min_side)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = shape
    a0, b0 = int(max(0, round(cx - side / 2))), int(max(0, round(cy - side / 2)))
    a1, b1 = int(min(w, round(cx + side / 2))), int(min(h, round(cy + side / 2)))
    return b0, b1, a0, a1


def main() -> None:
    def more(parser):
        parser.add_argument("--factors", default="2,3", help="comma-separated zoom factors")
        parser.add_argument("--min-side", type=int, default=64)

    args, model, names = study_args(__doc__, "zoomed_crops.json", more=more)
    factors = [float(f) for f in args.factors.split(",")]
    min_side = args.min_side
    result: dict = {"model": model.name, "min_side": min_side, "datasets": {}}
    print("| dataset | whole slice | " + " | ".join(f"crop ×{f:g}" for f in factors) + " |")
    print("|---|---|" + "---|" * len(factors))
    for folder in discover(args.data, names):
        ds = load_dataset(folder, max_objects=args.max_objects)
        sess = Session(ds.image, model=model)
        scores: dict[str, list[float]] = {"whole": [], **{f"x{f:g}": [] for f in factors}}
        for label in ds.objects:
            gt = ds.labels == label
            outs = {key: np.zeros_like(gt) for key in scores}
            for z in np.flatnonzero(gt.any(axis=(1, 2))):
                box = pixel_extent(tight_box(gt[z]))
                outs["whole"][z] = model.predict(sess.embed(int(z)), box=box).masks[0]
                image = apply_window(ds.image.data[z], sess.window)
                for f in factors:
                    y0, y1, x0, x1 = crop_window(box, image.shape, f, min_side)
                    emb = model.embed(np.ascontiguousarray(image[y0:y1, x0:x1]))
                    local = (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0)
                    outs[f"x{f:g}"][z, y0:y1, x0:x1] = model.predict(emb, box=local).masks[0]
            for key in scores:
                scores[key].append(dice(outs[key], gt))
        row = {key: float(np.mean(v)) for key, v in scores.items()}
        cells = " | ".join(f"{row[f'x{f:g}']:.3f}" for f in factors)
        record(args.out, result, ds.name, row, f"| {ds.name} | {row['whole']:.3f} | {cells} |")


if __name__ == "__main__":
    main()
