"""Test doubles shared by the suite: a deterministic fake model (no torch) and ball masks.

A plain module (not a conftest) so test files can import it by name: ``from fakes import ...``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from slicesam.models.base import Capabilities, Embedding, Prediction


class FakeModel:
    """A deterministic stand-in for a SAM-family model, for engine tests.

    ``embed`` keeps the windowed slice; ``predict`` segments bright pixels (> 127): the largest
    bright component inside the box (continuous coordinates) when one is given, else the
    bright connected component under the positive clicks, minus the components under
    negative clicks. The score is 0.9 for a non-empty mask (0.6 when a box
    cuts through the object: its mask touches the box's border), 0.1 for an empty one.
    """

    input_scale_ref = 64

    def __init__(self, box_only: bool = False) -> None:
        self.name = "fake"
        self.weights_sha256 = "0" * 64
        self.device = "cpu"
        self.box_only = box_only
        self.pauses_often = False
        self.embed_calls: list[int] = []
        self.predict_calls = 0

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            points=not self.box_only, encoder="fake", pauses_often=self.pauses_often
        )

    def embed(self, image: np.ndarray) -> Embedding:
        self.embed_calls.append(int(image.sum()))
        return Embedding(image.copy(), image.shape, image.shape, image.nbytes)

    def predict(
        self,
        embedding,
        *,
        box=None,
        points=None,
        point_labels=None,
        mask_input=None,
        multimask=False,
    ) -> Prediction:
        self.predict_calls += 1
        bright = embedding.features > 127
        mask = np.zeros_like(bright)
        if box is not None:
            # continuous box coordinates: pixel i covers [i, i + 1), so it is inside when its
            # centre i + 0.5 is; keep the largest bright component (one object per box)
            x0, y0 = (max(0, int(np.ceil(v - 0.5))) for v in box[:2])
            x1, y1 = (int(np.floor(v - 0.5)) for v in box[2:])
            mask[y0 : y1 + 1, x0 : x1 + 1] = bright[y0 : y1 + 1, x0 : x1 + 1]
            comps, n = ndimage.label(mask)
            if n > 1:
                sizes = np.bincount(comps.ravel())[1:]
                mask = comps == int(np.argmax(sizes)) + 1
        if points is not None and len(points) and not self.box_only:
            comps, _ = ndimage.label(bright)
            for (x, y), lab in zip(points, point_labels):
                c = comps[int(round(y)), int(round(x))]
                if c:
                    mask = mask | (comps == c) if lab else mask & (comps != c)
        k = 3 if multimask else 1
        score = 0.9 if mask.any() else 0.1
        if box is not None and mask.any():
            inner = np.zeros_like(mask)
            inner[y0 + 1 : y1, x0 + 1 : x1] = True
            if (mask & ~inner).any():
                score = 0.6
        return Prediction(
            np.repeat(mask[None], k, axis=0),
            np.full(k, score, dtype=np.float32),
            np.repeat(np.where(mask, 4.0, -4.0).astype(np.float32)[None], k, axis=0),
        )


class GradedFakeModel(FakeModel):
    """:class:`FakeModel` whose logits cross zero on the mask's boundary (a model that is
    unsure exactly there), for uncertainty tests."""

    def predict(self, embedding, **prompts) -> Prediction:
        pred = super().predict(embedding, **prompts)
        logits = np.stack([_graded_logits(m) for m in pred.masks])
        return Prediction(pred.masks, pred.scores, logits)


class WideFakeModel(FakeModel):
    """:class:`FakeModel` whose masks are one pixel too wide all round (what LiteMedSAM does
    on small structures), for the overshoot-erosion tests."""

    def predict(self, embedding, **prompts) -> Prediction:
        pred = super().predict(embedding, **prompts)
        masks = np.stack([ndimage.binary_dilation(m) if m.any() else m for m in pred.masks])
        logits = np.where(masks, 4.0, -4.0).astype(np.float32)
        return Prediction(masks, pred.scores, logits)


def _graded_logits(mask: np.ndarray) -> np.ndarray:
    """Logits that cross zero on the mask's boundary: the signed distance to it (positive
    inside, from +-0.5 next to the boundary), clipped to +-4."""
    inside = ndimage.distance_transform_edt(mask) - 0.5
    outside = ndimage.distance_transform_edt(~mask) - 0.5
    return np.clip(np.where(mask, inside, -outside), -4.0, 4.0).astype(np.float32)


def ball(shape, center, radius) -> np.ndarray:
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    cz, cy, cx = center
    return (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


class PackingModel(FakeModel):
    """The fake model with the pack/unpack pair the on-disk cache needs."""

    @property
    def capabilities(self):
        return dataclasses.replace(super().capabilities, packs_embeddings=True)

    def pack(self, emb: Embedding) -> dict:
        return {"features": emb.features, "sizes": np.array([*emb.original_size, *emb.input_size])}

    def unpack(self, arrays: dict) -> Embedding:
        h0, w0, h1, w1 = (int(v) for v in arrays["sizes"])
        return Embedding(arrays["features"], (h0, w0), (h1, w1), arrays["features"].nbytes)
