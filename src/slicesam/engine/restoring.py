"""Reopening an autosaved session: :meth:`Session.restore
<slicesam.engine.session.Session.restore>`.

The sidecar is read by :func:`~slicesam.engine.autosave.read_autosave`; the session is rebuilt
from it with its public API (the constructor and
:meth:`~slicesam.engine.annotation.Annotation.set_objects`), then
:func:`~slicesam.engine.autosave.resume_autosave` checks the weights and resumes the journal.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io.volume import Volume
from ..models.base import SegmentationModel

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

__all__ = ["restore"]


def restore(
    cls: type[Session],
    path: str | Path,
    *,
    model: str | SegmentationModel | None = None,
    volume: Volume | np.ndarray | None = None,
    image: str | Path | None = None,
    labels: np.ndarray | None = None,
    checkpoint: str | Path | None = None,
    device: str | None = None,
    resume: bool = True,
    **session_kwargs,
) -> Session:
    """Reopen an autosaved session from its sidecar folder (or its image's path): labels,
    objects (names, lock state) and prompts.

    Args:
        cls: the session class to build (:class:`~slicesam.engine.session.Session`).
        path: the sidecar folder, or the image whose sidecar to find.
        model: a model instance or registry name (default: the recorded model name).
        volume: the session's volume (default: the recorded image file, checked against
            the recorded content fingerprint).
        image: the image file, when it moved since the session was saved.
        labels: an array to restore the labels into (e.g. a napari layer's data).
        checkpoint, device: for loading ``model`` by name (device default: "auto").
        resume: keep autosaving into the same sidecar (a ``restore`` record marks it).
        **session_kwargs: passed to :class:`Session` (e.g. ``cache_bytes``).

    The window, propagation params, overwrite mode and click settings are the recorded
    ones. Undo history and mask logits are not restored. A model whose weights differ
    from the recorded ones is used with a warning (restoring needs no model output).
    """
    from .autosave import read_autosave, resume_autosave

    saved = read_autosave(path, volume=volume, image=image, labels=labels)
    session = cls(
        saved.volume,
        model=model if model is not None else saved.model,
        checkpoint=checkpoint,
        device=device or "auto",
        labels=saved.labels,
        **{**saved.settings, **session_kwargs},
    )
    session.set_objects(saved.objects)
    resume_autosave(session, saved, resume=resume)
    return session
