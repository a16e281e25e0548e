"""``slicesam batch JOBS --out DIR`` (segment many volumes) and ``slicesam embed JOBS`` (fill the
on-disk embedding cache of many volumes), on dask.distributed.

Kept apart from :mod:`slicesam.cli`, which only calls :func:`add_batch_parsers`. Nothing here
imports dask until a verb runs. Everything the client can check (the jobs, their files, the
model name, the output folder) is checked before a cluster starts; a volume that fails later is
a row of the summary. Status lines, the dashboard link and dask's progress bar go to stderr;
the summary table to stdout. Exit status: 0 when no volume failed, 1 otherwise, 2 for bad
input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import SliceSamError

EXIT_FAILED = 1

DESCRIPTION_JOBS = (
    "a folder of volumes with NAME.prompts.json next to each NAME.nii.gz (or .tif), or a "
    "manifest: .csv with columns image,prompts[,name,series] or .json "
    '{"jobs": [{"image": ..., "prompts": ...}]}'
)


def _settings(args: argparse.Namespace, propagate: bool = True):
    from .batch.settings import BatchSettings, parse_window

    if args.threads is not None and args.threads < 1:
        raise SliceSamError(f"--threads must be at least 1, got {args.threads}")
    return BatchSettings(
        model=args.model,
        checkpoint=args.checkpoint,
        device=args.device,
        window=parse_window(args.window),
        modality=args.modality,
        channel=args.channel,
        fill_nonfinite=args.fill_nonfinite,
        propagate=propagate,
        threads=args.threads,
    )


def _where(args: argparse.Namespace) -> dict:
    if args.workers is not None and args.workers < 1:
        raise SliceSamError(f"--workers must be at least 1, got {args.workers}")
    return {"scheduler": args.scheduler, "workers": args.workers}


def _note(args: argparse.Namespace):
    def note(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    return note


def _finish(run, verb: str, args: argparse.Namespace) -> int:
    from .batch.summary import summary_table

    print(summary_table(run.results, verb, run.seconds))
    return EXIT_FAILED if run.failed else 0


def cmd_batch(args: argparse.Namespace) -> int:
    """Segment every volume of JOBS into ``--out`` on a dask cluster."""
    from .batch.jobs import read_jobs
    from .batch.runner import run_batch

    note = _note(args)
    jobs, notes = read_jobs(args.jobs, prompts=True)
    for text in notes:
        note(text)
    out = Path(args.out)
    settings = _settings(args, propagate=args.propagate)
    where = _where(args)
    try:
        run = run_batch(
            jobs,
            out,
            settings,
            force=args.force,
            note=note,
            show_progress=not args.quiet,
            **where,
        )
    except KeyboardInterrupt:
        print(
            f"slicesam: interrupted; the volumes already finished are in {out} "
            "(run again to do the rest)",
            file=sys.stderr,
        )
        return 130
    return _finish(run, "batch", args)


def cmd_embed(args: argparse.Namespace) -> int:
    """Compute the on-disk embedding cache of every volume of JOBS on a dask cluster."""
    from .batch.jobs import read_jobs
    from .batch.runner import run_embed

    note = _note(args)
    jobs, notes = read_jobs(args.jobs, prompts=False)
    for text in notes:
        note(text)
    settings = _settings(args)
    where = _where(args)
    try:
        run = run_embed(
            jobs,
            settings,
            cache_dir=args.cache_dir,
            note=note,
            show_progress=not args.quiet,
            **where,
        )
    except KeyboardInterrupt:
        print("slicesam: interrupted; the slices already embedded stay cached", file=sys.stderr)
        return 130
    return _finish(run, "embed", args)


def _common(parser: argparse.ArgumentParser) -> None:
    """The options ``batch`` and ``embed`` share: where to run and what model and window."""
    from .models.device import DEVICE_CHOICES

    parser.add_argument("jobs", metavar="JOBS", help=DESCRIPTION_JOBS)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="a running dask scheduler (tcp://host:8786) or its scheduler file; "
        "default: a LocalCluster on this machine",
    )
    where.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes of the LocalCluster (default: half the cores, 1 to 4)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads of each worker's model (default on a LocalCluster: the cores "
        "shared out among the workers)",
    )
    parser.add_argument("--model", default="litemedsam", help="model name (slicesam models)")
    parser.add_argument("--checkpoint", default=None, help="weights file, as the workers see it")
    parser.add_argument(
        "--device", default="auto", choices=DEVICE_CHOICES, help="resolved on each worker"
    )
    parser.add_argument("--window", default=None, help="intensity window LO,HI or a CT preset")
    parser.add_argument("--channel", type=int, default=None, help="channel of 4D files")
    parser.add_argument("--modality", default=None, choices=["CT", "MR", "microscopy"])
    parser.add_argument(
        "--fill-nonfinite", type=float, default=None, metavar="V", help="replace NaN/inf by V"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress on stderr (the summary stays)"
    )


def add_batch_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``batch`` and ``embed`` to the ``slicesam`` subcommands."""
    batch = sub.add_parser(
        "batch",
        help="segment many volumes from their prompts files on a dask cluster",
        description="Segment every volume of JOBS from its prompts file, one dask task per "
        "volume, into --out/NAME.nii.gz (.tif for TIFF volumes) with a NAME.batch.json "
        "record; a re-run skips volumes whose labels are current.",
    )
    _common(batch)
    batch.add_argument("--out", required=True, help="output folder for the label files")
    batch.add_argument(
        "--no-propagate", dest="propagate", action="store_false", help="only the prompted slices"
    )
    batch.add_argument(
        "--force", action="store_true", help="segment every volume again, even current ones"
    )
    batch.set_defaults(func=cmd_batch)

    embed = sub.add_parser(
        "embed",
        help="precompute the embedding cache of many volumes, so sessions start warm",
        description="Embed every slice of every volume of JOBS (a folder of volumes, a "
        "manifest, or one volume) into the on-disk cache that Session(..., disk_cache=...) "
        "reads. The cache key includes the window, model, weights and encoder variant.",
    )
    _common(embed)
    embed.add_argument(
        "--cache-dir",
        default=None,
        help="embeddings folder (default: the user cache, $SLICESAM_CACHE_DIR/embeddings, "
        "where Session(disk_cache=True) looks)",
    )
    embed.set_defaults(func=cmd_embed)
