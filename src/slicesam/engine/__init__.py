"""The GUI-free core: sessions, propagation, the embedding cache (no torch, Qt or napari)."""

from .clicks import ClickEdits, default_click_edits
from .propagation import PropagationParams, default_params
from .session import PropagationSummary, Session

__all__ = [
    "ClickEdits",
    "PropagationParams",
    "PropagationSummary",
    "Session",
    "default_click_edits",
    "default_params",
]
