"""The GUI-free core: sessions, propagation, the embedding cache (no torch, Qt or napari)."""

from .propagation import PropagationParams
from .session import PropagationSummary, Session

__all__ = ["PropagationParams", "PropagationSummary", "Session"]
