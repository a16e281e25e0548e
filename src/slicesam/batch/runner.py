"""Run the volumes of a batch on dask.distributed: one task per volume, the model loaded once
per worker, results gathered into one :class:`JobResult` per volume.

The cluster is a :class:`distributed.LocalCluster` by default (``workers`` processes on this
machine), or any running dask scheduler by address (``scheduler="tcp://host:8786"``, or the
path of a scheduler file), or a :class:`distributed.Client` the caller made (e.g. on a
dask-jobqueue ``SLURMCluster``). The workers must see the input and output paths as the client
does (a shared file system) and have slicesam installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..errors import SliceSamError
from ..prompts import read_prompts
from .fingerprint import image_stat, labels_path, previous_run, recipe_sha256
from .jobs import Job
from .result import FAILED, JobResult
from .settings import BatchSettings, check_model, default_workers, threads_per_worker
from .tasks import embed_task, segment_task, skipped_result

Note = Callable[[str], None]


@dataclass
class BatchRun:
    """What a batch did.

    Attributes:
        results: one per job, in job order.
        dashboard: the dask dashboard's address ("" when no cluster was needed or it has none).
        workers: per worker address, what its model plugin loaded
            (:meth:`~slicesam.batch.worker.ModelPlugin.info`).
        seconds: wall time of the whole run.
    """

    results: list[JobResult]
    dashboard: str = ""
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> list[JobResult]:
        """The jobs that failed."""
        return [r for r in self.results if r.status == FAILED]


def _quiet_note(text: str) -> None:
    pass


@contextlib.contextmanager
def open_client(
    client: Any = None, scheduler: str | None = None, workers: int | None = None
) -> Iterator[Any]:
    """A :class:`distributed.Client`: ``client`` itself (left open), one connected to
    ``scheduler`` (an address, or a scheduler file), or one on a new LocalCluster of
    ``workers`` single-threaded processes; the last two are closed on exit."""
    if client is not None:
        yield client
        return
    import logging

    from distributed import Client, LocalCluster

    if scheduler is not None:
        kwargs = (
            {"scheduler_file": scheduler} if Path(scheduler).is_file() else {"address": scheduler}
        )
        try:
            made = Client(timeout="30s", **kwargs)
        except (OSError, TimeoutError) as exc:
            raise SliceSamError(f"cannot reach the dask scheduler {scheduler}: {exc}") from None
        with made:
            yield made
        return
    import dask

    # a task reaches a worker only when the worker is free (dask's default sends 1.1 per
    # thread, which for one thread is 2): the scheduler then starts the largest volume first
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(
            n_workers=workers or default_workers(),
            threads_per_worker=1,
            processes=True,
            silence_logs=logging.ERROR,
        )
    with cluster, Client(cluster) as made:
        yield made


def _start_models(client: Any, settings: BatchSettings, loader: Any, note: Note) -> dict:
    """Register the model plugin (every worker loads the model once) and say what loaded;
    raise when no worker has a model."""
    from .worker import ModelPlugin, plugin_info

    plugin = ModelPlugin(
        settings.model, settings.checkpoint, settings.device, settings.threads, loader
    )
    client.register_plugin(plugin)
    infos = client.run(plugin_info)
    loaded = {addr: info for addr, info in infos.items() if not info.get("error")}
    if not loaded:
        errors = sorted({str(info.get("error")) for info in infos.values()})
        raise SliceSamError(f"model {settings.model} did not load on any worker: {errors[0]}")
    for addr, info in infos.items():
        if info.get("error"):
            note(f"worker {addr}: the model did not load ({info['error']}); its tasks will fail")
    devices = sorted({f"{i['device']} ({i['encoder']})" for i in loaded.values()})
    seconds = max(i["seconds"] for i in loaded.values())
    n = len(infos)
    note(
        f"{n} worker{'s' if n != 1 else ''}: model {settings.model} on {', '.join(devices)}, "
        f"loaded in {seconds:.1f} s"
        + (
            f", {settings.threads} thread{'s' if settings.threads != 1 else ''} each"
            if settings.threads
            else ""
        )
    )
    for text in sorted({w for i in loaded.values() for w in i["warnings"]}):
        note(f"workers: {text}")
    return infos


def _gather(futures: Sequence[Any], jobs: Sequence[Job]) -> list[JobResult]:
    """Each future's JobResult, or a failed one when the task itself died (a worker killed)."""
    from distributed import wait
    from distributed.scheduler import KilledWorker

    wait(list(futures))
    results = []
    for fut, job in zip(futures, jobs):
        if fut.status == "finished":
            results.append(fut.result())
            continue
        exc = fut.exception() if fut.status == "error" else None
        if isinstance(exc, KilledWorker):
            error = "the worker running it died (out of memory?); see the worker's log"
        else:
            error = f"{type(exc).__name__}: {exc}" if exc is not None else fut.status
        results.append(JobResult(job.name, FAILED, error=error))
    return results


class _ChangedLines:
    """A stream for dask's progress bar when stderr is not a terminal (a log file): each redraw
    (a carriage return, then the bar) becomes a line, written only when the percentage moved."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._last = ""

    def write(self, text: str) -> int:
        line = text.replace("\33[2K", "").strip("\r\n")
        percent = line.partition("%")[0].rpartition("|")[2].strip() if "%" in line else ""
        if percent and percent != self._last:
            self.stream.write(line + "\n")
            self._last = percent
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _progress(futures: Sequence[Any], stream: TextIO) -> None:
    """dask's text progress bar, on ``stream`` (it writes to stdout otherwise); on a stream
    that is not a terminal, one line per change of the percentage."""
    from distributed import progress

    isatty = getattr(stream, "isatty", None)
    tty = bool(isatty and isatty())
    with contextlib.redirect_stdout(stream if tty else _ChangedLines(stream)):  # type: ignore[type-var]
        progress(list(futures))
    if tty:
        stream.write("[" + "#" * 40 + "] | 100% Completed\n")
        stream.flush()
    # the scheduler's side of the bar finds it closed at its next two writes (100 ms apart);
    # a cluster closed before that logs the cancelled feed as an error
    time.sleep(0.3)


def _run(
    verb: str,
    jobs: Sequence[Job],
    decided: dict[int, JobResult],
    submit: Callable[[Any, int, Job], Any],
    work: Callable[[int], int],
    settings: BatchSettings,
    *,
    client: Any,
    scheduler: str | None,
    workers: int | None,
    loader: Any,
    note: Note,
    show_progress: bool,
    stream: TextIO,
) -> BatchRun:
    """Start (or join) the cluster for the jobs not yet ``decided``, submit them (the
    largest ``work(i)`` first), wait."""
    t0 = time.perf_counter()
    # the largest first: a worker picks the next task when it is free, so a long volume
    # started last would keep one worker busy while the others wait
    todo = sorted((i for i in range(len(jobs)) if i not in decided), key=lambda i: -work(i))
    run = BatchRun([])
    if todo:
        local = client is None and scheduler is None
        if local and settings.threads is None:
            n = workers or default_workers()
            settings = dataclasses.replace(settings, threads=threads_per_worker(n))
        with open_client(client, scheduler, workers) as cl:
            run.dashboard = _dashboard(cl)
            if run.dashboard:
                note(f"dask dashboard: {run.dashboard}")
            run.workers = _start_models(cl, settings, loader, note)
            futures = [submit(cl, i, jobs[i]) for i in todo]
            if show_progress:
                _progress(futures, stream)
            for i, result in zip(todo, _gather(futures, [jobs[i] for i in todo])):
                decided[i] = result
    run.results = [decided[i] for i in range(len(jobs))]
    for result in run.results:
        for text in result.notes:
            note(f"{result.name}: {text}")
    run.seconds = round(time.perf_counter() - t0, 2)
    return run


def _dashboard(client: Any) -> str:
    try:
        services = client.scheduler_info().get("services", {})
        return str(client.dashboard_link) if "dashboard" in services else ""
    except Exception:  # the link is a convenience: never a reason to stop
        return ""


def _size(image: Path | list[list]) -> int:
    """Bytes on disk of an image (or of its :func:`image_stat`): with the number of objects,
    a rough size of its task, to submit the largest first."""
    stat = image_stat(image) if isinstance(image, Path) else image
    return int(sum(row[1] for row in stat))


def _output_folder(out: str | Path, jobs: Sequence[Job]) -> Path:
    """The output folder, made and checked: writable, and no labels file would replace an
    input image."""
    folder = Path(out).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise SliceSamError(f"the output {folder} is a file; give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SliceSamError(f"cannot make the output folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SliceSamError(f"cannot write in the output folder {folder}: no permission")
    for job in jobs:
        if labels_path(job, folder) == job.image:
            raise SliceSamError(
                f"the labels of {job.name} would replace its image {job.image}; "
                "give another output folder"
            )
    return folder


def run_batch(
    jobs: Sequence[Job],
    out: str | Path,
    settings: BatchSettings | None = None,
    *,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    force: bool = False,
    loader: Callable | None = None,
    note: Note | None = None,
    show_progress: bool = False,
    stream: TextIO | None = None,
) -> BatchRun:
    """Segment every job's volume from its prompts into ``OUT/NAME.nii.gz`` (``.tif`` for TIFF
    volumes), each next to its record ``NAME.batch.json``; a failed volume leaves
    ``NAME.error.txt`` (its traceback) instead.

    Args:
        jobs: from :func:`slicesam.batch.jobs.read_jobs`.
        out: output folder (created; the workers must see it at the same path).
        settings: model and options (defaults: LiteMedSAM, each volume's default window).
        client: a :class:`distributed.Client` to use (left open); else ``scheduler``: an
            address (``tcp://host:8786``) or a scheduler file; else a LocalCluster of
            ``workers`` processes (default :func:`~slicesam.batch.settings.default_workers`)
            with the cores shared out among their models.
        force: run every volume, even those whose labels are current.
        loader: builds the model on each worker (see
            :class:`~slicesam.batch.worker.ModelPlugin`); None for the model registry.
        note: receives status lines (workers, dashboard link, warnings); None for silence.
        show_progress: draw dask's progress bar on ``stream`` (default stderr).

    Returns:
        a :class:`BatchRun`: one :class:`JobResult` per job, in order. Volumes whose labels
        exist for the same image bytes, prompts and settings are skipped; volumes that fail
        (an unreadable image, prompts that do not fit it) are reported there and the others go
        on. No cluster starts when nothing is left to do.

    Raises:
        SliceSamError: before any work, when the output folder cannot be made or the model
            is unknown or not available; or when the model loads on no worker.
    """
    settings = settings or BatchSettings()
    note = note or _quiet_note
    if loader is None:  # a custom loader takes names the registry does not know
        check_model(settings, local=client is None and scheduler is None)
    folder = _output_folder(out, jobs)
    decided: dict[int, JobResult] = {}
    recipes: dict[int, str] = {}
    known: dict[int, str | None] = {}
    work: dict[int, int] = {}
    for i, job in enumerate(jobs):
        try:
            recipes[i] = recipe_sha256(job, settings)
        except SliceSamError as exc:  # a bad prompts file fails its volume only
            decided[i] = JobResult(job.name, FAILED, error=str(exc))
            continue
        stat = image_stat(job.image)
        record = None if force else previous_run(job, folder, recipes[i])
        if record is None:
            known[i] = None
        elif record.get("image_stat") == stat:
            decided[i] = skipped_result(job, folder, record)
            continue
        else:
            known[i] = record.get("image_sha256")
        work[i] = _size(stat) * len(read_prompts(job.prompts))

    n, skipped = len(jobs), sum(r.status != FAILED for r in decided.values())
    failed = len(decided) - skipped
    note(
        f"{n} volume{'s' if n != 1 else ''} -> {folder}: {n - len(decided)} to segment"
        + (f", {skipped} current (skipped)" if skipped else "")
        + (f", {failed} with bad prompts" if failed else "")
    )

    def submit(cl: Any, i: int, job: Job) -> Any:
        args = (job, str(folder), settings, recipes[i], known[i])
        return cl.submit(segment_task, *args, pure=False)

    return _run(
        "batch",
        jobs,
        decided,
        submit,
        work.__getitem__,
        settings,
        client=client,
        scheduler=scheduler,
        workers=workers,
        loader=loader,
        note=note,
        show_progress=show_progress,
        stream=stream or sys.stderr,
    )


def run_embed(
    jobs: Sequence[Job],
    settings: BatchSettings | None = None,
    *,
    cache_dir: str | Path | None = None,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    loader: Callable | None = None,
    note: Note | None = None,
    show_progress: bool = False,
    stream: TextIO | None = None,
) -> BatchRun:
    """Compute the on-disk embedding cache of every job's volume, as
    ``Session(volume, disk_cache=cache_dir)`` would fill it, so sessions on these volumes
    (same window, model, weights and encoder variant) start warm.

    Args:
        jobs: from :func:`slicesam.batch.jobs.read_jobs` (prompts are not needed).
        settings: model and options; ``window`` must be the one the sessions will use (None:
            each volume's default window, as a session without ``window=`` has).
        cache_dir: the embeddings folder, as the workers see it; None for each worker's user
            cache folder (``$SLICESAM_CACHE_DIR/embeddings``), where ``disk_cache=True`` looks.
        client, scheduler, workers, loader, note, show_progress, stream: as for
            :func:`run_batch`.

    Returns:
        a :class:`BatchRun`; a volume whose slices were all cached already is "skipped".
    """
    settings = settings or BatchSettings()
    note = note or _quiet_note
    if loader is None:
        check_model(settings, embeddings=True, local=client is None and scheduler is None)
    where = None if cache_dir is None else str(Path(cache_dir).expanduser().resolve())
    if where is None:
        from ..user_cache import embeddings_dir

        target = f"{embeddings_dir()} (the user cache; each worker's own)"
    else:
        target = where
    note(f"{len(jobs)} volume{'s' if len(jobs) != 1 else ''} -> {target}")

    def submit(cl: Any, i: int, job: Job) -> Any:
        return cl.submit(embed_task, job, settings, where, pure=False)

    return _run(
        "embed",
        jobs,
        {},
        submit,
        lambda i: _size(jobs[i].image),
        settings,
        client=client,
        scheduler=scheduler,
        workers=workers,
        loader=loader,
        note=note,
        show_progress=show_progress,
        stream=stream or sys.stderr,
    )
