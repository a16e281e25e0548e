"""Segment Anything (vit_b / vit_l / vit_h), 1024 px input.

Weights come from ``checkpoint=`` or, without it, from the cache folder (``slicesam models fetch
sam_vit_b`` downloads the official file there; see :mod:`slicesam.models.download`).
Checkpoints are loaded with ``weights_only=True``. A cached file, or a file with one of the
official names, is checked against the official sha256; any other file is accepted and its hash
recorded. A file holding another architecture is an error that names the right ``--model``.
On CUDA the networks run under float16 autocast (:func:`slicesam.models.device.autocast`); on
CPUs with native bfloat16, ``SLICESAM_ENCODER_DTYPE=bfloat16`` runs the image encoder under
bf16 autocast (:func:`slicesam.models.device.encoder_autocast`; speed in BENCHMARKS.md). On
CPU the encoder's attention runs fused (:mod:`slicesam.models.sam_vit_attention`: same function,
less time and memory; ``SLICESAM_FUSED_ATTENTION=0`` turns it off, ``=1`` forces it elsewhere).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from .base import Embedding, Prediction
from .checkpoints import load_state_dict
from .device import autocast, cpu_default_switch, encoder_autocast, resolve_device
from .torch_sam import TorchSamFamilyModel
from .weights import official_model_for

INPUT_SIZE = 1024

#: Official checkpoints: file name and sha256 (as published alongside the download links).
OFFICIAL_CHECKPOINTS: dict[str, tuple[str, str]] = {
    "vit_b": (
        "sam_vit_b_01ec64.pth",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
    ),
    "vit_l": (
        "sam_vit_l_0b3195.pth",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
    ),
    "vit_h": (
        "sam_vit_h_4b8939.pth",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
    ),
}

#: Encoder width -> architecture, to recognise a checkpoint's type.
_EMBED_DIM_TO_ARCH = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}


#: Architecture -> the ``--model`` name that loads it.
ARCH_TO_MODEL = {
    "vit_b": "sam_vit_b",
    "vit_l": "sam_vit_l",
    "vit_h": "sam_vit_h",
    "vit_t": "mobilesam",
    "litemedsam": "litemedsam",
}


def checkpoint_architecture(state: dict) -> str | None:
    """The architecture of a SAM-family state dict, or None if it is not SAM-shaped.

    Returns "vit_b" / "vit_l" / "vit_h" (SAM, MedSAM), "vit_t" (MobileSAM: TinyViT with a
    3x3 convolutional stem) or "litemedsam" (TinyViT with a 1x1 stem, 256 px).
    """
    if "mask_decoder.iou_prediction_head.layers.0.weight" not in state:
        return None
    weight = state.get("image_encoder.patch_embed.proj.weight")
    if weight is not None:
        return _EMBED_DIM_TO_ARCH.get(int(weight.shape[0]))
    stem = state.get("image_encoder.patch_embed.seq.0.c.weight")
    if stem is not None and stem.ndim == 4:
        return "vit_t" if int(stem.shape[-1]) == 3 else "litemedsam"
    return None


class SamModel(TorchSamFamilyModel):
    """SAM behind the slicesam model interface (points, boxes and mask inputs all work)."""

    box_only = False

    def __init__(self, sam, **kwargs) -> None:
        super().__init__(sam.image_encoder, sam.prompt_encoder, sam.mask_decoder, **kwargs)
        from segment_anything.utils.transforms import ResizeLongestSide

        self._sam = sam.to(self.device).eval()
        self._transform = ResizeLongestSide(INPUT_SIZE)
        # embeddings differ from fp32 ones: the variant is part of the cache key. An encoder
        # that picks its own precision (slicesam's FastTinyViT) runs without autocast.
        own_variant = getattr(self.image_encoder, "variant", None)
        if own_variant is not None:
            self._encoder_precision, self.encoder_variant = contextlib.nullcontext, own_variant
        else:
            self._encoder_precision, self.encoder_variant = encoder_autocast(self.device)
        if cpu_default_switch("SLICESAM_FUSED_ATTENTION", self.device):
            from . import sam_vit_attention

            if sam_vit_attention.install(self.image_encoder):
                self.encoder_variant += "+fused-attention"
                if "bf16" in self.encoder_variant or "fp16" in self.encoder_variant:
                    self.encoder_variant += "-row-blocks"  # other rounding than the kernel's

    def _preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """SAM's own preprocessing of a (H, W) uint8 slice.

        Grey -> 3 channels, longest side to 1024 (``ResizeLongestSide``, bilinear), ImageNet
        mean/std normalisation, zero padding to 1024 x 1024 (bottom/right).

        Returns:
            ((1, 3, 1024, 1024) float32 tensor on the device, (h, w) resized size before padding)
        """
        rgb = np.repeat(image[:, :, None], 3, axis=2)
        resized = self._transform.apply_image(rgb)
        tensor = torch.as_tensor(resized, device=self.device).permute(2, 0, 1)[None].float()
        return self._sam.preprocess(tensor), (int(resized.shape[0]), int(resized.shape[1]))

    def embed(self, image: np.ndarray) -> Embedding:
        """Embed a (H, W) uint8 slice: features (1, 256, 64, 64) float16 (fp16 autocast on
        CUDA; bf16 autocast on request on CPUs with native bf16)."""
        with self._encoder_precision():
            return super().embed(image)

    def predict(
        self,
        embedding: Embedding,
        *,
        box: tuple[float, float, float, float] | None = None,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask: bool = False,
    ) -> Prediction:
        """Decode masks (float16 autocast on CUDA); see :class:`SegmentationModel`."""
        with autocast(self.device):
            return super().predict(
                embedding,
                box=box,
                points=points,
                point_labels=point_labels,
                mask_input=mask_input,
                multimask=multimask,
            )


def check_official_identity(name: str, path: Path, digest: str) -> None:
    """Refuse a file that is another model's official checkpoint, or a corrupt official file.

    Raises:
        CheckpointError: ``path`` has an official SAM file name but not its hash, or its hash is
            the published hash of another registry model (the message names the right
            ``--model``).
    """
    official = official_model_for(digest)
    if path.name in {n for n, _ in OFFICIAL_CHECKPOINTS.values()} and official is None:
        raise CheckpointError(
            f"{path} has an official SAM file name but fails its sha256 check "
            f"(got {digest[:12]}…): the file is corrupt or incomplete; download it again "
            f"(slicesam models fetch {name} --force)"
        )
    if official is not None and official != name:
        raise CheckpointError(
            f"{path} is the official {official} checkpoint, not {name}'s; use --model {official}"
        )


def read_family_state(
    path: Path, device: str, arch: str, name: str, expected_file: str
) -> dict[str, torch.Tensor]:
    """Load a SAM-family state dict and check it holds architecture ``arch``.

    Raises:
        CheckpointError: unreadable, not SAM-shaped, or another architecture (the message names
            the ``--model`` that loads it).
    """
    state = load_state_dict(path, map_location=device)
    found = checkpoint_architecture(state)
    if found is None:
        raise CheckpointError(
            f"{path} is not a SAM checkpoint (no SAM-family image encoder / mask decoder "
            f"weights); model {name} expects {expected_file}"
        )
    if found != arch:
        other = ARCH_TO_MODEL.get(found, found)
        label = {"vit_t": "MobileSAM", "litemedsam": "LiteMedSAM"}.get(found, f"SAM {found}")
        raise CheckpointError(f"{path} holds a {label} checkpoint; use --model {other}")
    return state


def load_sam(arch: str, checkpoint: str | Path | None, device: str = "auto") -> SamModel:
    """Build SAM ``arch`` ("vit_b", "vit_l", "vit_h").

    Args:
        arch: the encoder size.
        checkpoint: a weights file, or None for the official file in the cache folder
            (``slicesam models fetch sam_vit_b``); never downloads.
        device: "auto", "cpu", "cuda[:N]" or "mps".
    """
    from segment_anything import sam_model_registry

    from .download import resolve_checkpoint

    name = f"sam_{arch}"
    official_name, _ = OFFICIAL_CHECKPOINTS[arch]
    path, digest = resolve_checkpoint(name, checkpoint)
    check_official_identity(name, path, digest)
    dev = resolve_device(device)
    state = read_family_state(path, dev, arch, name, official_name)
    sam = sam_model_registry[arch](checkpoint=None)
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path} does not match SAM {arch}: {str(exc).splitlines()[0]}"
        ) from None
    return SamModel(sam, name=name, weights_sha256=digest, device=dev, input_size=INPUT_SIZE)
