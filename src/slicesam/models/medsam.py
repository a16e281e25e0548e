"""MedSAM: SAM ViT-B fine-tuned on 1.5 M medical image-mask pairs (Ma et al., Nat. Commun. 2024).

Same architecture as ``sam_vit_b`` (segment-anything), different preprocessing, taken from
MedSAM's own inference script (``MedSAM_Inference.py``): the grey slice is resized to
1024 x 1024 *without* keeping the aspect ratio (cubic spline, anti-aliasing, clipped to the
input range, truncated to uint8), then min-max normalised to [0, 1]; no ImageNet mean/std, no
padding. Box coordinates scale by (1024 / W, 1024 / H) accordingly. MedSAM was trained with box
prompts only, so it is ``box_only``: the engine turns clicks into boxes, as for LiteMedSAM.

Weights: ``checkpoint=`` or the cache folder (``slicesam models fetch medsam`` downloads
``medsam_vit_b.pth`` from the MedSAM Zenodo record). No sha256 is published for it: the hash of
the first file fetched into (or loaded from) the cache folder is recorded and later loads are
checked against it (see :mod:`slicesam.models.download`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from .device import resolve_device
from .sam import INPUT_SIZE, SamModel, check_official_identity, read_family_state

NAME = "medsam"
FILENAME = "medsam_vit_b.pth"


def preprocess_medsam(image: np.ndarray) -> np.ndarray:
    """MedSAM's preprocessing of a (H, W) uint8 slice.

    Returns:
        (3, 1024, 1024) float32 array in [0, 1] (the three channels are equal).
    """
    from skimage.transform import resize

    resized = resize(
        image, (INPUT_SIZE, INPUT_SIZE), order=3, preserve_range=True, anti_aliasing=True
    ).astype(np.uint8)
    lo, hi = float(resized.min()), float(resized.max())
    scaled = (resized.astype(np.float32) - lo) / max(hi - lo, 1e-8)
    return np.repeat(scaled[None], 3, axis=0)


class MedSamModel(SamModel):
    """MedSAM behind the slicesam model interface. Trained with boxes: ``box_only``."""

    box_only = True

    def _preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """(H, W) uint8 -> ((1, 3, 1024, 1024) float32 tensor on the device, (1024, 1024))."""
        array = preprocess_medsam(image)
        return torch.from_numpy(array)[None].to(self.device), (INPUT_SIZE, INPUT_SIZE)


def load_medsam(checkpoint: str | Path | None = None, device: str = "auto") -> MedSamModel:
    """Build MedSAM (SAM ViT-B architecture) and load its weights.

    Args:
        checkpoint: a MedSAM state dict (``medsam_vit_b.pth`` or fine-tuned), or None for the
            file in the cache folder; never downloads.
        device: "auto", "cpu", "cuda[:N]" or "mps".

    Raises:
        CheckpointError: missing file (with the fetch command), failed hash check, the original
            SAM ViT-B file (use ``sam_vit_b``), or another architecture.
    """
    from segment_anything import sam_model_registry

    from .download import resolve_checkpoint

    path, digest = resolve_checkpoint(NAME, checkpoint)
    check_official_identity(NAME, path, digest)
    dev = resolve_device(device)
    state = read_family_state(path, dev, "vit_b", NAME, FILENAME)
    sam = sam_model_registry["vit_b"](checkpoint=None)
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path} does not match MedSAM (SAM ViT-B): {str(exc).splitlines()[0]}"
        ) from None
    return MedSamModel(sam, name=NAME, weights_sha256=digest, device=dev, input_size=INPUT_SIZE)
