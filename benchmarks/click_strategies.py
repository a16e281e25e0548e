"""Compare the click strategies of box-only models (``Session(click_strategy=...)``).

Two measurements per strategy of :data:`slicesam.engine.clicks.CLICK_STRATEGIES`, on the
benchmark datasets (BENCHMARK.md's datasets folder):

- **2D corrections**: on the largest slice and two random slices of each object, start from
  the model's mask for a sloppy box (each side of the tight box moved by -4..+8 model pixels,
  as a box carried over from a neighbour slice is), then place 5 error-driven clicks
  (:func:`slicesam.bench.simulate.next_click_2d`) and report the mean IoU after each;
- **P3**: BENCHMARK.md's protocol (one box, propagation, error-driven 3D clicks each followed
  by re-propagation from the clicked slice), mean 3D Dice after each click.

Usage::

    python benchmarks/click_strategies.py --data ../shared/datasets [--datasets a,b]
        [--max-objects N] [--clicks 5] [--out benchmarks/results/click_strategies.json]

Embeddings are computed once per dataset and shared by every strategy.
"""

from __future__ import annotations

import time
from functools import partial

import numpy as np
from _study import save, study_args

from slicesam.bench.datasets import discover, load_dataset
from slicesam.bench.protocols import Runner, p3_correct
from slicesam.bench.simulate import next_click_2d, tight_box
from slicesam.engine.clicks import CLICK_STRATEGIES, box_only_click
from slicesam.engine.masks import expand_box, pixel_extent
from slicesam.metrics import iou
from slicesam.prompts import Point


def correction_cases(run: Runner, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(label, z): the largest slice and up to two random slices of each object."""
    cases = []
    for label in run.dataset.objects:
        gt = run.gt(label)
        zs = np.flatnonzero(gt.any(axis=(1, 2)))
        largest = int(zs[np.argmax(gt[zs].sum(axis=(1, 2)))])
        extra = rng.choice(zs, size=min(2, len(zs)), replace=False)
        cases += [(label, largest)] + [(label, int(z)) for z in extra]
    return cases


def sloppy_box_mask(sess, gt: np.ndarray, z: int, rng: np.random.Generator) -> np.ndarray:
    """The model's mask on slice ``z`` for the tight box with each side moved by -4..+8 model
    pixels (outward positive)."""
    x0, y0, x1, y1 = pixel_extent(tight_box(gt))
    d = rng.uniform(-4, 8, size=4) * sess.model_px
    box = expand_box((x0 - d[0], y0 - d[1], x1 + d[2], y1 + d[3]), 0.0, gt.shape, edge=1.0)
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        box = (x0, y0, x1, y1)
    return sess.model.predict(sess.embed(z), box=box).masks[0]


def corrections_2d(run: Runner, strategy: str, clicks: int) -> list[float]:
    """Mean IoU after 0..clicks error-driven clicks, starting from sloppy-box masks."""
    rng = np.random.default_rng(0)
    sess = run.session()
    curves = []
    for label, z in correction_cases(run, rng):
        gt = run.gt(label)[z]
        current = sloppy_box_mask(sess, gt, z, rng)
        predict = partial(sess.model.predict, sess.embed(z))
        curve = [iou(current, gt)]
        for _ in range(clicks):
            click = next_click_2d(current, gt, z)
            if click is not None:
                point = Point(z, float(click.y), float(click.x), click.positive)
                current, _ = box_only_click(
                    predict, current, point, sess.model_px, strategy=strategy
                )
            curve.append(iou(current, gt))
        curves.append(curve)
    return np.mean(curves, axis=0).tolist()


def main() -> None:
    args, model, names = study_args(__doc__, "click_strategies.json", clicks=5)
    if not model.box_only:
        raise SystemExit(f"{args.model} takes point prompts: click strategies do not apply")
    result: dict = {"model": model.name, "clicks": args.clicks, "datasets": {}}
    for folder in discover(args.data, names):
        ds = load_dataset(folder, max_objects=args.max_objects)
        per: dict = {}
        run = Runner(ds, model)  # one embedding cache for every strategy
        for strategy in CLICK_STRATEGIES:
            run.session_kwargs = {"click_strategy": strategy}
            t0 = time.perf_counter()
            p3 = [p3_correct(run, label, max_clicks=args.clicks) for label in ds.objects]
            per[strategy] = {
                "corrections_2d_iou": corrections_2d(run, strategy, args.clicks),
                "p3_dice": np.mean([r["dice_curve"] for r in p3], axis=0).tolist(),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            row = per[strategy]
            print(
                f"{ds.name:28s} {strategy:9s} 2D IoU "
                + "/".join(f"{v:.3f}" for v in row["corrections_2d_iou"])
                + "  P3 Dice "
                + "/".join(f"{v:.3f}" for v in row["p3_dice"]),
                flush=True,
            )
        result["datasets"][ds.name] = per
        save(args.out, result)


if __name__ == "__main__":
    main()
