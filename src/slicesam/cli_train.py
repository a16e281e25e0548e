"""``slicesam train-clicks --data DIR --out DIR``: train LiteMedSAM's decoder for clicks on the
benchmark datasets' ``training_objects`` (:mod:`slicesam.training`). Kept apart from
:mod:`slicesam.cli`, which only calls :func:`add_train_parser`; torch loads when the verb runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .errors import SliceSamError


def cmd_train_clicks(args: argparse.Namespace) -> int:
    from .training.click_run import train_clicks
    from .training.click_training import Recipe

    if not Path(args.data).is_dir():
        raise SliceSamError(f"--data {args.data} is not a folder of benchmark datasets")
    if args.samples < Recipe.accumulate:
        raise SliceSamError(f"--samples must be at least {Recipe.accumulate}, got {args.samples}")
    if args.threads is not None and args.threads < 1:
        raise SliceSamError(f"--threads must be at least 1, got {args.threads}")
    recipe = Recipe(samples=args.samples, seed=args.seed, eval_every=args.eval_every)
    card = train_clicks(args.data, args.out, recipe, threads=args.threads, quiet=args.quiet)
    print(json.dumps({k: card[k] for k in ("sha256", "train_seconds", "final_holdout_iou")}))
    return 0


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``train-clicks`` to the ``slicesam`` subcommands."""
    p = sub.add_parser(
        "train-clicks",
        help="train LiteMedSAM's prompt encoder and mask decoder for clicks (CPU)",
        description="Fine-tune LiteMedSAM's prompt encoder and mask decoder with simulated "
        "click rounds on the training_objects of the benchmark datasets under --data (never "
        "their reported or validation objects). Writes click_decoder.pt (float16), its card "
        "(click_decoder.json), train_log.json and train_curve.png into --out.",
    )
    p.add_argument("--data", required=True, help="folder of benchmark datasets (meta.json each)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--samples", type=int, default=6000, help="simulated interactions to train on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=100, help="steps between held-out scores")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train_clicks)
