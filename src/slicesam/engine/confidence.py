"""Per-slice confidence of a mask: the model's IoU head, stability and neighbour agreement.

- ``iou``: the model's own predicted IoU (its IoU head);
- ``stability``: IoU of the mask thresholded at logit -1 and +1 (SAM's stability score): a
  mask whose border moves a lot with the threshold is uncertain;
- ``agreement``: Dice with the mask on the neighbour slice it was propagated from (objects
  change slowly from slice to slice; a jump is suspicious).
"""

from __future__ import annotations

import numpy as np

#: Logit offset of the stability score.
STABILITY_OFFSET = 1.0


def stability(low_res_logits: np.ndarray, offset: float = STABILITY_OFFSET) -> float:
    """IoU of ``logits > offset`` and ``logits > -offset`` on a (h, w) logit map (1.0 if both
    are empty)."""
    inner = int((low_res_logits > offset).sum())
    outer = int((low_res_logits > -offset).sum())
    return 1.0 if outer == 0 else inner / outer


def combine(evidence: dict[str, float]) -> float:
    """One confidence in [0, 1] from the evidence of a slice: the weakest of its parts.

    Anchors (no neighbour) use the IoU head and stability only.
    """
    parts = [float(v) for k, v in evidence.items() if k in ("iou", "stability", "agreement")]
    if not parts:
        return 0.0
    return float(np.clip(min(parts), 0.0, 1.0))
