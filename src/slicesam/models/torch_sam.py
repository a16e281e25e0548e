"""Shared torch machinery for SAM-family models (image encoder, prompt encoder, mask decoder).

Subclasses define how a slice becomes the encoder's input (:meth:`_preprocess`) and the input
size; prompts, decoding and upsampling are the same for LiteMedSAM and SAM.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .base import Capabilities, Embedding, Prediction
from .device import cpu_default_switch
from .geometry import longest_side_shape  # noqa: F401  (re-exported for the backends)
from .yield_points import add_block_yield_points


def fast_decoder_default(device: str) -> bool:
    """Whether SAM-family models decode with slicesam's fast mask decoder
    (:mod:`~slicesam.models.mask_decoder_fast`) when not told otherwise.

    True on CPU unless the environment variable ``SLICESAM_FAST_DECODER`` is "0"/"false"/"no"
    ("1" forces it on other devices too).
    """
    return cpu_default_switch("SLICESAM_FAST_DECODER", device)


def fast_twin(mask_decoder: torch.nn.Module, device: str):
    """:class:`~slicesam.models.mask_decoder_fast.FastMaskDecoder` computing the same function
    as the reference ``mask_decoder`` (its weights, its number of heads), on ``device``."""
    from .mask_decoder_fast import FastMaskDecoder

    heads = int(getattr(getattr(mask_decoder, "transformer", None), "num_heads", 8))
    return FastMaskDecoder(mask_decoder.state_dict(), num_heads=heads).to(device)


class TorchSamFamilyModel:
    """A SAM-style model split into image encoder, prompt encoder and mask decoder.

    Args:
        image_encoder, prompt_encoder, mask_decoder: torch modules with segment-anything's
            call signatures.
        name: registry name.
        weights_sha256: sha256 of the weights file.
        device: torch device string.
        input_size: the square encoder input side (256 LiteMedSAM, 1024 SAM).
        fast_decoder: decode with :class:`~slicesam.models.mask_decoder_fast.FastMaskDecoder`
            built from ``mask_decoder``'s weights (same function, float rounding apart) instead
            of the reference module; None = :func:`fast_decoder_default`.
    """

    box_only = False
    #: which image encoder implementation computes the embeddings (part of the cache key)
    encoder_variant = "reference-fp32"
    #: which mask decoder implementation decodes ("reference" or "fast")
    decoder_variant = "reference"
    #: low_res_logits cover the square padded model input (not just the slice)
    low_res_padded = True
    #: sha256 of a learned click decoder that predictions with clicks go to ("" for none)
    click_decoder_sha256 = ""
    #: dtype embeddings are kept in (a 512 x 512 x 300 CT's LiteMedSAM cache: 600 MB)
    FEATURE_DTYPE = torch.float16

    def __init__(
        self,
        image_encoder: torch.nn.Module,
        prompt_encoder: torch.nn.Module,
        mask_decoder: torch.nn.Module,
        *,
        name: str,
        weights_sha256: str,
        device: str,
        input_size: int,
        fast_decoder: bool | None = None,
    ) -> None:
        self.image_encoder = image_encoder.to(device).eval()
        #: pause points every few milliseconds of an embedding (slicesam's own encoder), not
        #: only between transformer blocks (see Session's ForegroundGate)
        self.pauses_often = bool(getattr(image_encoder, "has_yield_points", False))
        if not self.pauses_often:
            add_block_yield_points(self.image_encoder)
        self.prompt_encoder = prompt_encoder.to(device).eval()
        self.mask_decoder = mask_decoder.to(device).eval()
        self.fast_decoder = None
        if fast_decoder_default(device) if fast_decoder is None else fast_decoder:
            self.fast_decoder = fast_twin(mask_decoder, device)
            self.decoder_variant = "fast"
        self.name = name
        self.weights_sha256 = weights_sha256
        self.device = device
        self.input_scale_ref = input_size
        self._input_size = input_size
        self._dense_pe: dict[int, torch.Tensor] = {}  # per prompt encoder

    # -- subclass hooks -------------------------------------------------------------------
    def _preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """(H, W) uint8 -> ((1, 3, S, S) float tensor on device, (h, w) resized size)."""
        raise NotImplementedError

    # -- interface --------------------------------------------------------------------------
    @torch.inference_mode()
    def embed(self, image: np.ndarray) -> Embedding:
        """Run the image encoder on a (H, W) uint8 slice; features are (1, 256, 64, 64)
        float16 (:attr:`FEATURE_DTYPE`: half the memory of float32; :meth:`predict` computes
        in float32)."""
        if image.ndim != 2:
            raise ValueError(f"embed expects a (H, W) slice, got shape {image.shape}")
        tensor, input_size = self._preprocess(image)
        features = self.image_encoder(tensor).to(self.FEATURE_DTYPE)
        return Embedding(
            features=features,
            original_size=(int(image.shape[0]), int(image.shape[1])),
            input_size=input_size,
            nbytes=features.element_size() * features.nelement(),
        )

    @property
    def capabilities(self) -> Capabilities:
        """What this model can do (the engine reads nothing else)."""
        return Capabilities(
            points=not self.box_only,
            encoder=self.encoder_variant,
            pauses_often=self.pauses_often,
            low_res_padded=self.low_res_padded,
            thread_limit=True,
            packs_embeddings=True,
            click_decoder=self.click_decoder_sha256,
        )

    def limit_threads(self, n: int) -> None:
        """Run this model's forwards *from the calling thread* on ``n`` CPU threads (torch's
        OpenMP thread count is per thread: other threads keep theirs)."""
        torch.set_num_threads(max(1, int(n)))

    def pack(self, embedding: Embedding) -> dict[str, np.ndarray]:
        """The embedding as numpy arrays (for the on-disk cache)."""
        return {
            "features": embedding.features.cpu().numpy(),
            "original_size": np.asarray(embedding.original_size),
            "input_size": np.asarray(embedding.input_size),
        }

    def unpack(self, arrays: dict[str, np.ndarray]) -> Embedding:
        """Inverse of :meth:`pack`."""
        features = torch.from_numpy(np.ascontiguousarray(arrays["features"])).to(self.device)
        return Embedding(
            features=features,
            original_size=tuple(int(v) for v in arrays["original_size"]),
            input_size=tuple(int(v) for v in arrays["input_size"]),
            nbytes=features.element_size() * features.nelement(),
        )

    @torch.inference_mode()
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
        """Decode masks for the prompts; see :class:`~slicesam.models.base.SegmentationModel`."""
        return self._decode(
            self.prompt_encoder,
            self.mask_decoder,
            self.fast_decoder,
            embedding,
            prompt_tensors(embedding, self.device, box, points, point_labels, mask_input),
            multimask,
        )

    def _decode(
        self,
        prompt_encoder: torch.nn.Module,
        mask_decoder: torch.nn.Module,
        fast_decoder,
        embedding: Embedding,
        prompts: tuple,
        multimask: bool,
    ) -> Prediction:
        """One decoder pass with ``prompts`` (:func:`prompt_tensors`) through the given prompt
        encoder and mask decoder (``fast_decoder``: its fast twin, or None)."""
        dev = self.device
        point_arg, box_arg, mask_arg = prompts
        sparse, dense = prompt_encoder(points=point_arg, boxes=box_arg, masks=mask_arg)
        dense_pe = self._dense_pe.get(id(prompt_encoder))
        if dense_pe is None:
            dense_pe = self._dense_pe[id(prompt_encoder)] = prompt_encoder.get_dense_pe()
        if fast_decoder is not None:
            # the per-slice precomputation is reused while the embedding tensor is the same
            # object and no mask prompt changes the dense embedding
            low_res, iou = fast_decoder(
                embedding.features.to(device=dev),
                dense_pe,
                sparse,
                dense,
                multimask,
                cached=mask_arg is None,
            )
        else:
            low_res, iou = mask_decoder(
                image_embeddings=embedding.features.to(device=dev, dtype=torch.float32),
                image_pe=dense_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
            )
        logits = upsample_logits(low_res, self._input_size, embedding)[0].float().cpu().numpy()
        return Prediction(
            masks=logits > 0,
            scores=iou[0].float().cpu().numpy(),
            low_res_logits=low_res[0].float().cpu().numpy(),
            logits=logits,
        )


def prompt_tensors(
    embedding: Embedding,
    device: str,
    box: tuple[float, float, float, float] | None = None,
    points: np.ndarray | None = None,
    point_labels: np.ndarray | None = None,
    mask_input: np.ndarray | None = None,
) -> tuple:
    """Slice-pixel prompts as a SAM prompt encoder's arguments, in the model input's frame.

    Returns:
        (points, boxes, masks): ``((1, N, 2) float32 (x, y), (1, N) int64 labels)`` or None,
        a (1, 4) float32 box or None, a (1, 1, h, w) float32 mask prompt or None.
    """
    (h0, w0), (h1, w1) = embedding.original_size, embedding.input_size
    scale = np.array([w1 / w0, h1 / h0], dtype=np.float64)
    point_arg = None
    if points is not None and len(points):
        coords = np.asarray(points, dtype=np.float64).reshape(-1, 2) * scale
        labels = np.asarray(point_labels, dtype=np.int64).reshape(-1)
        point_arg = (
            torch.as_tensor(coords, dtype=torch.float32, device=device)[None],
            torch.as_tensor(labels, dtype=torch.int64, device=device)[None],
        )
    box_arg = None
    if box is not None:
        b = np.asarray(box, dtype=np.float64).reshape(2, 2) * scale
        box_arg = torch.as_tensor(b.reshape(1, 4), dtype=torch.float32, device=device)
    mask_arg = None
    if mask_input is not None:
        mask_arg = torch.as_tensor(mask_input, dtype=torch.float32, device=device)[None, None]
    return point_arg, box_arg, mask_arg


def upsample_logits(low_res: torch.Tensor, input_side: int, emb: Embedding) -> torch.Tensor:
    """(B, K, h, w) low-res logits of a square ``input_side`` model input -> (B, K, H, W)
    logits in the original slice frame (the padding cropped away)."""
    if low_res.shape[-1] != input_side:
        low_res = F.interpolate(
            low_res, (input_side, input_side), mode="bilinear", align_corners=False
        )
    h, w = emb.input_size
    cropped = low_res[..., :h, :w]
    return F.interpolate(cropped, emb.original_size, mode="bilinear", align_corners=False)
