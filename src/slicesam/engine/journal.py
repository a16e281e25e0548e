"""The session journal: an append-only, crash-safe record of every session action.

A journal lives in a *sidecar* folder (by default ``<image>.slicesam/`` next to the image, see
:mod:`slicesam.engine.autosave`)::

    session.json             header, written once: format, version, the image (path, slicing
                             axis, shape, dtype, content fingerprint), the labels dtype and the
                             settings (model name, weights sha256, device, torch threads,
                             intensity window, propagation params, overwrite mode)
    journal.jsonl            one JSON object per line, appended after every action
    labels/000000-full.npz   the label volume when the session started (``labels``)
    labels/NNNNNN.npz        the slices action NNNNNN changed, as they were after it:
                             ``z`` (k,) and ``slices`` (k, y, x)
    labels/NNNNNN-full.npz   a full snapshot after action NNNNNN (``labels``), written every
                             ``snapshot_every`` actions; older delta files are then removed
    edits/NNNNNN.npz         brush edits adopted by action NNNNNN (``sync_external_edits``) as a
                             sparse diff: ``z``, ``count`` (voxels per slice), ``index`` (flat
                             index within its slice), ``before``, ``after``

Journal lines (records)::

    {"seq": 0, "op": "open", "t": ..., "objects": {...all...},
     "labels": {"file": ..., "full": true}, "settings": {"params": {...}, "overwrite": ...}}
    {"seq": n, "op": "<Session method>", "t": ..., "args": {...}, "result": ...,
     "objects": {"<id>": {...} | null}, "labels": {"file": ..., "slices": [...]},
     "edits": "edits/NNNNNN.npz", "settings": {...}}
    {"op": "snapshot", "upto": n, "t": ..., "labels": {"file": ..., "full": true}}
    {"seq": n, "op": "restore", "t": ..., "model": ..., "weights_sha256": ..., "device": ...}

``objects`` holds only the objects an action changed (null: deleted); ``settings`` appears when
the propagation params or the overwrite mode changed. ``args`` are the method's arguments, so
the journal replays (:mod:`slicesam.replay`).

Crash safety: every npz is written to a temporary file, fsynced and renamed into place
(``os.replace``) *before* its line is appended; a line is the commit record. A reader takes the
longest valid prefix of lines (a torn last line, a gap in ``seq`` or a missing file ends it), so
a crash at any moment leaves either the old or the new state of every action, never half of one.

Writes happen on a background thread; :meth:`Journal.record` only copies the changed slices and
the object state. When an action returns, every earlier action is on disk (``max_lag=1``): a
crash loses at most the last action. JSON and ``np.load(allow_pickle=False)`` only: no pickle.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import os
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..errors import SliceSamError
from ..prompts import Box, Lasso, Point, Scribble
from .objects import SegObject

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

FORMAT = "slicesam-session"
VERSION = 1
HEADER = "session.json"
JOURNAL = "journal.jsonl"
LABELS_DIR = "labels"
EDITS_DIR = "edits"

F = TypeVar("F", bound=Callable[..., Any])


class JournalError(SliceSamError):
    """A sidecar folder that cannot be read (missing, foreign or corrupt)."""


# -- JSON conversion -------------------------------------------------------------------------------
#: The prompt classes by the ``kind`` tag their JSON carries.
PROMPT_KINDS: dict[str, type] = {"box": Box, "point": Point, "scribble": Scribble, "lasso": Lasso}


def prompt_from_json(doc: dict[str, Any]) -> Box | Point | Scribble | Lasso:
    """The prompt a :func:`to_jsonable` dict with a ``kind`` tag describes."""
    fields = {k: v for k, v in doc.items() if k != "kind"}
    kind = PROMPT_KINDS.get(doc.get("kind"))  # type: ignore[arg-type]
    if kind is None:
        raise SliceSamError(f"unknown prompt kind {doc.get('kind')!r}")
    if "points" in fields:
        fields["points"] = tuple(tuple(float(c) for c in p) for p in fields["points"])
    return kind(**fields)


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (numpy scalars and arrays, tuples, paths, dataclasses;
    a prompt dataclass gets a ``kind`` tag: :func:`prompt_from_json`)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    for kind, cls in PROMPT_KINDS.items():
        if type(value) is cls:
            return {"kind": kind, **to_jsonable(dataclasses.asdict(value))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(v) for v in sorted(value)]
    return repr(value)


def object_to_json(obj: SegObject) -> dict[str, Any]:
    """A :class:`SegObject` as a JSON dict: :meth:`SegObject.snapshot
    <slicesam.engine.objects.SegObject.snapshot>` (every field but the id; the slice records
    keyed by slice, logits left out)."""
    return obj.snapshot()


def object_from_json(label_id: int, doc: dict[str, Any]) -> SegObject:
    """The inverse of :func:`object_to_json`; also reads the form written before slice
    records (one dict keyed by slice per field); unknown keys (fields of other versions) are
    ignored (:meth:`SegObject.from_snapshot <slicesam.engine.objects.SegObject.from_snapshot>`)."""
    return SegObject.from_snapshot(label_id, doc)


def session_settings(session: Session) -> dict[str, Any]:
    """The session settings that may change between actions (params, overwrite mode)."""
    return {"params": to_jsonable(session.params), "overwrite": session.overwrite}


def torch_threads() -> int | None:
    """torch's intra-op thread count when torch is already imported (never imports it)."""
    torch = sys.modules.get("torch")
    get = getattr(torch, "get_num_threads", None)
    return int(get()) if get is not None else None


# -- files -----------------------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover (e.g. Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        if durable:
            os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_save_npz(path: Path, *, durable: bool = True, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` to ``path`` via a temporary file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
        f.flush()
        if durable:
            os.fsync(f.fileno())
    os.replace(tmp, path)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an npz file (no pickle)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def write_header(folder: Path, header: dict[str, Any], *, durable: bool = True) -> None:
    atomic_write_bytes(
        folder / HEADER, json.dumps(header, indent=1).encode("utf-8"), durable=durable
    )


def read_header(folder: str | Path) -> dict[str, Any]:
    """The sidecar's ``session.json`` (checked to be a slicesam session, version known)."""
    path = Path(folder) / HEADER
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JournalError(f"{folder} is not a slicesam session: no {HEADER}") from None
    except (OSError, ValueError) as exc:
        raise JournalError(f"cannot read {path}: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise JournalError(f"{path} is not a slicesam session header")
    if header.get("version") != VERSION:
        raise JournalError(
            f"{path} has session format version {header.get('version')}; this slicesam reads "
            f"version {VERSION}"
        )
    return header


def _apply_delta(labels: np.ndarray, delta: dict[str, np.ndarray]) -> np.ndarray:
    slices = delta["slices"]
    if slices.dtype != labels.dtype:
        labels = labels.astype(np.promote_types(labels.dtype, slices.dtype), copy=False)
    labels[delta["z"]] = slices
    return labels


# -- reading ---------------------------------------------------------------------------------------
@dataclass
class JournalState:
    """What a sidecar holds, read from the valid prefix of its journal.

    Attributes:
        header: ``session.json``.
        records: the valid journal records in order (snapshot records included).
        objects: label id -> object JSON after the last valid record.
        settings: the propagation params and overwrite mode after the last valid record.
        base: relative path of the full label snapshot the labels are rebuilt from.
        deltas: (seq, relative path) of the delta files to apply on top of ``base``, in order.
        last_seq: seq of the last valid action record.
        valid_bytes: length of the valid prefix of ``journal.jsonl``.
    """

    header: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    objects: dict[int, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    base: str = ""
    deltas: list[tuple[int, str]] = field(default_factory=list)
    last_seq: int = -1
    valid_bytes: int = 0

    @property
    def actions(self) -> list[dict[str, Any]]:
        """The action records (not open, snapshot or restore)."""
        return [r for r in self.records if r.get("op") not in ("open", "snapshot", "restore")]


def read_journal(folder: str | Path) -> JournalState:
    """Read a sidecar's header and the valid prefix of its journal.

    The prefix ends before a torn or invalid line, a gap in ``seq``, or the first record whose
    label file the rebuilt labels would need but that is missing (files replaced by a later
    snapshot are not needed).
    """
    folder = Path(folder)
    header = read_header(folder)
    try:
        raw = (folder / JOURNAL).read_bytes()
    except FileNotFoundError:
        raise JournalError(f"{folder} has no {JOURNAL}") from None
    lines: list[tuple[dict[str, Any], int]] = []  # (record, end offset)
    probe = JournalState(header)
    pos = 0
    while True:
        end = raw.find(b"\n", pos)
        if end < 0:
            break  # a torn last line (or none): ignored
        try:
            rec = json.loads(raw[pos:end])
        except ValueError:
            break
        if not isinstance(rec, dict) or not _accept(probe, rec):
            break
        pos = end + 1
        lines.append((rec, pos))
    while True:
        state = JournalState(header)
        for rec, offset in lines:
            _accept(state, rec)
            state.records.append(rec)
            state.valid_bytes = offset
        if not state.records:
            raise JournalError(f"{folder / JOURNAL} holds no complete record")
        needed = [state.base, *(rel for _, rel in state.deltas)]
        missing = next((rel for rel in needed if not (folder / rel).is_file()), None)
        if missing is None:
            return state
        cut = next(
            i
            for i, (rec, _) in enumerate(lines)
            if (rec.get("labels") or {}).get("file") == missing
        )
        lines = lines[:cut]


def _accept(state: JournalState, rec: dict[str, Any]) -> bool:
    """Fold one record into ``state``; False when it does not continue the journal."""
    op = rec.get("op")
    labels = rec.get("labels")
    if labels is not None and not isinstance(labels.get("file"), str):
        return False
    if op == "snapshot":
        if rec.get("upto") != state.last_seq or labels is None:
            return False
        state.base, state.deltas = labels["file"], []
        return True
    if rec.get("seq") != state.last_seq + 1:
        return False
    if op == "open" and (state.last_seq != -1 or labels is None or not labels.get("full")):
        return False
    if state.last_seq == -1 and op != "open":
        return False
    state.last_seq = int(rec["seq"])
    for key, doc in (rec.get("objects") or {}).items():
        if doc is None:
            state.objects.pop(int(key), None)
        else:
            state.objects[int(key)] = doc
    if rec.get("settings"):
        state.settings = rec["settings"]
    if labels is not None:
        if labels.get("full"):
            state.base, state.deltas = labels["file"], []
        else:
            state.deltas.append((state.last_seq, labels["file"]))
    return True


def load_labels(folder: str | Path, state: JournalState) -> np.ndarray:
    """The label volume after the last valid record: the base snapshot plus the deltas."""
    folder = Path(folder)
    labels = load_npz(folder / state.base)["labels"].copy()
    for _, rel in state.deltas:
        labels = _apply_delta(labels, load_npz(folder / rel))
    return labels


def load_edits(path: Path) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """A brush-edit file as (z, flat index, before, after) per slice."""
    data = load_npz(path)
    out = []
    start = 0
    for z, n in zip(data["z"].tolist(), data["count"].tolist()):
        sl = slice(start, start + n)
        out.append((int(z), data["index"][sl], data["before"][sl], data["after"][sl]))
        start += n
    return out


# -- writing ---------------------------------------------------------------------------------------
@dataclass
class _Item:
    seq: int | None
    line: dict[str, Any]
    objects: dict[int, dict[str, Any]] | None = None
    slices: dict[int, np.ndarray] | None = None
    full: np.ndarray | None = None
    edits: list[Any] | None = None


class Journal:
    """Append a session's actions to a sidecar folder from a background thread.

    Use :func:`slicesam.engine.autosave.start_autosave` (or ``Session(autosave=...)``) rather
    than this class directly.

    Args:
        folder: the sidecar folder (holding ``session.json``).
        snapshot_every: write a full label snapshot after this many delta files.
        max_lag: when an action returns, all but the last ``max_lag`` actions are on disk.
        durable: fsync files and the journal (survives power loss, not only a killed process).
        idle_exit_s: the writer thread ends after this long without work (and restarts on the
            next action), so it never keeps the interpreter alive.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        snapshot_every: int = 50,
        max_lag: int = 1,
        durable: bool = True,
        idle_exit_s: float = 0.5,
    ) -> None:
        self.folder = Path(folder)
        self.snapshot_every = max(1, int(snapshot_every))
        self.max_lag = max(0, int(max_lag))
        self.durable = durable
        self.idle_exit_s = idle_exit_s
        self.error: BaseException | None = None
        #: The earlier session's sidecar, kept as the one backup when this journal started
        #: (set by :func:`slicesam.engine.autosave.start_autosave`; None when there was none).
        self.backup: Path | None = None
        self.depth = 0  # nesting of journaled calls (only the outermost is recorded)
        self._cond = threading.Condition()
        self._queue: deque[_Item] = deque()
        self._thread: threading.Thread | None = None
        self._next_seq = 0
        self._submitted = -1
        self._committed = -1
        self._dirty: set[int] = set()
        self._settings: dict[str, Any] | None = None
        self._closed = False
        # writer-thread state
        self._written_objects: dict[int, dict[str, Any]] = {}
        self._base = ""
        self._deltas: list[tuple[int, str]] = []
        self._last_written_seq = -1

    @property
    def path(self) -> Path:
        """The sidecar folder."""
        return self.folder

    def __repr__(self) -> str:
        return f"Journal({str(self.folder)!r}, next_seq={self._next_seq})"

    # -- session side ---------------------------------------------------------------------------
    def attach(self, session: Session) -> None:
        """Follow ``session``'s label changes (slices to save with the next record)."""
        session.add_listener(self._on_change)

    def _on_change(self, slices: list[int]) -> None:
        self._dirty.update(int(z) for z in slices)

    def start_new(self, session: Session) -> None:
        """Write the ``open`` record: the session's labels and objects as they are now."""
        (self.folder / LABELS_DIR).mkdir(parents=True, exist_ok=True)
        (self.folder / EDITS_DIR).mkdir(exist_ok=True)
        (self.folder / JOURNAL).touch()
        self._settings = session_settings(session)
        self._dirty.clear()
        seq = self._take_seq()
        self._enqueue(
            _Item(
                seq,
                {"seq": seq, "op": "open", "t": time.time(), "settings": self._settings},
                objects=self._objects_of(session),
                full=np.array(session.written_labels, copy=True),
            )
        )

    def resume(self, session: Session, state: JournalState, info: dict[str, Any]) -> None:
        """Continue an existing journal after a restore: drop what follows its valid prefix
        and append a ``restore`` record."""
        with open(self.folder / JOURNAL, "r+b") as f:
            f.truncate(state.valid_bytes)
        for sub in (LABELS_DIR, EDITS_DIR):
            (self.folder / sub).mkdir(exist_ok=True)
            for path in (self.folder / sub).iterdir():
                seq = _seq_of(path.name)
                orphan = path.name.startswith(".") or (seq is not None and seq > state.last_seq)
                if orphan and path.name != Path(state.base).name:
                    path.unlink(missing_ok=True)
        self._written_objects = {k: dict(v) for k, v in state.objects.items()}
        self._base, self._deltas = state.base, list(state.deltas)
        self._last_written_seq = state.last_seq
        self._next_seq = state.last_seq + 1
        self._submitted = self._committed = state.last_seq
        self._settings = session_settings(session)
        self._dirty.clear()
        seq = self._take_seq()
        line = {"seq": seq, "op": "restore", "t": time.time(), **info}
        if self._settings != state.settings:
            line["settings"] = self._settings
        self._enqueue(_Item(seq, line, objects=self._objects_of(session)))

    def _take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    @staticmethod
    def _objects_of(session: Session) -> dict[int, dict[str, Any]]:
        return {k: object_to_json(v) for k, v in session.objects.items()}

    def record(
        self, session: Session, op: str, args: dict[str, Any], result: Any = None
    ) -> int | None:
        """Record one finished action (called with the session's lock held).

        Copies the slices it changed and the object state; the writer thread does the rest.
        Returns the record's seq, or None when nothing was recorded (a no-op undo, ...).
        """
        if self.error is not None:
            self._dirty.clear()
            return None
        if op in ("undo", "redo", "sync_external_edits") and not result:
            return None  # nothing changed
        seq = self._take_seq()
        line: dict[str, Any] = {"seq": seq, "op": op, "t": time.time(), "args": args}
        res = _result_json(result)
        if res is not None:
            line["result"] = res
        settings = session_settings(session)
        if settings != self._settings:
            line["settings"] = self._settings = settings
        shadow = session.written_labels
        slices = {z: np.array(shadow[z], copy=True) for z in sorted(self._dirty)}
        self._dirty.clear()
        edits = None
        if op == "sync_external_edits":
            action = session.last_action
            if action is not None:
                edits = [(d.z, d.index, d.before, d.after) for d in action.diffs]
        item = _Item(seq, line, self._objects_of(session), slices or None, None, edits)
        self._enqueue(item)
        self._wait(seq - self.max_lag)
        return seq

    def _enqueue(self, item: _Item) -> None:
        with self._cond:
            self._closed = False
            self._queue.append(item)
            if item.seq is not None:
                self._submitted = item.seq
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="slicesam-autosave", daemon=False
                )
                self._thread.start()
            self._cond.notify_all()

    def _wait(self, seq: int, timeout: float | None = 60.0) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: self._committed >= seq or self.error is not None, timeout
            )

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Wait until every recorded action is on disk; False on timeout."""
        return self._wait(self._submitted, timeout)

    def close(self, timeout: float | None = 60.0) -> None:
        """Flush; the writer thread then ends (a later action starts it again)."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closed:
                    self._cond.wait(self.idle_exit_s)
                if not self._queue:
                    self._thread = None
                    self._cond.notify_all()
                    return
                batch = list(self._queue)
                self._queue.clear()
            try:
                if self.error is None:
                    lines = [self._write(item) for item in batch]
                    self._append(lines)
                    if len(self._deltas) >= self.snapshot_every:
                        self._snapshot()
            except Exception as exc:  # never raised into the session: reported once
                self.error = exc
                warnings.warn(
                    f"slicesam autosave to {self.folder} failed and is off from now on: {exc}",
                    RuntimeWarning,
                    stacklevel=1,
                )
            with self._cond:
                seqs = [item.seq for item in batch if item.seq is not None]
                if seqs:
                    self._committed = max(self._committed, max(seqs))
                self._cond.notify_all()

    def _write(self, item: _Item) -> dict[str, Any]:
        line = item.line
        seq = item.seq
        if item.objects is not None:
            changed: dict[str, Any] = {}
            for key, doc in item.objects.items():
                if self._written_objects.get(key) != doc:
                    changed[str(key)] = doc
            for key in set(self._written_objects) - set(item.objects):
                changed[str(key)] = None
            self._written_objects = item.objects
            if changed or line["op"] == "open":
                line["objects"] = changed
        if item.full is not None:
            rel = f"{LABELS_DIR}/{seq:06d}-full.npz"
            atomic_save_npz(self.folder / rel, labels=item.full, durable=self.durable)
            line["labels"] = {"file": rel, "full": True}
            self._base, self._deltas = rel, []
        elif item.slices:
            rel = f"{LABELS_DIR}/{seq:06d}.npz"
            zs = sorted(item.slices)
            atomic_save_npz(
                self.folder / rel,
                z=np.asarray(zs, dtype=np.int64),
                slices=np.stack([item.slices[z] for z in zs]),
                durable=self.durable,
            )
            line["labels"] = {"file": rel, "slices": zs}
            self._deltas.append((seq, rel))
        if item.edits:
            rel = f"{EDITS_DIR}/{seq:06d}.npz"
            atomic_save_npz(
                self.folder / rel,
                z=np.asarray([e[0] for e in item.edits], dtype=np.int64),
                count=np.asarray([len(e[1]) for e in item.edits], dtype=np.int64),
                index=np.concatenate([e[1] for e in item.edits]).astype(np.int64),
                before=np.concatenate([e[2] for e in item.edits]),
                after=np.concatenate([e[3] for e in item.edits]),
                durable=self.durable,
            )
            line["edits"] = rel
        if seq is not None:
            self._last_written_seq = seq
        return line

    def _append(self, lines: list[dict[str, Any]]) -> None:
        data = b"".join(
            json.dumps(line, separators=(",", ":")).encode("utf-8") + b"\n" for line in lines
        )
        with open(self.folder / JOURNAL, "ab") as f:
            f.write(data)
            f.flush()
            if self.durable:
                os.fsync(f.fileno())

    def _snapshot(self) -> None:
        """Fold the delta files into a new full snapshot and remove the ones it replaces."""
        labels = load_npz(self.folder / self._base)["labels"].copy()
        for _, rel in self._deltas:
            labels = _apply_delta(labels, load_npz(self.folder / rel))
        upto = self._last_written_seq
        rel = f"{LABELS_DIR}/{upto:06d}-full.npz"
        atomic_save_npz(self.folder / rel, labels=labels, durable=self.durable)
        self._append(
            [
                {
                    "op": "snapshot",
                    "upto": upto,
                    "t": time.time(),
                    "labels": {"file": rel, "full": True},
                }
            ]
        )
        old = [r for _, r in self._deltas]
        if self._base != f"{LABELS_DIR}/{0:06d}-full.npz":  # the initial labels stay (replay)
            old.append(self._base)
        self._base, self._deltas = rel, []
        for r in old:
            if r != rel:
                (self.folder / r).unlink(missing_ok=True)


def _seq_of(name: str) -> int | None:
    head = name.split(".", 1)[0].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _result_json(result: Any) -> Any:
    if result is None or isinstance(result, np.ndarray):
        return None
    if hasattr(result, "summary") and hasattr(result, "mask"):  # Session.correct's Correction
        summary = result.summary
        return {"rewalk_cancelled": bool(summary is not None and summary.cancelled)}
    if hasattr(result, "cancelled"):  # PropagationSummary and the like
        return {"cancelled": bool(result.cancelled), "slices": to_jsonable(result.slices)}
    if isinstance(result, (bool, int, np.integer, list, tuple)):
        return to_jsonable(result)
    return None


# -- the hook on Session's public actions ----------------------------------------------------------
#: Arguments never recorded (callables: progress, cancel).
_SKIP_ARGS = frozenset({"self", "progress", "cancel"})


def journaled(method: F) -> F:
    """Record a :class:`Session` method's calls in the session's journal, if it has one.

    Only the outermost journaled call is recorded (an action calling another is one record);
    the call and its record happen under the session's lock, so the journal's order is the
    order in which actions changed the session. Without a journal it is a plain call.
    """
    signature = inspect.signature(method)
    op = method.__name__

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        journal: Journal | None = getattr(self, "autosave", None)
        if journal is None:
            return method(self, *args, **kwargs)
        with self.lock:
            journal.depth += 1
            try:
                result = method(self, *args, **kwargs)
            finally:
                journal.depth -= 1
            if journal.depth == 0:
                bound = signature.bind(self, *args, **kwargs)
                bound.apply_defaults()
                recorded = {
                    k: to_jsonable(v)
                    for k, v in bound.arguments.items()
                    if k not in _SKIP_ARGS and not callable(v)
                }
                journal.record(self, op, recorded, result)
            return result

    return wrapper  # type: ignore[return-value]
