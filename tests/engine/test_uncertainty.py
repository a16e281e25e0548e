"""Uncertainty maps and suggested clicks (slicesam.engine.uncertainty, Session.uncertainty)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from fakes import FakeModel, GradedFakeModel
from slicesam.engine import Session
from slicesam.engine.uncertainty import logits_in_slice, suggest_click, uncertainty_map
from slicesam.errors import PromptError
from slicesam.models.base import Embedding, Prediction


def _square(shape=(40, 40), lo=10, hi=30):
    m = np.zeros(shape, bool)
    m[lo:hi, lo:hi] = True
    return m


def test_logits_are_cropped_of_padding_and_resized():
    emb = Embedding(None, (100, 50), (256, 128), 0)  # a 100 x 50 slice in a 256 px input
    low = np.full((64, 64), -5.0, np.float32)
    low[:, :32] = 5.0  # the slice occupies the left half of the padded input
    out = logits_in_slice(low, emb, 256)
    assert out.shape == (100, 50) and (out > 0).all()
    whole = logits_in_slice(low, Embedding(None, (64, 64), (64, 64), 0), None)
    assert np.array_equal(whole > 0, low > 0)


def test_margin_and_disagreement():
    emb = Embedding(None, (40, 40), (40, 40), 0)
    mask = _square()
    logits = np.where(mask, 8.0, -8.0).astype(np.float32)
    logits[10:30, 29] = 0.0  # the model hesitates on the right edge
    single = Prediction(mask[None], np.ones(1), logits[None])
    other = _square(lo=10, hi=34)  # one candidate reaches further down and right
    multi = Prediction(np.stack([mask, mask, other]), np.ones(3), np.repeat(logits[None], 3, 0))
    u = uncertainty_map(single, multi, emb, None)
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() <= 1.0
    assert u[20, 29] == pytest.approx(1.0)  # zero logit
    assert u[5, 5] < 0.01  # certain background
    assert u[32, 32] == pytest.approx(4 * 0.25 * 0.75)  # 1 of 4 candidates


def test_suggestion_lies_near_the_boundary_with_its_question():
    mask = _square()
    u = np.zeros((40, 40), np.float32)
    u[18:22, 31:34] = 1.0  # unsure just outside the right edge
    u[0:3, 0:3] = 1.0  # far from the mask: not a useful click
    s = suggest_click(u, mask, 7, band_px=4)
    assert s.z == 7 and 30 <= s.x <= 34 and 17 <= s.y <= 22
    assert s.positive, "outside the mask the question is whether to add"
    assert suggest_click(np.zeros_like(u), mask, 7, 4) is None
    assert suggest_click(u, np.zeros_like(mask), 7, 4) is None


def test_session_uncertainty(two_balls):
    vol, a, _ = two_balls
    sure = Session(vol, model=FakeModel())  # logits +-4 everywhere: never unsure
    obj = sure.new_object()
    with pytest.raises(PromptError, match="no mask on slice 10"):
        sure.uncertainty(obj, 10)
    sure.add_box(obj, 10, (10, 12, 26, 28))
    umap, suggestion = sure.uncertainty(obj, 10)
    assert umap.shape == vol.shape[1:] and umap.max() < 0.1 and suggestion is None

    sess = Session(vol, model=GradedFakeModel())  # unsure exactly on the boundary
    obj = sess.new_object()
    sess.add_box(obj, 10, (10, 12, 26, 28))
    umap, suggestion = sess.uncertainty(obj, 10)
    assert umap[20, 18] < 0.1 and suggestion is not None
    edge = np.argwhere(a[10] ^ ndimage.binary_erosion(a[10]))
    assert np.min(np.abs(edge - [suggestion.y, suggestion.x]).sum(axis=1)) <= 2
