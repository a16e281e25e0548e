"""Command-line plumbing shared by the studies in ``benchmarks/`` (run as scripts)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path


def study_args(
    doc: str,
    out_name: str,
    clicks: int | None = None,
    more: Callable[[argparse.ArgumentParser], None] | None = None,
):
    """(args, model, dataset names or None) for a study: ``--data``, ``--datasets``,
    ``--max-objects``, ``--model``, ``--out`` (default ``benchmarks/results/<out_name>``),
    with ``clicks`` ``--clicks``, and whatever ``more(parser)`` adds."""
    from slicesam.models.registry import load_model

    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--data", default="../shared/datasets")
    parser.add_argument("--datasets", default=None, help="comma-separated dataset names")
    parser.add_argument("--max-objects", type=int, default=None)
    parser.add_argument("--model", default="litemedsam")
    parser.add_argument("--out", default=f"benchmarks/results/{out_name}")
    if clicks is not None:
        parser.add_argument("--clicks", type=int, default=clicks)
    if more is not None:
        more(parser)
    args = parser.parse_args()
    names = args.datasets.split(",") if args.datasets else None
    return args, load_model(args.model), names


def save(out: str | Path, result: dict) -> None:
    """Write a study's results so far as JSON (after every dataset: a stopped run keeps them)."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=1))


def record(out: str | Path, result: dict, name: str, row: dict, line: str) -> None:
    """Keep one dataset's ``row`` in ``result["datasets"]``, print its table ``line`` and
    :func:`save` the results so far."""
    result["datasets"][name] = row
    print(line, flush=True)
    save(out, result)
