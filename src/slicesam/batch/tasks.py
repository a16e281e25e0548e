"""The functions a dask worker runs, one call per volume. Each returns a :class:`JobResult`
and never raises: a volume that fails is reported and the others go on.

They use the worker's model (:func:`slicesam.batch.worker.worker_model`) and the one-volume
work of :mod:`slicesam.batch.segment`, so a batch segments each volume exactly as
``slicesam segment`` does.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

from ..errors import SliceSamError
from .fingerprint import (
    image_sha256,
    image_stat,
    labels_path,
    previous_run,
    record_path,
    write_record,
)
from .jobs import Job
from .result import DONE, FAILED, SKIPPED, JobResult
from .settings import BatchSettings

#: Ending of the file holding a failed volume's traceback, next to where its labels would be.
ERROR_SUFFIX = ".error.txt"


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except ValueError:  # not on a worker (called directly)
        return ""


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, SliceSamError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


@contextlib.contextmanager
def _recorded_warnings(notes: list[str]) -> Iterator[None]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                text = str(w.message).splitlines()[0]
                if text not in notes:
                    notes.append(text)


def segment_task(
    job: Job, out: str, settings: BatchSettings, recipe: str, known_sha256: str | None = None
) -> JobResult:
    """Segment one volume on a dask worker and write ``OUT/NAME.nii.gz`` (or ``.tif``) and its
    record (:mod:`slicesam.batch.fingerprint`), both atomically.

    Args:
        job: the volume and its prompts.
        out: the output folder (as the workers see it).
        settings: model and options of the batch.
        recipe: :func:`~slicesam.batch.fingerprint.recipe_sha256` of the job, from the client.
        known_sha256: the image hash of an earlier run with the same recipe whose labels are
            still there (its image stat changed): when the bytes are the same, the volume is
            skipped and only the record's stat is renewed.
    """
    t0 = time.perf_counter()
    folder = Path(out)
    result = JobResult(job.name, FAILED, worker=_worker_address())
    error_file = folder / f"{job.name}{ERROR_SUFFIX}"
    try:
        with _recorded_warnings(result.notes):
            stat = image_stat(job.image)
            digest = image_sha256(job.image)
            if known_sha256 is not None and digest == known_sha256:
                earlier = previous_run(job, folder, recipe)
                if earlier is not None:
                    write_record(record_path(job, folder), {**earlier, "image_stat": stat})
                    skipped = skipped_result(job, folder, earlier, result.worker)
                    skipped.seconds = round(time.perf_counter() - t0, 2)
                    return skipped
            _segment(job, folder, settings, result)
            result.seconds = round(time.perf_counter() - t0, 2)
            write_record(
                record_path(job, folder),
                {
                    "name": job.name,
                    "image": str(job.image),
                    "prompts": str(job.prompts),
                    "recipe": recipe,
                    "image_sha256": digest,
                    "image_stat": stat,
                    "objects": result.objects,
                    "slices": result.slices,
                    "seconds": result.seconds,
                    "settings": settings.recipe(),
                },
            )
        error_file.unlink(missing_ok=True)
        result.status = DONE
    except Exception as exc:
        result.error = _one_line(exc)
        result.seconds = round(time.perf_counter() - t0, 2)
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            error_file.write_text(
                f"{job.image}\n{result.error}\n\n{traceback.format_exc()}", encoding="utf-8"
            )
    return result


def _segment(job: Job, folder: Path, settings: BatchSettings, result: JobResult) -> None:
    from ..engine.session import Session
    from ..io import save_labels
    from .segment import load_inputs, segment_objects
    from .worker import worker_model

    assert job.prompts is not None
    vol, objects = load_inputs(
        job.image,
        job.prompts,
        series=job.series,
        **settings.read_options(),
    )
    model, threads = worker_model()
    sess = Session(vol, model=model, window=settings.window)
    if threads:
        sess.limit_threads(threads)
    done = segment_objects(sess, objects, propagate=settings.propagate)
    path = save_labels(labels_path(job, folder), sess.labels, like=vol)
    result.objects, result.slices, result.output = done.objects, done.slices, str(path)


def skipped_result(job: Job, folder: Path, record: dict, worker: str = "") -> JobResult:
    """The result of a job skipped because ``record`` (an earlier run's) is current."""
    return JobResult(
        job.name,
        SKIPPED,
        objects=record.get("objects"),
        slices=record.get("slices"),
        output=str(labels_path(job, folder)),
        worker=worker,
    )


def embed_task(job: Job, settings: BatchSettings, cache_dir: str | None) -> JobResult:
    """Embed every slice of one volume on a dask worker into the on-disk embedding cache that
    :class:`slicesam.Session` reads with ``disk_cache=`` (``cache_dir``, or True: the user
    cache folder), so a later session on the volume, with the same window, model, weights and
    encoder, starts warm. Slices already in the cache are not embedded again."""
    t0 = time.perf_counter()
    result = JobResult(job.name, FAILED, worker=_worker_address())
    try:
        from ..engine.session import Session
        from ..io import load_volume
        from .worker import worker_model

        with _recorded_warnings(result.notes):
            vol = load_volume(
                job.image,
                series=job.series,
                **settings.read_options(),
            )
            model, threads = worker_model()
            if not model.capabilities.packs_embeddings:
                raise SliceSamError(f"model {model.name} keeps no embeddings on disk")
            disk: str | bool = os.fspath(cache_dir) if cache_dir is not None else True
            # a small memory budget: every embedding goes to disk, none is needed twice here
            sess = Session(vol, model=model, window=settings.window, disk_cache=disk, cache_bytes=1)
            if threads:
                sess.limit_threads(threads)
            store = sess.cache.store
            assert store is not None
            computed = 0
            for z in range(vol.shape[0]):
                if z in store:
                    continue
                sess.embed(z)
                computed += 1
        result.slices, result.computed = vol.shape[0], computed
        result.output = str(store.folder)
        result.status = DONE if computed else SKIPPED
    except Exception as exc:
        result.error = _one_line(exc)
    result.seconds = round(time.perf_counter() - t0, 2)
    return result
