"""The model interface every backend implements (no torch here).

Two calls, as in segment-anything's predictor: ``embed`` (expensive, cached by the engine) and
``predict`` (cheap, interactive). All coordinates are in the original slice's pixel frame:
points as (x, y), boxes as inclusive (x0, y0, x1, y1); the backend maps them to its input size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass
class Embedding:
    """What ``embed`` returns for one slice.

    Attributes:
        features: backend-specific payload (a torch tensor for the SAM family).
        original_size: (height, width) of the slice that was embedded.
        input_size: (height, width) of the resized image inside the model's padded input.
        nbytes: memory held by ``features`` (for the cache budget).
    """

    features: Any
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    nbytes: int = 0


@dataclass
class Prediction:
    """What ``predict`` returns.

    Attributes:
        masks: (K, H, W) bool masks in the original slice frame.
        scores: (K,) float32 predicted IoU (the model's own confidence).
        low_res_logits: (K, h, w) float32 logits at the model's low resolution; pass one of them
            back as ``mask_input`` (shape (h, w)) to refine.
        logits: (K, H, W) float32 logits in the original slice frame (``masks`` is
            ``logits > 0``), for re-thresholding a mask without decoding again; None from
            models that have none.
    """

    masks: np.ndarray
    scores: np.ndarray
    low_res_logits: np.ndarray
    logits: np.ndarray | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a model can do, declared by the model and read by the engine.

    Attributes:
        points: point prompts on their own give useful masks; False for models trained
            with boxes only (LiteMedSAM, MedSAM), whose clicks the engine turns into boxes.
        encoder: which encoder implementation and precision computes the embeddings; part
            of the embedding cache's key, since two give slightly different features.
        pauses_often: the encoder's forward reaches a pause point every few milliseconds, so
            a click waits for the background embedding to pause rather than share the cores.
        low_res_padded: ``Prediction.low_res_logits`` cover the padded square model input
            (SAM family), not only the slice.
        thread_limit: ``limit_threads(n)`` sets the CPU threads of the calling thread's
            forwards.
        packs_embeddings: ``pack``/``unpack`` turn an embedding into numpy arrays and back
            (the on-disk embedding cache).
        click_decoder: sha256 of the learned decoder that predictions with clicks go to
            ("" when clicks go to the model's own decoder, "fbrs" when f-BRS refines them);
            recorded so a replay can tell.
    """

    points: bool = True
    encoder: str = "reference"
    pauses_often: bool = False
    low_res_padded: bool = False
    thread_limit: bool = False
    packs_embeddings: bool = False
    click_decoder: str = ""


@runtime_checkable
class SegmentationModel(Protocol):
    """A promptable 2D segmentation model.

    Attributes:
        name: registry name, e.g. "litemedsam".
        weights_sha256: hash of the weights file in use ("" for weight-free backends).
        device: torch device string ("cpu", "cuda", "mps") or "cpu" for classical backends.
        capabilities: what it can do (:class:`Capabilities`).
        input_scale_ref: longest side of the model input (256 for LiteMedSAM, 1024 for SAM),
            used to convert "pixels at model scale" margins to slice pixels.
    """

    name: str
    weights_sha256: str
    device: str
    capabilities: Capabilities
    input_scale_ref: int

    def embed(self, image: np.ndarray) -> Embedding:
        """Embed a (H, W) uint8 grey slice (already windowed to 0-255)."""
        ...

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
        """Predict masks from prompts.

        Args:
            embedding: from :meth:`embed` of the same slice.
            box: inclusive (x0, y0, x1, y1) in slice pixels, or None.
            points: (N, 2) float array of (x, y) in slice pixels, or None.
            point_labels: (N,) int array, 1 = positive, 0 = negative.
            mask_input: (h, w) low-res logits from a previous prediction, or None.
            multimask: return 3 candidate masks instead of 1.
        """
        ...
