"""Many volumes at once on dask.distributed: ``slicesam batch`` and ``slicesam embed``.

Modules, one job each: :mod:`~slicesam.batch.jobs` reads JOBS (a folder or a manifest),
:mod:`~slicesam.batch.settings` holds the options every volume shares,
:mod:`~slicesam.batch.segment` is one volume's work (shared with ``slicesam segment``),
:mod:`~slicesam.batch.fingerprint` the record that lets a re-run skip a volume,
:mod:`~slicesam.batch.worker` the model loaded once per dask worker,
:mod:`~slicesam.batch.tasks` what a worker runs per volume,
:mod:`~slicesam.batch.runner` the cluster, the tasks and their results, and
:mod:`~slicesam.batch.summary` the table at the end.

From Python::

    from slicesam.batch import read_jobs, run_batch
    jobs, notes = read_jobs("cohort/")            # NAME.nii.gz + NAME.prompts.json
    run = run_batch(jobs, "labels/", workers=2)   # or client=Client(SLURMCluster(...))

Importing this package imports no dask (nor does ``import slicesam``); the runner and the
worker plugin import it when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "BatchRun": "slicesam.batch.runner",
    "BatchSettings": "slicesam.batch.settings",
    "Job": "slicesam.batch.jobs",
    "JobResult": "slicesam.batch.result",
    "read_jobs": "slicesam.batch.jobs",
    "run_batch": "slicesam.batch.runner",
    "run_embed": "slicesam.batch.runner",
    "summary_table": "slicesam.batch.summary",
}

__all__ = [
    "BatchRun",
    "BatchSettings",
    "Job",
    "JobResult",
    "read_jobs",
    "run_batch",
    "run_embed",
    "summary_table",
]

if TYPE_CHECKING:  # pragma: no cover
    from .jobs import Job, read_jobs
    from .result import JobResult
    from .runner import BatchRun, run_batch, run_embed
    from .settings import BatchSettings
    from .summary import summary_table


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'slicesam.batch' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
