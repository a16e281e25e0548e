"""Clicks for a box-trained SAM-style decoder by f-BRS (Sofiiuk et al., CVPR 2020).

f-BRS-B ("feature backpropagating refinement"): at click time, a per-channel scale ``s`` and
bias ``b`` of the image embedding are optimised with L-BFGS so that the decoder's logits at the
clicked pixels take the clicks' labels; the networks' weights are never trained or changed.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from .base import Embedding, Prediction
from .torch_sam import prompt_tensors, upsample_logits

#: most L-BFGS iterations per click prediction (the worst-case wait: L-BFGS's default of
#: 1.25 x as many decoder forward + backward passes); more lets stubborn clicks win
FBRS_ITERATIONS = 20
#: weight of f-BRS's ||s - 1||^2 + ||b||^2 term: larger keeps the mask nearer the plain
#: decoder's away from the clicks (too large and clicks lose), smaller lets a click spread
FBRS_LAMBDA = 3.0


class _ClicksSatisfied(Exception):
    """Raised from the L-BFGS closure to stop as soon as every click pixel has its label."""


def _click_pixels(
    points: np.ndarray, labels: np.ndarray, embedding: Embedding, input_side: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices into the (H, W) slice and (M,) float32 targets (1 / 0) of the pixels
    within about one model pixel of each (x, y) click."""
    h, w = embedding.original_size
    radius = max(1.0, max(h, w) / input_side)
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    keep = dx**2 + dy**2 <= radius**2
    dy, dx = dy[keep], dx[keep]
    flat, target = [], []
    for (x, y), lab in zip(np.asarray(points).reshape(-1, 2), labels):
        ys = np.clip(int(round(float(y))) + dy, 0, h - 1)
        xs = np.clip(int(round(float(x))) + dx, 0, w - 1)
        idx = np.unique(ys * w + xs)
        flat.append(idx)
        target.append(np.full(idx.size, 1.0 if lab > 0 else 0.0, np.float32))
    return np.concatenate(flat), np.concatenate(target)


def fbrs_predict(
    prompt_encoder: torch.nn.Module,
    mask_decoder: torch.nn.Module,
    embedding: Embedding,
    input_side: int,
    *,
    box: tuple[float, float, float, float] | None = None,
    points: np.ndarray | None = None,
    point_labels: np.ndarray | None = None,
    mask_input: np.ndarray | None = None,
    iterations: int = FBRS_ITERATIONS,
) -> Prediction:
    """One mask for the prompts, with the clicks enforced by f-BRS-B.

    Args:
        prompt_encoder, mask_decoder: segment-anything-style reference modules (not changed).
        embedding: ``features`` (1, 256, 64, 64) (float16 or float32; computed in float32).
        input_side: the square model input's side (256 for LiteMedSAM).
        box: inclusive (x0, y0, x1, y1) in slice pixels, or None.
        points: (N, 2) (x, y) clicks in slice pixels, or None; point_labels: (N,) 1 / 0.
        mask_input: (256, 256) low-res logits of a previous prediction, or None.
        iterations: most L-BFGS iterations; it stops early once every click pixel has its
            label's sign. With no clicks this is the plain decoder's prediction.

    Returns:
        :class:`Prediction` with K = 1: masks (1, H, W) bool, scores (1,) float32 (the IoU
        head's), low_res_logits (1, 256, 256) float32, logits (1, H, W) float32.
    """
    feats = embedding.features
    device = feats.device
    with torch.inference_mode(False), torch.no_grad():
        emb = feats.detach().to(dtype=torch.float32).clone()
        point_arg, box_arg, mask_arg = prompt_tensors(
            embedding, str(device), box, points, point_labels, mask_input
        )
        sparse, dense = prompt_encoder(points=point_arg, boxes=box_arg, masks=mask_arg)
        sparse, dense = sparse.clone(), dense.clone()
        dense_pe = prompt_encoder.get_dense_pe().clone()
    frozen = {n: p.detach() for n, p in mask_decoder.named_parameters()}

    def decode(scale: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low_res, iou = functional_call(
            mask_decoder,
            frozen,
            (),
            {
                "image_embeddings": emb * scale[:, None, None] + bias[:, None, None],
                "image_pe": dense_pe,
                "sparse_prompt_embeddings": sparse,
                "dense_prompt_embeddings": dense,
                "multimask_output": False,
            },
        )
        return low_res, iou

    channels = emb.shape[1]
    with torch.inference_mode(False):
        scale = torch.ones(channels, device=device)
        bias = torch.zeros(channels, device=device)
        if point_arg is not None and iterations > 0:
            flat, target = _click_pixels(
                points, np.asarray(point_labels).reshape(-1), embedding, input_side
            )
            flat_t = torch.as_tensor(flat, device=device)
            target_t = torch.as_tensor(target, device=device)
            scale.requires_grad_(True)
            bias.requires_grad_(True)
            opt = torch.optim.LBFGS(
                [scale, bias], max_iter=iterations, line_search_fn="strong_wolfe"
            )

            def closure() -> torch.Tensor:
                opt.zero_grad()
                with torch.enable_grad():
                    low_res, _ = decode(scale, bias)
                    picked = upsample_logits(low_res, input_side, embedding).reshape(-1)[flat_t]
                    if bool(((picked > 0) == (target_t > 0.5)).all()):
                        raise _ClicksSatisfied
                    loss = F.binary_cross_entropy_with_logits(picked, target_t)
                    reg = (scale - 1).square().sum() + bias.square().sum()
                    loss = loss + FBRS_LAMBDA * reg
                    loss.backward()
                return loss

            with contextlib.suppress(_ClicksSatisfied):
                opt.step(closure)
        with torch.no_grad():
            low_res, iou = decode(scale.detach(), bias.detach())
            logits = upsample_logits(low_res, input_side, embedding)[0].float().cpu().numpy()
    return Prediction(
        masks=logits > 0,
        scores=iou[0].float().cpu().numpy(),
        low_res_logits=low_res[0].float().cpu().numpy(),
        logits=logits,
    )
