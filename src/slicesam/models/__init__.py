"""Promptable 2D segmentation models behind one interface (``embed`` + ``predict``)."""

from .base import Embedding, Prediction, SegmentationModel
from .registry import DEFAULT_MODEL, MODELS, load_model

__all__ = ["DEFAULT_MODEL", "MODELS", "Embedding", "Prediction", "SegmentationModel", "load_model"]
