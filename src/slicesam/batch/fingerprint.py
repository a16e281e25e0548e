"""The record a finished volume leaves next to its labels, and the re-run's decision to skip it.

After ``OUT/NAME.nii.gz`` is written, ``OUT/NAME.batch.json`` records what it was made from:

- ``recipe``: a hash of the prompts (as parsed, so whitespace and key order do not count), the
  settings that change results (:meth:`BatchSettings.recipe`), the job's DICOM series and the
  slicesam version;
- ``image_sha256``: the hash of the image's bytes (every file of a folder);
- ``image_stat``: the image files' sizes and modification times, so an untouched image is
  recognised without reading it again;
- what the run gave (objects, slices, seconds), for the summary of a re-run.

A re-run skips a volume whose labels file exists and whose record has the same recipe and
either the same ``image_stat`` (decided in the client, nothing read) or, when the stat differs
(a copy, a ``touch``), the same ``image_sha256`` (decided on the worker, which hashes the
image before anything else). Records are written atomically after the labels, so a killed run
never leaves a record for labels that are not there.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..prompts import prompts_to_json, read_prompts
from .jobs import Job
from .settings import BatchSettings

#: Ending of the record next to a labels file.
RECORD_SUFFIX = ".batch.json"
_CHUNK = 1 << 20


def _files(path: Path) -> list[Path]:
    """The files that make up an image: itself, or every file under a folder, sorted."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path]


def image_stat(path: Path) -> list[list]:
    """[[relative name, size, mtime_ns], ...] of the files of an image (a file or a folder)."""
    base = path if path.is_dir() else path.parent
    out = []
    for p in _files(path):
        st = p.stat()
        out.append([p.relative_to(base).as_posix(), st.st_size, st.st_mtime_ns])
    return out


def image_sha256(path: Path) -> str:
    """sha256 of an image's bytes; for a folder, of every file's relative name and bytes."""
    digest = hashlib.sha256()
    base = path if path.is_dir() else path.parent
    for p in _files(path):
        if path.is_dir():
            digest.update(p.relative_to(base).as_posix().encode("utf-8") + b"\0")
        with open(p, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def recipe_sha256(job: Job, settings: BatchSettings) -> str:
    """Hash of everything a job's labels depend on besides the image bytes: its prompts (read
    and validated; raises :class:`~slicesam.errors.PromptError` for a bad file), its series,
    the settings' :meth:`~BatchSettings.recipe` and the slicesam version."""
    from .. import __version__

    prompts = prompts_to_json(read_prompts(job.prompts)) if job.prompts is not None else None
    doc = {
        "prompts": prompts,
        "series": job.series,
        "settings": settings.recipe(),
        "slicesam": __version__,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()


def labels_path(job: Job, out: Path) -> Path:
    """Where a job's labels go in the output folder ``out``."""
    return out / f"{job.name}{job.labels_suffix()}"


def record_path(job: Job, out: Path) -> Path:
    """Where a job's record goes in the output folder ``out``."""
    return out / f"{job.name}{RECORD_SUFFIX}"


def read_record(path: Path) -> dict[str, Any] | None:
    """A record, or None when there is none or it cannot be read (then the job runs again)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Write a record atomically (a temporary file in the same folder, then a rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=RECORD_SUFFIX)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def previous_run(job: Job, out: Path, recipe: str) -> dict[str, Any] | None:
    """The record of an earlier run of ``job`` into ``out`` with the same recipe whose labels
    file is still there, or None (the job must run)."""
    if not labels_path(job, out).is_file():
        return None
    record = read_record(record_path(job, out))
    if record is None or record.get("recipe") != recipe:
        return None
    return record
