"""The GUI-free core: sessions, propagation, the embedding cache (no torch, Qt or napari)."""

from .propagation import PropagationParams, default_params
from .session import PropagationSummary, Session

__all__ = ["PropagationParams", "PropagationSummary", "Session", "default_params"]
