"""napari-slicesam: interactive 3D segmentation with Segment-Anything-family models.

Public API (imported lazily so ``import slicesam`` stays fast and never imports torch)::

    import slicesam
    vol = slicesam.load_volume("ct.nii.gz")
    sess = slicesam.Session(vol)
    obj = sess.new_object("liver")
    mask = sess.add_box(obj, z=15, box=(x0, y0, x1, y1))
    sess.propagate(obj)
    slicesam.save_labels("liver.nii.gz", sess.labels, like=vol)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_volume": "slicesam.io",
    "save_labels": "slicesam.io",
    "load_labels": "slicesam.io",
    "Volume": "slicesam.io",
    "Session": "slicesam.engine.session",
    "PropagationSummary": "slicesam.engine.session",
    "PropagationParams": "slicesam.engine.propagation",
    "Point": "slicesam.prompts",
    "Box": "slicesam.prompts",
    "Scribble": "slicesam.prompts",
    "Lasso": "slicesam.prompts",
    "read_prompts": "slicesam.prompts",
    "MODELS": "slicesam.models.registry",
    "load_model": "slicesam.models.registry",
    "dice": "slicesam.metrics",
    "SliceSamError": "slicesam.errors",
    "find_autosave": "slicesam.engine.autosave",
    "load_session": "slicesam.engine.session",
    "restore_session": "slicesam.engine.session",
    "replay_session": "slicesam.replay",
}

__all__ = [
    "MODELS",
    "Box",
    "Point",
    "PropagationParams",
    "PropagationSummary",
    "Scribble",
    "Lasso",
    "Session",
    "SliceSamError",
    "Volume",
    "dice",
    "find_autosave",
    "load_labels",
    "load_session",
    "load_model",
    "load_volume",
    "read_prompts",
    "replay_session",
    "restore_session",
    "save_labels",
]

if TYPE_CHECKING:  # pragma: no cover
    from .engine.autosave import find_autosave
    from .engine.propagation import PropagationParams
    from .engine.session import PropagationSummary, Session, load_session, restore_session
    from .errors import SliceSamError
    from .io import Volume, load_labels, load_volume, save_labels
    from .metrics import dice
    from .models.registry import MODELS, load_model
    from .prompts import Box, Lasso, Point, Scribble, read_prompts
    from .replay import replay_session


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'slicesam' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
