"""MobileSAM: SAM's prompt encoder and mask decoder behind a TinyViT-5M image encoder, 1024 px.

The encoder is slicesam's own :class:`~slicesam.models.tinyvit.TinyViTEncoder` (on CPU its
inference form, :class:`~slicesam.models.tinyvit_fast.FastTinyViT`, built from the same weights:
2x faster; ``SLICESAM_FAST_ENCODER=0`` keeps the plain module); the prompt
encoder and mask decoder are segment-anything's, assembled in a segment-anything ``Sam`` so the
state-dict keys are those of the official ``mobile_sam.pt`` (``image_encoder.*``,
``prompt_encoder.*``, ``mask_decoder.*``). Preprocessing is SAM's (longest side to 1024,
ImageNet mean/std, zero padding), as MobileSAM was distilled with it; points, boxes and mask
inputs all work.

Weights: ``checkpoint=`` or the cache folder (``slicesam models fetch mobilesam`` downloads
``mobile_sam.pt`` from the MobileSAM repository). No sha256 is published for it: the hash of
the first file fetched into (or loaded from) the cache folder is recorded and later loads are
checked against it (see :mod:`slicesam.models.download`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError
from .device import default_dtype, resolve_device
from .sam import INPUT_SIZE, SamModel, check_official_identity, read_family_state
from .tinyvit_fast import FastTinyViT, fast_encoder_default

NAME = "mobilesam"
FILENAME = "mobile_sam.pt"

#: Keys a checkpoint may carry or lack without harm: the encoder's unused ImageNet classifier,
#: and the attention-bias index tables (derived from the window size, not learned).
_OPTIONAL_PREFIXES = ("image_encoder.norm_head.", "image_encoder.head.")
_OPTIONAL_SUFFIXES = ("attention_bias_idxs", "bias_index")


def build_mobile_sam():
    """MobileSAM with random weights, as a segment-anything ``Sam`` (eval mode, CPU).

    Returns:
        ``segment_anything.modeling.Sam`` whose ``image_encoder`` is a 1024 px
        :class:`~slicesam.models.tinyvit.TinyViTEncoder` giving (B, 256, 64, 64) embeddings.
    """
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    from .tinyvit import TinyViTEncoder

    embed_dim = 256
    grid = INPUT_SIZE // 16
    sam = Sam(
        image_encoder=TinyViTEncoder(img_size=INPUT_SIZE),
        prompt_encoder=PromptEncoder(
            embed_dim=embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(INPUT_SIZE, INPUT_SIZE),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=embed_dim, mlp_dim=2048, num_heads=8
            ),
            transformer_dim=embed_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def _optional(key: str) -> bool:
    return key.startswith(_OPTIONAL_PREFIXES) or key.endswith(_OPTIONAL_SUFFIXES)


def load_mobilesam(checkpoint: str | Path | None = None, device: str = "auto") -> SamModel:
    """Build MobileSAM and load its weights.

    Args:
        checkpoint: a MobileSAM state dict (``mobile_sam.pt`` or fine-tuned), or None for the
            file in the cache folder; never downloads.
        device: "auto", "cpu", "cuda[:N]" or "mps".

    Raises:
        CheckpointError: missing file (with the fetch command), failed hash check, or a
            checkpoint of another architecture (naming the right ``--model``).
    """
    from .download import resolve_checkpoint

    path, digest = resolve_checkpoint(NAME, checkpoint)
    check_official_identity(NAME, path, digest)
    dev = resolve_device(device)
    state = read_family_state(path, dev, "vit_t", NAME, FILENAME)
    state = {k: v for k, v in state.items() if not k.endswith(_OPTIONAL_SUFFIXES)}
    sam = build_mobile_sam()
    try:
        result = sam.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = str(exc).splitlines()[-1].strip()
        raise CheckpointError(f"{path} does not match MobileSAM: {detail}") from None
    missing = [k for k in result.missing_keys if not _optional(k)]
    unexpected = [k for k in result.unexpected_keys if not _optional(k)]
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"{path} does not match MobileSAM: {detail}")
    if fast_encoder_default(dev):
        dtype = default_dtype() if dev == "cpu" else torch.float32
        sam.image_encoder = FastTinyViT(sam.image_encoder.state_dict(), dtype)
    return SamModel(sam, name=NAME, weights_sha256=digest, device=dev, input_size=INPUT_SIZE)
