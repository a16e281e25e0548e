"""Autosave and recovery of sessions: where the sidecar goes, starting it, restoring from it.

The sidecar (format: :mod:`slicesam.engine.journal`) is the folder ``<image>.slicesam/`` next
to the image. When the image's folder is not writable, or the volume has no file, it goes to
the user cache instead (also for images inside installed packages, such as the bundled
samples): ``$SLICESAM_CACHE_DIR/sessions/<key>`` when that variable is set, else
``~/.cache/slicesam/sessions/<key>`` (``$XDG_CACHE_HOME`` honoured), where ``<key>`` hashes the
image's absolute path (or, without a file, the volume's content).

A new session on an image whose sidecar exists keeps that one sidecar as ``<sidecar>-previous``
(replacing an older backup; :func:`start_autosave` sets ``journal.backup``), so saying "No" to
"restore the autosaved session?" any number of times leaves one sidecar and one backup. The
timestamped backups earlier versions kept (``<sidecar>-<date>-<time>``) are deleted then too,
only those that are sidecars.

No torch, Qt or napari here.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import re
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..errors import SliceSamError
from ..io.volume import Volume
from ..user_cache import sessions_dir
from .cache import volume_fingerprint
from .clicks import ClickEdits
from .journal import (
    FORMAT,
    HEADER,
    JOURNAL,
    VERSION,
    Journal,
    JournalError,
    JournalState,
    load_labels,
    object_from_json,
    read_journal,
    to_jsonable,
    torch_threads,
    write_header,
)
from .objects import SegObject
from .propagation import PropagationParams

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

SUFFIX = ".slicesam"
#: The one backup a new session keeps of the sidecar it replaces: ``<sidecar>-previous``.
BACKUP_SUFFIX = "-previous"


# -- where -----------------------------------------------------------------------------------------
def sessions_cache_dir() -> Path:
    """The folder of sidecars that cannot live next to their image."""
    return sessions_dir()


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _series_tag(volume: Volume) -> str | None:
    """A short tag of the series of a volume read from a DICOM folder holding several image
    series (their sessions must not share one sidecar); None otherwise."""
    uid = _series_uid(volume)
    if not uid or int(volume.meta.get("image_series_in_folder", 1)) <= 1:
        return None
    return _key(uid)[:8]


def sidecar_candidates(image: str | Path | Volume | np.ndarray) -> list[Path]:
    """Where the sidecar of ``image`` may be, in order of preference.

    A series of a DICOM folder holding several series has its own sidecar,
    ``<folder>.series-<tag>.slicesam``; given the folder's path alone, the sidecars of all its
    series are candidates.
    """
    tag = None
    if isinstance(image, (Volume, np.ndarray)):
        path = image.path if isinstance(image, Volume) else None
        if path is None:
            data = image.data if isinstance(image, Volume) else image
            return [sessions_cache_dir() / f"volume-{volume_fingerprint(data)}"]
        tag = _series_tag(image) if isinstance(image, Volume) else None
        image = path
    path = Path(image).expanduser().absolute()
    cached = sessions_cache_dir() / _key(str(path))
    if tag is not None:
        return [
            path.with_name(f"{path.name}.series-{tag}{SUFFIX}"),
            cached.with_name(f"{cached.name}-series-{tag}"),
        ]
    found = [path.with_name(path.name + SUFFIX), cached]
    if path.is_dir():  # a DICOM folder: the sidecars of its series too (not their backups)
        found += sorted(path.parent.glob(f"{glob.escape(path.name)}.series-*{SUFFIX}"))
        found += sorted(
            p
            for p in cached.parent.glob(f"{cached.name}-series-*")
            if not p.name.endswith(BACKUP_SUFFIX)
        )
    return found


def _writable_dir(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK) and not _installed(folder)


def _installed(folder: Path) -> bool:
    """True for folders of installed packages (e.g. the bundled sample volumes): a sidecar
    never goes there, even when the user may write there."""
    parts = {p.lower() for p in folder.resolve().parts}
    return bool(parts & {"site-packages", "dist-packages"})


def sidecar_for(image: str | Path | Volume | np.ndarray) -> Path:
    """The sidecar folder a new session on ``image`` writes to (see the module docstring)."""
    candidates = sidecar_candidates(image)  # [next to the image, in the user cache, ...]
    if len(candidates) > 1 and _writable_dir(candidates[0].parent):
        return candidates[0]
    return candidates[min(1, len(candidates) - 1)]


def is_sidecar(folder: str | Path) -> bool:
    """True when ``folder`` holds a session header and a journal."""
    folder = Path(folder)
    return (folder / HEADER).is_file() and (folder / JOURNAL).is_file()


def find_autosave(image: str | Path | Volume | np.ndarray) -> Path | None:
    """The sidecar folder of an earlier session on ``image``, or None.

    Looks next to the image and in the user cache; the most recently written one wins.
    """
    found = [c for c in sidecar_candidates(image) if is_sidecar(c)]
    if not found:
        return None
    return max(found, key=lambda c: (c / JOURNAL).stat().st_mtime)


def resolve_sidecar(path: str | Path) -> Path:
    """A sidecar folder given itself or its image's path."""
    path = Path(path).expanduser()
    if is_sidecar(path):
        return path
    if path.is_dir() and (path / HEADER).is_file():
        raise JournalError(f"{path} has a session header but no {JOURNAL}")
    found = find_autosave(path)
    if found is None:
        where = ", ".join(str(c) for c in sidecar_candidates(path))
        raise JournalError(f"no autosaved session for {path} (looked in {where})")
    return found


def backup_for(folder: str | Path) -> Path:
    """Where a new session on ``folder``'s image keeps the sidecar it replaces:
    ``<folder>-previous`` (e.g. ``image.nii.gz.slicesam-previous``)."""
    folder = Path(folder)
    return folder.with_name(folder.name + BACKUP_SUFFIX)


def legacy_backups(folder: str | Path) -> list[Path]:
    """The timestamped backups earlier versions kept of ``folder``
    (``<folder>-<yyyymmdd>-<hhmmss>[-<n>]``), only those that are sidecars (:func:`is_sidecar`)."""
    folder = Path(folder)
    if not folder.parent.is_dir():
        return []
    pattern = re.compile(re.escape(folder.name) + r"-\d{8}-\d{6}(-\d+)?")
    return sorted(p for p in folder.parent.iterdir() if pattern.fullmatch(p.name) and is_sidecar(p))


def _move_aside(folder: Path) -> Path | None:
    """Keep the sidecar in ``folder`` as the one backup (:func:`backup_for`), replacing an
    older backup, and delete :func:`legacy_backups`: however often a new session replaces an
    earlier one, at most one backup stays. Returns the backup, or None (no earlier sidecar)."""
    if not folder.exists():
        return None
    backup = backup_for(folder)
    if backup.is_dir() and not backup.is_symlink():
        shutil.rmtree(backup)
    elif backup.exists() or backup.is_symlink():
        backup.unlink()
    folder.rename(backup)
    for old in legacy_backups(folder):
        shutil.rmtree(old, ignore_errors=True)
    return backup


# -- start -----------------------------------------------------------------------------------------
def session_header(
    session: Session, image_path: str | Path | None = None, axis: int = 0
) -> dict[str, Any]:
    """The ``session.json`` content for ``session``."""
    path = image_path if image_path is not None else session.volume.path
    model = session.model
    return {
        "format": FORMAT,
        "version": VERSION,
        "slicesam": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "image": {
            "path": str(Path(path).expanduser().absolute()) if path is not None else None,
            "axis": int(axis),
            "shape": list(session.shape),
            "dtype": str(session.volume.data.dtype),
            "fingerprint": volume_fingerprint(session.volume.data),
            "spacing": to_jsonable(session.volume.spacing),
            "modality": session.volume.modality,
            "series": _series_uid(session.volume),
        },
        "labels": {"dtype": str(session.labels.dtype)},
        "settings": {
            "model": model.name,
            "weights_sha256": model.weights_sha256,
            "device": str(model.device),
            "encoder_variant": model.capabilities.encoder,
            "click_decoder": model.capabilities.click_decoder,
            "click_strategy": session.click_strategy,
            "click_edits": to_jsonable(session.click_edits),
            "torch_threads": torch_threads(),
            "window": [float(session.window[0]), float(session.window[1])],
            "params": to_jsonable(session.params),
            "overwrite": session.overwrite,
        },
    }


def start_autosave(
    session: Session,
    target: str | Path | bool | None = True,
    *,
    image_path: str | Path | None = None,
    axis: int = 0,
    snapshot_every: int = 50,
    durable: bool = True,
) -> Journal | None:
    """Start autosaving ``session`` and set ``session.autosave``.

    Args:
        session: a session with no journal yet.
        target: True for the default place (:func:`sidecar_for` of ``image_path`` or the
            session volume's file), or a sidecar folder path. An earlier sidecar there is
            kept as the backup ``<folder>-previous`` (:func:`backup_for`), which replaces an
            older backup; ``journal.backup`` says where (None when there was none).
        image_path: the image file (when the session volume does not carry it).
        axis: the image axis the session slices along (0 unless the session sees a
            transposed view of the file, as in the napari widget).
        snapshot_every: write a full label snapshot after this many actions.
        durable: fsync every write (survives power loss, not only a crash).

    Returns:
        the journal (``journal.backup``: the path of the earlier session's sidecar, kept, or
        None), or None when no folder could be written (a warning says why; the session works
        on without autosave).
    """
    if target is None or target is False:
        return None
    if getattr(session, "autosave", None) is not None:
        raise SliceSamError("this session already autosaves")
    source = image_path if image_path is not None else session.volume.path
    if target is True:
        # the Volume itself when it carries its file: it knows its series of a DICOM folder
        folder = sidecar_for(session.volume if image_path is None else source)
    else:
        folder = Path(target).expanduser()
    header = session_header(session, source, axis)
    tried = [folder]
    if target is True and source is not None:
        tried = list(dict.fromkeys([folder, *sidecar_candidates(source)[1:]]))
    for candidate in tried:
        try:
            backup = _move_aside(candidate)
            candidate.mkdir(parents=True)
            write_header(candidate, header, durable=durable)
        except OSError as exc:
            last = exc
            continue
        journal = Journal(candidate, snapshot_every=snapshot_every, durable=durable)
        journal.backup = backup
        journal.attach(session)
        journal.start_new(session)
        session.autosave = journal
        return journal
    warnings.warn(f"slicesam: autosave is off: cannot write {folder}: {last}", stacklevel=2)
    return None


def _series_uid(volume: Volume) -> str | None:
    """The SeriesInstanceUID of a volume read from a DICOM folder (None otherwise)."""
    from ..io.dicom import DicomGeometry

    geometry = volume.geometry
    return geometry.series_uid if isinstance(geometry, DicomGeometry) else None


# -- restore ---------------------------------------------------------------------------------------
def source_volume(header: dict[str, Any], image: str | Path | None = None) -> Volume:
    """Load the session's image (``image`` overrides the recorded path) as the session saw it
    (slicing axis first), checking its content against the recorded fingerprint."""
    from ..io import load_volume

    info = header["image"]
    path = image if image is not None else info.get("path")
    if path is None:
        raise JournalError(
            "the session was made on an in-memory volume (no image file); pass volume="
        )
    if not Path(path).exists():
        raise JournalError(f"the session's image {path} is missing; pass the image's new path")
    series = info.get("series")  # a DICOM folder may hold several series
    volume = load_volume(path, series=series) if series else load_volume(path)
    axis = int(info.get("axis", 0))
    if axis:
        volume = Volume(
            data=np.moveaxis(volume.data, axis, 0),
            spacing=tuple(volume.spacing[p] for p in (axis, *[i for i in range(3) if i != axis])),
            modality=volume.modality,
            path=volume.path,
            geometry=volume.geometry,
            unit=volume.unit,
        )
    check_volume(header, volume)
    return volume


def check_volume(header: dict[str, Any], volume: Volume | np.ndarray) -> None:
    """Raise when ``volume`` is not the one the session was made on."""
    data = volume.data if isinstance(volume, Volume) else np.asarray(volume)
    info = header["image"]
    if list(data.shape) != list(info["shape"]):
        raise JournalError(
            f"the image has shape {tuple(data.shape)}, the session was made on "
            f"{tuple(info['shape'])}"
        )
    if volume_fingerprint(data) != info["fingerprint"]:
        raise JournalError(
            "the image's content differs from the one the session was made on "
            f"(fingerprint {volume_fingerprint(data)} != {info['fingerprint']})"
        )


#: :class:`ClickEdits` fields added after sidecars recorded click edits, with the value that
#: reproduces what a sidecar written without them did (the edit was not there yet).
CLICK_EDITS_ADDED = {"remnant_width": 0}

#: :class:`PropagationParams` fields added after sidecars recorded params, with the value that
#: reproduces what a sidecar written without them did.
PARAMS_ADDED = {"removal_within_extent": False}


def _known_fields(cls: type, stored: dict[str, Any]) -> dict[str, Any]:
    """``stored`` without the keys that are no field of the dataclass ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in stored.items() if k in names}


def click_edits_of(settings: dict[str, Any]) -> ClickEdits | None:
    """The click edits a sidecar's settings record (None: the modality's defaults; sidecars
    written before click edits existed). Fields the record lacks take the value that
    reproduces it (:data:`CLICK_EDITS_ADDED`), so that ``slicesam replay`` of an older
    journal gives the labels it recorded. Fields the record has that no longer exist (rules
    deleted since) are ignored: replaying a journal recorded with such a rule on may give
    other labels than it recorded."""
    stored = settings.get("click_edits")
    if not stored:
        return None
    return ClickEdits(**_known_fields(ClickEdits, {**CLICK_EDITS_ADDED, **stored}))


def params_of(stored: dict[str, Any]) -> PropagationParams:
    """The :class:`PropagationParams` a sidecar's settings record (its ``params`` dict).
    Fields the record lacks take the value that reproduces it (:data:`PARAMS_ADDED`). Fields
    the record has that no longer exist (rules deleted since) are ignored: replaying a
    journal recorded with such a rule on may give other labels than it recorded."""
    return PropagationParams(**_known_fields(PropagationParams, {**PARAMS_ADDED, **stored}))


def settings_of(header: dict[str, Any], state: JournalState) -> tuple[PropagationParams, str]:
    """The propagation params and overwrite mode in force after the journal's last record
    (:func:`params_of`)."""
    settings = state.settings or header["settings"]
    return params_of(settings["params"]), str(settings["overwrite"])


@dataclass
class SavedSession:
    """What a sidecar holds, ready to rebuild its session (:meth:`Session.restore
    <slicesam.engine.session.Session.restore>`).

    Attributes:
        folder: the sidecar folder.
        state: its journal, read.
        volume: the session's volume (slicing axis first), checked against the record.
        labels: the restored (z, y, x) labels.
        model: the recorded model name; weights_sha256 its weights' hash.
        settings: the ``Session`` keyword arguments recorded: window, params, overwrite,
            click_strategy, click_edits.
        objects: label id -> object, as the journal last recorded them.
    """

    folder: Path
    state: JournalState
    volume: Volume | np.ndarray
    labels: np.ndarray
    model: str
    weights_sha256: str
    settings: dict[str, Any]
    objects: dict[int, SegObject]


def read_autosave(
    path: str | Path,
    *,
    volume: Volume | np.ndarray | None = None,
    image: str | Path | None = None,
    labels: np.ndarray | None = None,
) -> SavedSession:
    """Read a sidecar (or find the one of image ``path``).

    Args:
        path: the sidecar folder, or the image whose sidecar to find (:func:`find_autosave`).
        volume: the session's volume (default: the recorded image file, checked against the
            recorded content fingerprint).
        image: the image file, when it moved since the session was saved.
        labels: an array to restore the labels into (e.g. a napari layer's data).
    """
    folder = resolve_sidecar(path)
    state = read_journal(folder)
    header = state.header
    if volume is None:
        volume = source_volume(header, image)
    else:
        check_volume(header, volume)
    restored = load_labels(folder, state)
    if labels is not None:
        if labels.shape != restored.shape:
            raise JournalError(f"labels shape {labels.shape} != the session's {restored.shape}")
        if np.promote_types(labels.dtype, restored.dtype) != labels.dtype:
            raise JournalError(f"the session's {restored.dtype} labels do not fit {labels.dtype}")
        labels[...] = restored
        restored = labels
    params, overwrite = settings_of(header, state)
    settings = header["settings"]
    return SavedSession(
        folder,
        state,
        volume,
        restored,
        settings["model"],
        settings.get("weights_sha256", ""),
        {
            "window": tuple(settings["window"]),
            "params": params,
            "overwrite": overwrite,
            "click_strategy": settings.get("click_strategy", "adaptive"),
            "click_edits": click_edits_of(settings),
        },
        objects_of(state.objects),
    )


def objects_of(objects: dict[int, dict[str, Any]]) -> dict[int, SegObject]:
    """Objects from their journal JSON."""
    return {int(k): object_from_json(int(k), v) for k, v in objects.items()}


def resume_autosave(session: Session, saved: SavedSession, *, resume: bool = True) -> None:
    """After a restore: warn when the weights differ from the recorded ones, and (``resume``)
    keep autosaving into the same sidecar, a ``restore`` record marking the point."""
    if session.model.weights_sha256 != saved.weights_sha256:
        warnings.warn(
            f"restoring a session made with {saved.model} weights {saved.weights_sha256[:12]}… "
            f"using {session.model.name} weights {session.model.weights_sha256[:12]}…; new "
            "masks come from these weights",
            stacklevel=3,
        )
    if not resume:
        return
    journal = Journal(saved.folder)
    journal.backup = None  # resuming replaces nothing
    journal.attach(session)
    journal.resume(
        session,
        saved.state,
        {
            "model": session.model.name,
            "weights_sha256": session.model.weights_sha256,
            "device": str(session.model.device),
            "torch_threads": torch_threads(),
        },
    )
    session.autosave = journal
