"""Simulated interaction rounds for training a click decoder (the RITM / SAM recipe).

A round starts with a box or a first positive click; each later click is placed as the
benchmark's simulated user places it (the innermost pixel of the largest error region,
:func:`~slicesam.bench.simulate.next_click_2d`), sometimes moved within that region so the
decoder does not learn one exact pixel. The previous round's low-resolution logits are the next
round's mask prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..bench.simulate import next_click_2d, tight_box


@dataclass
class Round:
    """The prompts of one decoder call, in slice pixels.

    Attributes:
        box: inclusive (x0, y0, x1, y1), or None.
        points: (x, y) of each click.
        labels: 1 for a positive click, 0 for a negative one.
        mask_input: the previous call's (h, w) low-res logits, or None.
    """

    box: tuple[float, float, float, float] | None = None
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    mask_input: np.ndarray | None = None

    def prompts(self) -> dict:
        """Keyword arguments of a model's ``predict`` /
        :func:`~slicesam.models.torch_sam.prompt_tensors`."""
        points = np.asarray(self.points, dtype=np.float64).reshape(-1, 2) if self.points else None
        labels = np.asarray(self.labels, dtype=np.int64) if self.points else None
        return {
            "box": self.box,
            "points": points,
            "point_labels": labels,
            "mask_input": self.mask_input,
        }


def user_box(gt: np.ndarray, rng: np.random.Generator, jitter: float) -> tuple:
    """The tight box of (y, x) mask ``gt`` with each side moved by up to ``jitter`` of the
    box's size (a hand-drawn box), clipped to the slice."""
    x0, y0, x1, y1 = tight_box(gt)
    w, h = x1 - x0 + 1, y1 - y0 + 1
    dx0, dx1 = rng.normal(0.0, jitter * w, 2)
    dy0, dy1 = rng.normal(0.0, jitter * h, 2)
    H, W = gt.shape
    x0, x1 = np.clip([x0 + dx0, x1 + dx1], 0, W - 1)
    y0, y1 = np.clip([y0 + dy0, y1 + dy1], 0, H - 1)
    return float(min(x0, x1)), float(min(y0, y1)), float(max(x0, x1)), float(max(y0, y1))


def error_click(
    pred: np.ndarray, gt: np.ndarray, rng: np.random.Generator, wander: float
) -> tuple[float, float, int] | None:
    """The next simulated click on (y, x) bool ``pred`` against ``gt``: (x, y, label), or
    None when ``pred`` is right everywhere.

    With probability ``wander`` the click moves to a random pixel of the same error region
    that is at least half as far from the region's border as the innermost one.
    """
    click = next_click_2d(pred, gt, 0)
    if click is None:
        return None
    y, x = click.y, click.x
    if rng.random() < wander:
        region = (gt & ~pred) if click.positive else (pred & ~gt)
        comp, _ = ndimage.label(region)
        inside = np.pad(comp == comp[y, x], 1)
        dist = ndimage.distance_transform_edt(inside)[1:-1, 1:-1]
        ys, xs = np.nonzero(dist >= 0.5 * dist[y, x])
        k = int(rng.integers(len(ys)))
        y, x = int(ys[k]), int(xs[k])
    return float(x), float(y), int(click.positive)
