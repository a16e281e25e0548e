"""The list of volumes a batch works on, read from a manifest or a folder.

``JOBS`` is one of:

- a folder: every volume in it (``.nii.gz``, ``.nii``, ``.tif``, ``.tiff``) with its prompts
  next to it as ``NAME.prompts.json`` (``case1.nii.gz`` + ``case1.prompts.json``). For
  ``batch``, volumes without a prompts file are left out (and named); a prompts file without
  its volume is an error.
- a CSV manifest (``.csv``): a header line, then one volume a line; columns ``image``
  (required), ``prompts`` (required for ``batch``), ``name`` and ``series`` (optional).
  Blank lines and lines starting with ``#`` are skipped.
- a JSON manifest (``.json``): ``{"jobs": [{"image": ..., "prompts": ..., "name": ...,
  "series": ...}, ...]}`` or the bare list.
- for ``embed`` only: a single volume file.

Relative paths in a manifest are relative to the manifest's folder. ``name`` (default: the
image's file name without its ending) names the output (``OUT/NAME.nii.gz``) and the row of
the summary; names must be unique. Every problem (a missing file, a bad line, a duplicate
name) raises :class:`~slicesam.errors.SliceSamError` with one line naming the file and line,
before any volume is read.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SliceSamError
from ..io._common import SUPPORTED_SUFFIXES, file_format, format_suffix

#: Ending of the prompts file that goes with ``NAME.nii.gz`` in a folder of jobs.
PROMPTS_SUFFIX = ".prompts.json"
#: Columns (CSV) or keys (JSON) of a manifest entry.
FIELDS = ("image", "prompts", "name", "series")


@dataclass(frozen=True)
class Job:
    """One volume of a batch.

    Attributes:
        name: unique name: the output is ``NAME`` plus the labels' ending, in the output folder.
        image: absolute path of the volume (file, or DICOM series folder).
        prompts: absolute path of its prompts JSON (None for ``embed`` jobs).
        series: SeriesInstanceUID to pick in a DICOM folder holding several, or None.
    """

    name: str
    image: Path
    prompts: Path | None = None
    series: str | None = None

    def labels_suffix(self) -> str:
        """The ending of this job's labels file: ``.tif`` for a TIFF volume, else ``.nii.gz``
        (NIfTI volumes and DICOM series alike)."""
        return ".tif" if file_format(self.image) == "tiff" else ".nii.gz"


def volume_name(path: Path) -> str:
    """A volume's name: its file name without the format ending (``case1.nii.gz`` ->
    ``case1``)."""
    suffix = format_suffix(path) if file_format(path) else path.suffix
    return path.name[: len(path.name) - len(suffix)] if suffix else path.name


def _is_volume(path: Path) -> bool:
    name = path.name.lower()
    return not name.startswith(".") and name.endswith(SUPPORTED_SUFFIXES)


def read_jobs(source: str | Path, *, prompts: bool = True) -> tuple[list[Job], list[str]]:
    """Read the jobs of ``source`` (a folder, a ``.csv`` or ``.json`` manifest; with
    ``prompts=False`` also a single volume file).

    Args:
        source: see the module docstring.
        prompts: True for ``batch`` (each job needs its prompts file), False for ``embed``
            (prompts are not needed and, in a folder, not looked for).

    Returns:
        the jobs in manifest (or file-name) order, and notes for the user (e.g. the volumes of
        a folder left out for want of a prompts file).

    Raises:
        SliceSamError: one line saying what is wrong and where.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise SliceSamError(f"jobs not found: {path} (give a folder, a .csv or a .json manifest)")
    if path.is_dir() and not _is_volume(path):
        jobs, notes = _folder_jobs(path, prompts)
    elif path.name.lower().endswith(".csv"):
        jobs, notes = _csv_jobs(path, prompts), []
    elif path.name.lower().endswith(".json"):
        jobs, notes = _json_jobs(path, prompts), []
    elif not prompts and _is_volume(path):
        jobs, notes = [Job(volume_name(path), path.resolve())], []
    else:
        what = "a folder, a .csv or a .json manifest" + ("" if prompts else ", or a volume")
        raise SliceSamError(f"cannot read jobs from {path}: give {what}")
    if not jobs:
        raise SliceSamError(f"{path} lists no volumes")
    return jobs, notes


def _folder_jobs(folder: Path, prompts: bool) -> tuple[list[Job], list[str]]:
    entries = sorted(folder.iterdir(), key=lambda p: p.name)
    volumes = {volume_name(p): p for p in entries if _is_volume(p)}
    if not prompts:
        if not volumes:
            raise SliceSamError(f"{folder} holds no volume ({', '.join(SUPPORTED_SUFFIXES)})")
        return [Job(name, p.resolve()) for name, p in volumes.items()], []
    prompt_files = {
        p.name[: -len(PROMPTS_SUFFIX)]: p for p in entries if p.name.endswith(PROMPTS_SUFFIX)
    }
    orphans = sorted(set(prompt_files) - set(volumes))
    if orphans:
        raise SliceSamError(
            f"{folder / (orphans[0] + PROMPTS_SUFFIX)} has no volume next to it "
            f"({orphans[0]}.nii.gz, .nii, .tif or .tiff)"
        )
    if not prompt_files:
        raise SliceSamError(
            f"{folder} holds no NAME{PROMPTS_SUFFIX} next to a volume NAME.nii.gz (or .tif): "
            "nothing to segment"
        )
    jobs = [
        Job(name, image.resolve(), prompt_files[name].resolve())
        for name, image in volumes.items()
        if name in prompt_files
    ]
    left_out = [image.name for name, image in volumes.items() if name not in prompt_files]
    notes = []
    if left_out:
        notes.append(
            f"{len(left_out)} volume{'s' if len(left_out) != 1 else ''} without a "
            f"NAME{PROMPTS_SUFFIX} left out: {', '.join(left_out)}"
        )
    return jobs, notes


def _job(entry: dict[str, Any], base: Path, where: str, prompts: bool) -> Job:
    """A :class:`Job` from one manifest entry (values are strings or None)."""
    unknown = [k for k in entry if k not in FIELDS]
    if unknown:
        raise SliceSamError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
    for key, value in entry.items():
        if value is not None and not isinstance(value, str):
            raise SliceSamError(f"{where}: {key} must be a string, got {json.dumps(value)}")
    values = {k: (v.strip() if isinstance(v, str) else None) or None for k, v in entry.items()}
    if values.get("image") is None:
        raise SliceSamError(f"{where}: no image")
    image = (base / Path(values["image"]).expanduser()).resolve()
    if not image.exists():
        raise SliceSamError(f"{where}: image not found: {image}")
    prompt_path = None
    if prompts:
        if values.get("prompts") is None:
            raise SliceSamError(f"{where}: no prompts file for {values['image']}")
        prompt_path = (base / Path(values["prompts"]).expanduser()).resolve()
        if not prompt_path.is_file():
            raise SliceSamError(f"{where}: prompts file not found: {prompt_path}")
    name = values.get("name") or volume_name(image)
    if "/" in name or "\\" in name or name in (".", ".."):
        raise SliceSamError(f"{where}: name {name!r} must be a plain file name")
    return Job(name, image, prompt_path, values.get("series"))


def _unique(jobs: list[Job], where: list[str]) -> list[Job]:
    seen: dict[str, str] = {}
    for job, place in zip(jobs, where):
        if job.name in seen:
            raise SliceSamError(
                f"{place}: name {job.name!r} is already used by {seen[job.name]}; "
                "outputs would overwrite each other (add a name column)"
            )
        seen[job.name] = place
    return jobs


def _csv_jobs(path: Path, prompts: bool) -> list[Job]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SliceSamError(f"cannot read manifest {path}: {exc}") from None
    rows = [
        (n, row)
        for n, row in enumerate(csv.reader(text.splitlines()), 1)
        if row and any(c.strip() for c in row) and not row[0].lstrip().startswith("#")
    ]
    if not rows:
        raise SliceSamError(f"{path} lists no volumes")
    header_line, header = rows[0]
    header = [h.strip().lower() for h in header]
    if "image" not in header:
        raise SliceSamError(
            f"{path} line {header_line}: the first line must name the columns, e.g. "
            f"image,prompts,name (got {','.join(header)})"
        )
    jobs, where = [], []
    for n, row in rows[1:]:
        place = f"{path} line {n}"
        if len(row) != len(header):
            raise SliceSamError(f"{place}: {len(row)} fields, the header has {len(header)}")
        jobs.append(_job(dict(zip(header, row)), path.parent, place, prompts))
        where.append(place)
    return _unique(jobs, where)


def _json_jobs(path: Path, prompts: bool) -> list[Job]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SliceSamError(f"cannot read manifest {path}: {exc}") from None
    except ValueError as exc:
        raise SliceSamError(f"manifest {path} is not valid JSON: {exc}") from None
    if isinstance(doc, dict):
        if "objects" in doc:
            raise SliceSamError(
                f"{path} is a prompts file, not a manifest: give the folder holding it, or a "
                'manifest {"jobs": [{"image": ..., "prompts": ...}]}'
            )
        extra = [k for k in doc if k != "jobs"]
        if extra or "jobs" not in doc:
            raise SliceSamError(f'manifest {path}: expected {{"jobs": [...]}} or a list')
        doc = doc["jobs"]
    if not isinstance(doc, list):
        raise SliceSamError(f'manifest {path}: expected {{"jobs": [...]}} or a list')
    jobs, where = [], []
    for i, entry in enumerate(doc):
        place = f"{path} jobs[{i}]"
        if not isinstance(entry, dict):
            raise SliceSamError(f"{place}: expected an object with image and prompts")
        jobs.append(_job(entry, path.parent, place, prompts))
        where.append(place)
    return _unique(jobs, where)
