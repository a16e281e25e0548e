"""The session as its prompting strategy and its walks see it.

A prompt on a slice gets a :class:`~slicesam.engine.prompting.SliceContext`, a propagation
of an object an :class:`~slicesam.engine.walks.ObjectContext`: the model's predictions, the
windowed slices and the object's masks, as functions of the slice index. Both are built
here from the session's public API (its model, embeddings, labels and settings).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from ..intensity import apply_window
from ..models.base import Prediction
from .objects import SegObject, SlicePrompts
from .prompting import SliceContext, neighbour_mask
from .walks import ObjectContext

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

__all__ = ["object_context", "predict", "slice_context", "unit_slice"]


def predict(session: Session, z: int, **prompts) -> Prediction:
    """The session model's prediction for slice ``z`` (its cached embedding) and ``prompts``."""
    return session.model.predict(session.embed(z), **prompts)


def unit_slice(session: Session, z: int) -> np.ndarray:
    """Slice ``z`` windowed as the model sees it: a (y, x) float32 array in 0-1."""
    return apply_window(session.volume.data[z], session.window).astype(np.float32) / 255.0


def slice_context(session: Session, target: SegObject, z: int) -> SliceContext:
    """What a prompt on slice ``z`` of ``target`` (one of the session's objects) may use."""
    record = target.slices.get(z)
    prompts = record.prompts if record is not None else None
    return SliceContext(
        z=z,
        predict=functools.partial(predict, session, z),
        current=session.labels[z] == target.label_id,
        prompts=prompts if prompts is not None else SlicePrompts(),
        logits=record.logits if record is not None else None,
        model_px=session.model_px,
        params=session.params,
        strategy=session.click_strategy,
        edits=session.click_edits,
        image=functools.partial(unit_slice, session, z),
        neighbour=functools.partial(neighbour_mask, session.labels, target.label_id, z),
    )


def object_context(session: Session, target: SegObject) -> ObjectContext:
    """What the walks of ``target`` (one of the session's objects) use."""
    label = target.label_id
    return ObjectContext(
        target,
        lambda z: session.labels[z] == label,
        functools.partial(predict, session),
        functools.partial(unit_slice, session),
        session.params,
        session.model_px,
    )
