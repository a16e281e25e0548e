"""What should a scribble or a lasso become for a box-only model? Chosen by these numbers.

On the largest slice of every object (BENCHMARK.md datasets), a simulated user:

- **scribbles** along the object's main axis (a stroke through the object's middle third,
  as one draws along an organ) on an empty slice: the model's mask for the stroke's box grown
  by ``margin`` model pixels, for several margins (``strokes.box_only_scribble``);
- **lassos** the object roughly: its outline grown by 1-4 model pixels (random) and simplified
  to a polygon, answered by each mode of :func:`slicesam.engine.strokes.lasso_mask`;
- **corrects with scribbles**: starting from the model's mask for a sloppy box (each side moved
  by -4..+8 model pixels), a scribble along the largest error region (positive where the object
  is missing, negative where the mask leaks), 3 times.

Reports the mean 2D IoU. Usage::

    python benchmarks/scribbles_lassos.py --data ../shared/datasets [--datasets a,b]
        [--max-objects N] [--out benchmarks/results/scribbles_lassos.json]
"""

from __future__ import annotations

import json
from functools import partial

import cv2
import numpy as np
from _study import record, study_args
from scipy import ndimage

from slicesam.bench.datasets import discover, load_dataset
from slicesam.bench.protocols import Runner
from slicesam.bench.simulate import largest_slice, tight_box
from slicesam.engine.masks import expand_box, pixel_extent
from slicesam.engine.strokes import LASSO_MODES, box_only_scribble, lasso_mask
from slicesam.metrics import iou

MARGINS = (8.0, 16.0, 32.0)
RELATIVE = (1.0, 1.5, 2.0, 3.0)
SLACKS = (0.0, 2.0, 4.0)


def main_axis_stroke(region: np.ndarray, n: int = 8) -> np.ndarray:
    """(n, 2) (y, x) points along the region's main axis, within its middle third."""
    ys, xs = np.nonzero(region)
    pts = np.stack([ys, xs], axis=1).astype(np.float64)
    centre = pts.mean(axis=0)
    if len(pts) < 3:
        return centre[None].repeat(n, axis=0)
    _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
    proj = (pts - centre) @ vt[0]
    lo, hi = np.percentile(proj, [33, 67])
    line = centre + np.linspace(lo, hi, n)[:, None] * vt[0][None]
    # keep the points that fall inside the region (a curved object may leave the axis)
    inside = [p for p in line if region[int(round(p[0])), int(round(p[1]))]]
    return np.array(inside) if inside else centre[None]


def rough_lasso(gt: np.ndarray, grow_px: int) -> np.ndarray:
    """(N, 2) (y, x) polygon: the largest outline of ``gt`` grown by ``grow_px``, simplified."""
    grown = ndimage.binary_dilation(gt, iterations=max(1, grow_px)).astype(np.uint8)
    contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    poly = cv2.approxPolyDP(contour, max(1.0, grow_px / 2), True).reshape(-1, 2)
    return poly[:, ::-1].astype(np.float64)


def largest_error(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, bool] | None:
    """The largest connected error region and whether it is missing object (positive)."""
    best = None
    for region, positive in ((gt & ~pred, True), (pred & ~gt, False)):
        comps, n = ndimage.label(region)
        if n:
            sizes = np.bincount(comps.ravel())[1:]
            k = int(np.argmax(sizes))
            if best is None or sizes[k] > best[0]:
                best = (sizes[k], comps == k + 1, positive)
    return None if best is None else (best[1], best[2])


def measure(run: Runner, rng: np.random.Generator) -> dict:
    sess = run.session()
    px = sess.model_px
    out: dict = {f"scribble margin {m:g}": [] for m in MARGINS}
    out.update({f"scribble square {f:g}x length": [] for f in RELATIVE})
    out.update({f"lasso {mode}": [] for mode in LASSO_MODES if mode != "model_in_lasso"})
    out.update({f"lasso model_in_lasso slack {s:g}": [] for s in SLACKS})
    out["corrections start"] = []
    out["corrections after 3 scribbles"] = []
    for label in run.dataset.objects:
        gt3 = run.gt(label)
        z = largest_slice(gt3)
        gt = gt3[z]
        predict = partial(sess.model.predict, sess.embed(z))
        empty = np.zeros_like(gt)
        stroke = main_axis_stroke(gt)
        for m in MARGINS:
            mask, _ = box_only_scribble(predict, empty, stroke, True, px, margin=m, relative=None)
            out[f"scribble margin {m:g}"].append(iou(mask, gt))
        for f in RELATIVE:
            mask, _ = box_only_scribble(predict, empty, stroke, True, px, relative=f)
            out[f"scribble square {f:g}x length"].append(iou(mask, gt))
        poly = rough_lasso(gt, int(round(rng.uniform(1, 4) * px)))
        for mode in ("auto", "model", "lasso"):
            mask, _ = lasso_mask(predict, empty, poly, True, px, mode=mode)
            out[f"lasso {mode}"].append(iou(mask, gt))
        for s in SLACKS:
            mask, _ = lasso_mask(predict, empty, poly, True, px, mode="model_in_lasso", slack=s)
            out[f"lasso model_in_lasso slack {s:g}"].append(iou(mask, gt))
        x0, y0, x1, y1 = pixel_extent(tight_box(gt))
        d = rng.uniform(-4, 8, size=4) * px
        box = expand_box((x0 - d[0], y0 - d[1], x1 + d[2], y1 + d[3]), 0.0, gt.shape, edge=1.0)
        current = predict(box=box).masks[0]
        out["corrections start"].append(iou(current, gt))
        for _ in range(3):
            err = largest_error(current, gt)
            if err is None:
                break
            region, positive = err
            current, _ = box_only_scribble(predict, current, main_axis_stroke(region), positive, px)
        out["corrections after 3 scribbles"].append(iou(current, gt))
    return {k: float(np.mean(v)) for k, v in out.items()}


def main() -> None:
    args, model, names = study_args(__doc__, "scribbles_lassos.json")
    result: dict = {"model": model.name, "datasets": {}}
    rng = np.random.default_rng(0)
    for folder in discover(args.data, names):
        ds = load_dataset(folder, max_objects=args.max_objects)
        row = measure(Runner(ds, model), rng)
        line = f"{ds.name} " + json.dumps({k: round(v, 3) for k, v in row.items()})
        record(args.out, result, ds.name, row, line)
    keys = next(iter(result["datasets"].values())).keys()
    print("\n| variant | " + " | ".join(result["datasets"]) + " | mean |")
    print("|---|" + "---|" * (len(result["datasets"]) + 1))
    for key in keys:
        vals = [d[key] for d in result["datasets"].values()]
        print(f"| {key} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {np.mean(vals):.3f} |")


if __name__ == "__main__":
    main()
