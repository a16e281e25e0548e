"""``slicesam replay``: rerun an autosaved session's journal headless and compare the result.

The journal (:mod:`slicesam.engine.journal`) records every action with its arguments. Replaying
it from the session's initial labels with the same model weights, intensity window, propagation
params and torch thread count, on the CPU, gives the label volume the session had, voxel for
voxel; :func:`replay_session` checks that against the autosaved labels. A journal recorded by
a version whose propagation params or click edits had rules that were deleted since is replayed
without them (:func:`~slicesam.engine.autosave.params_of`): where the session used one of them,
the replay may differ.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import SliceSamError

if TYPE_CHECKING:  # pragma: no cover
    from .engine.session import Session
    from .io.volume import Volume
    from .models.base import SegmentationModel

EXIT_DIFFERENT = 1

#: Record kinds that are not session calls.
_NOT_ACTIONS = ("open", "snapshot", "restore")


@dataclass
class ReplayResult:
    """What :func:`replay_session` did.

    Attributes:
        session: the replayed session (its ``labels`` are the result).
        actions: number of actions replayed.
        identical: the replayed labels equal the autosaved ones.
        differing_slices: slices where they differ.
        first_divergence: "action N (op)" where a replayed action first wrote slices that
            differ from the ones it wrote then (None when none did, or when its file was
            compacted away).
        warnings: settings that differ from the recorded ones (weights, device, threads).
        seconds: wall time.
    """

    session: Session
    actions: int = 0
    identical: bool = True
    differing_slices: list[int] = field(default_factory=list)
    first_divergence: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def labels(self) -> np.ndarray:
        return self.session.labels

    def __str__(self) -> str:
        if self.identical:
            verdict = "labels identical to the autosaved session"
        else:
            zs = self.differing_slices
            shown = ", ".join(map(str, zs[:10])) + (" …" if len(zs) > 10 else "")
            verdict = f"labels DIFFER from the autosaved session on {len(zs)} slices ({shown})"
            if self.first_divergence:
                verdict += f"; first divergence at {self.first_divergence}"
        return f"replayed {self.actions} actions in {self.seconds:.1f} s: {verdict}"


def _set_torch_threads(threads: int | None) -> int | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if threads:
        torch.set_num_threads(int(threads))
    return int(torch.get_num_threads())


def _apply_edits(session: Session, path: Path, seq: int) -> list[int]:
    from .engine.journal import load_edits

    zs = []
    for z, index, before, after in load_edits(path):
        flat = session.labels[z].reshape(-1).copy()
        if not np.array_equal(flat[index], before):
            raise SliceSamError(
                f"replay diverged before action {seq} (brush edit on slice {z}): the slice "
                "differs from the one the edit was painted on"
            )
        flat[index] = after
        session.labels[z] = flat.reshape(session.labels.shape[1:])
        zs.append(z)
    return zs


def replay_session(
    path: str | Path,
    *,
    model: str | SegmentationModel | None = None,
    volume: Volume | np.ndarray | None = None,
    image: str | Path | None = None,
    checkpoint: str | Path | None = None,
    device: str = "cpu",
    threads: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> ReplayResult:
    """Replay the journal of an autosaved session.

    Args:
        path: the sidecar folder, or the image whose sidecar to use.
        model: a model instance or name (default: the recorded name, loaded on ``device``).
        volume: the session's volume (default: the recorded image, checked by fingerprint).
        image: the image file when it moved.
        checkpoint: weights file for a model loaded by name.
        device: where a model loaded by name runs ("cpu": reproducible).
        threads: torch thread count (default: the recorded one).
        progress: called as ``progress(done, total, op)`` after each action.
    """
    from .engine.autosave import (
        check_volume,
        click_edits_of,
        objects_of,
        params_of,
        resolve_sidecar,
        source_volume,
    )
    from .engine.journal import load_labels, load_npz, prompt_from_json, read_journal
    from .engine.session import Session

    t0 = time.perf_counter()
    folder = resolve_sidecar(path)
    state = read_journal(folder)
    header = state.header
    settings = header["settings"]
    if volume is None:
        volume = source_volume(header, image)
    else:
        check_volume(header, volume)
    if model is None or isinstance(model, str):
        from .models.registry import load_model

        model = load_model(model or settings["model"], checkpoint=checkpoint, device=device)
    notes = []
    if model.weights_sha256 != settings.get("weights_sha256"):
        notes.append(
            f"WEIGHTS MISMATCH: the session used {settings['model']} weights sha256 "
            f"{settings.get('weights_sha256')!r}, the replay uses {model.name} weights "
            f"{model.weights_sha256!r}; the labels will differ"
        )
    recorded_variant = settings.get("encoder_variant")
    variant = model.capabilities.encoder
    if recorded_variant not in (None, variant):
        notes.append(
            f"the session's embeddings came from the {recorded_variant} encoder, the replay's "
            f"from the {variant} one (SLICESAM_ENCODER_DTYPE, SLICESAM_FAST_ENCODER): the labels "
            "may differ, by whole slices on structures the model is unsure of"
        )
    recorded_clicks = settings.get("click_decoder")
    clicks = model.capabilities.click_decoder
    if recorded_clicks not in (None, clicks):
        notes.append(
            f"the session's clicks went to click decoder {recorded_clicks[:12] or 'none'}, the "
            f"replay's to {clicks[:12] or 'none'}: the labels "
            "will differ"
        )
    want = threads if threads is not None else settings.get("torch_threads")
    got = _set_torch_threads(want)
    if want and got is not None and got != want:
        notes.append(f"torch uses {got} threads, the session used {want}")
    if str(settings.get("device")) not in ("cpu", str(model.device)):
        notes.append(
            f"the session ran on {settings.get('device')}, the replay on {model.device}: "
            "floating-point results may differ"
        )
    for note in notes:
        warnings.warn(note, stacklevel=2)

    opening = state.records[0]
    initial = load_npz(folder / opening["labels"]["file"])["labels"].copy()
    settings0 = opening.get("settings") or settings
    sess = Session(
        volume,
        model=model,
        window=tuple(settings["window"]),
        labels=initial,
        params=params_of(settings0["params"]),
        overwrite=settings0["overwrite"],
        click_strategy=settings.get("click_strategy", "adaptive"),
        click_edits=click_edits_of(settings0),
    )
    sess.set_objects(objects_of(opening.get("objects") or {}))

    result = ReplayResult(sess, warnings=notes)
    actions = [r for r in state.records if r.get("op") not in ("open", "snapshot")]
    total = sum(r["op"] != "restore" for r in actions)
    for rec in actions:
        op, seq = rec["op"], rec["seq"]
        if rec.get("settings"):
            sess.params = params_of(rec["settings"]["params"])
            sess.overwrite = rec["settings"]["overwrite"]
        if op == "restore":
            sess.forget_history()  # the restored session had no undo history nor mask logits
            if rec.get("weights_sha256") not in (None, model.weights_sha256):
                note = f"the session went on after action {seq - 1} with other weights"
                notes.append(f"WEIGHTS MISMATCH: {note} ({rec['weights_sha256']!r})")
                warnings.warn(note, stacklevel=2)
            continue
        args = dict(rec.get("args") or {})
        res = rec.get("result")
        if isinstance(res, dict) and res.get("cancelled"):
            pass  # a cancelled propagation changed nothing
        elif op == "new_object":
            sess.new_object(args.get("name"), label_id=res)
        elif op == "sync_external_edits":
            zs = _apply_edits(sess, folder / rec["edits"], seq) if rec.get("edits") else []
            sess.sync_external_edits(args.get("name", "paint"), slices=zs or res)
        else:
            if op == "correct":
                args["prompt"] = prompt_from_json(args["prompt"])
                if isinstance(res, dict) and res.get("rewalk_cancelled"):
                    args["repropagate"] = False  # the re-walk was cancelled: only the prompt
            method = getattr(sess, op, None)
            if method is None:
                raise SliceSamError(f"action {seq}: this slicesam has no session action {op!r}")
            method(**args)
        result.actions += 1
        if result.first_divergence is None and rec.get("labels"):
            saved = folder / rec["labels"]["file"]
            if saved.is_file() and not rec["labels"].get("full"):
                delta = load_npz(saved)
                if not np.array_equal(sess.labels[delta["z"]], delta["slices"]):
                    result.first_divergence = f"action {seq} ({op})"
        if progress is not None:
            progress(result.actions, total, op)

    expected = load_labels(folder, state)
    differ = np.flatnonzero((sess.labels != expected).any(axis=(1, 2)))
    result.differing_slices = differ.tolist()
    result.identical = differ.size == 0 and sess.labels.dtype == expected.dtype
    result.seconds = time.perf_counter() - t0
    return result


# -- command line ---------------------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> int:
    """``slicesam replay``: print the verdict; write ``--out``; exit 1 when labels differ."""
    from .engine.autosave import resolve_sidecar, source_volume
    from .engine.journal import read_header
    from .io._common import LABEL_SUFFIXES, file_format

    if args.out and (file_format(Path(args.out)) is None or Path(args.out).is_dir()):
        raise SliceSamError(
            f"cannot write {args.out}: give a file name ending in {', '.join(LABEL_SUFFIXES)}"
        )
    folder = resolve_sidecar(args.session)
    header = read_header(folder)
    volume = source_volume(header, args.image)
    settings = header["settings"]
    print(
        f"replaying {folder}: model {settings['model']} (sha256 "
        f"{str(settings.get('weights_sha256'))[:12]}…), window {settings['window']}, "
        f"torch threads {settings.get('torch_threads')}",
        file=sys.stderr,
    )
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        result = replay_session(
            folder,
            model=args.model,
            volume=volume,
            checkpoint=args.checkpoint,
            device=args.device,
            threads=args.threads,
        )
    for note in result.warnings:
        print(f"slicesam: warning: {note}", file=sys.stderr)
    print(result)
    if args.out:
        from .io import save_labels

        labels = result.labels
        axis = int(header["image"].get("axis", 0))
        if axis:
            labels = np.moveaxis(labels, 0, axis)
        like = volume
        if axis and volume.path is not None:
            from .io import load_volume

            like = load_volume(volume.path)
        written = save_labels(args.out, labels, like=like)
        print(f"wrote {written}")
    return 0 if result.identical else EXIT_DIFFERENT


def add_replay_parser(sub: Any) -> None:
    """Add the ``replay`` verb to the ``slicesam`` command's subparsers."""
    from .models.device import DEVICE_CHOICES

    rep = sub.add_parser(
        "replay",
        help="replay an autosaved session headless and check it gives the same labels",
    )
    rep.add_argument("session", help="the session's sidecar folder (<image>.slicesam) or image")
    rep.add_argument("--out", default=None, help="labels file to write (.nii.gz or .tif)")
    rep.add_argument("--image", default=None, help="the image, when it moved since the session")
    rep.add_argument("--model", default=None, help="model name (default: the recorded one)")
    rep.add_argument("--checkpoint", default=None, help="weights file")
    rep.add_argument("--device", default="cpu", choices=DEVICE_CHOICES)
    rep.add_argument("--threads", type=int, default=None, help="torch threads (recorded)")
    rep.set_defaults(func=cmd_replay)
