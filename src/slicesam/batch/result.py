"""What one task of a batch returns to the client: picklable plain data, never an exception."""

from __future__ import annotations

from dataclasses import dataclass, field

#: The states of a finished job.
DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclass
class JobResult:
    """The outcome of one volume.

    Attributes:
        name: the job's name.
        status: ``"done"``, ``"skipped"`` (an earlier run's output is current) or ``"failed"``.
        objects: objects segmented (``batch``), or None.
        slices: slices holding labels (``batch``) or slices of the volume (``embed``).
        computed: slices embedded by this run (``embed``; the others were in the cache).
        seconds: wall time of the task on its worker (None for a volume skipped in the
            client).
        error: one line saying why it failed (``status == "failed"``).
        notes: warnings raised while it ran (e.g. a constant volume), one line each.
        output: the labels file or embeddings folder written, or None.
        worker: the address of the worker that ran it ("" when decided in the client).
    """

    name: str
    status: str
    objects: int | None = None
    slices: int | None = None
    computed: int | None = None
    seconds: float | None = None
    error: str = ""
    notes: list[str] = field(default_factory=list)
    output: str | None = None
    worker: str = ""
