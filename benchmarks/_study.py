"""Command-line plumbing shared by the studies in ``benchmarks/`` (run as scripts)."""

from __future__ import annotations

import argparse


def study_args(doc: str, out_name: str, clicks: int | None = None):
    """(args, model, dataset names or None) for a study: ``--data``, ``--datasets``,
    ``--max-objects``, ``--model``, ``--out`` (default ``benchmarks/results/<out_name>``) and,
    with ``clicks``, ``--clicks``."""
    from slicesam.models.registry import load_model

    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--data", default="../shared/datasets")
    parser.add_argument("--datasets", default=None, help="comma-separated dataset names")
    parser.add_argument("--max-objects", type=int, default=None)
    parser.add_argument("--model", default="litemedsam")
    parser.add_argument("--out", default=f"benchmarks/results/{out_name}")
    if clicks is not None:
        parser.add_argument("--clicks", type=int, default=clicks)
    args = parser.parse_args()
    names = args.datasets.split(",") if args.datasets else None
    return args, load_model(args.model), names
