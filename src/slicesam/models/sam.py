"""Segment Anything (vit_b / vit_l / vit_h) from a user's checkpoint, 1024 px input.

Checkpoints are loaded with ``weights_only=True``. A file with one of the official names is
checked against the official sha256; any other file is accepted and its hash recorded. A file
holding another architecture is an error that names the right ``--model``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from .checkpoints import file_sha256, load_state_dict
from .device import resolve_device
from .torch_sam import TorchSamFamilyModel

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


def checkpoint_architecture(state: dict) -> str | None:
    """ "vit_b" / "vit_l" / "vit_h" from a SAM state dict, or None if it is not SAM-shaped."""
    weight = state.get("image_encoder.patch_embed.proj.weight")
    if weight is None or "mask_decoder.iou_prediction_head.layers.0.weight" not in state:
        return None
    return _EMBED_DIM_TO_ARCH.get(int(weight.shape[0]))


class SamModel(TorchSamFamilyModel):
    """SAM behind the slicesam model interface (points, boxes and mask inputs all work)."""

    box_only = False

    def __init__(self, sam, **kwargs) -> None:
        super().__init__(sam.image_encoder, sam.prompt_encoder, sam.mask_decoder, **kwargs)
        from segment_anything.utils.transforms import ResizeLongestSide

        self._sam = sam.to(self.device).eval()
        self._transform = ResizeLongestSide(INPUT_SIZE)

    def _preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        rgb = np.repeat(image[:, :, None], 3, axis=2)
        resized = self._transform.apply_image(rgb)
        tensor = torch.as_tensor(resized, device=self.device).permute(2, 0, 1)[None].float()
        return self._sam.preprocess(tensor), (int(resized.shape[0]), int(resized.shape[1]))


def load_sam(arch: str, checkpoint: str | Path | None, device: str = "auto") -> SamModel:
    """Build SAM ``arch`` ("vit_b", "vit_l", "vit_h") with the user's checkpoint."""
    from segment_anything import sam_model_registry

    name = f"sam_{arch}"
    official_name, official_sha = OFFICIAL_CHECKPOINTS[arch]
    if checkpoint is None:
        raise CheckpointError(
            f"model {name} needs its weights: download {official_name} from the "
            "segment-anything releases and pass --checkpoint PATH (Session(checkpoint=PATH))"
        )
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint file not found: {path} (model {name} expects {official_name})"
        )
    digest = file_sha256(path)
    known = {sha: a for a, (_, sha) in OFFICIAL_CHECKPOINTS.items()}
    if path.name in {n for n, _ in OFFICIAL_CHECKPOINTS.values()} and digest not in known:
        raise CheckpointError(
            f"{path} has an official SAM file name but fails its sha256 check "
            f"(got {digest[:12]}…): the file is corrupt or incomplete; download it again"
        )
    if digest in known and known[digest] != arch:
        raise CheckpointError(
            f"{path} is the official SAM {known[digest]} checkpoint; "
            f"use --model sam_{known[digest]}"
        )
    dev = resolve_device(device)
    state = load_state_dict(path, map_location=dev)
    found = checkpoint_architecture(state)
    if found is None:
        raise CheckpointError(
            f"{path} is not a SAM checkpoint (no SAM image encoder / mask decoder weights); "
            f"model {name} expects {official_name}"
        )
    if found != arch:
        raise CheckpointError(f"{path} holds a SAM {found} checkpoint; use --model sam_{found}")
    sam = sam_model_registry[arch](checkpoint=None)
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path} does not match SAM {arch}: {str(exc).splitlines()[0]}"
        ) from None
    return SamModel(sam, name=name, weights_sha256=digest, device=dev, input_size=INPUT_SIZE)
