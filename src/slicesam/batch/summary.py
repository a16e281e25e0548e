"""The table printed at the end of ``slicesam batch`` and ``slicesam embed``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .result import FAILED, JobResult

#: (heading, JobResult attribute) of the columns, by verb.
COLUMNS = {
    "batch": (("volume", "name"), ("objects", "objects"), ("slices", "slices")),
    "embed": (("volume", "name"), ("slices", "slices"), ("embedded", "computed")),
}


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _status(result: JobResult) -> str:
    return f"{FAILED}: {result.error}" if result.status == FAILED else result.status


def summary_table(
    results: Sequence[JobResult], verb: str = "batch", seconds: float | None = None
) -> str:
    """A plain-text table, one row per volume in job order: volume, objects, slices (for
    ``embed``: slices, embedded), seconds, status (with the error of a failed volume), then a
    line of totals (with the run's wall time ``seconds`` when given)."""
    columns = [*COLUMNS[verb], ("seconds", "seconds")]
    rows = [[_cell(getattr(r, attr)) for _, attr in columns] + [_status(r)] for r in results]
    heads = [h for h, _ in columns] + ["status"]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(heads[:-1])]
    right = [False] + [True] * (len(widths) - 1)  # numbers to the right

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells[:-1], widths, right)]
        return "  ".join([*parts, cells[-1]]).rstrip()

    counts = Counter(r.status for r in results)
    total = ", ".join(f"{counts[s]} {s}" for s in ("done", "skipped", "failed") if counts[s])
    n = len(results)
    out = [line(heads)] + [line(row) for row in rows]
    wall = f" in {seconds:.1f} s" if seconds is not None else ""
    out.append(f"{n} volume{'s' if n != 1 else ''}: {total or 'none'}{wall}")
    return "\n".join(out)
