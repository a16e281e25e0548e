"""Scribbles and lassos (slicesam.engine.strokes, Session.add_scribble / add_lasso)."""

from __future__ import annotations

import numpy as np
import pytest

from fakes import FakeModel
from slicesam.engine import Session
from slicesam.engine.strokes import (
    lasso_mask,
    polygon_mask,
    sample_along,
    stroke_mask,
)
from slicesam.errors import PromptError


def test_sampling_and_rasterising():
    line = np.array([[0.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    pts = sample_along(line, 3)
    assert np.allclose(pts, [[0, 0], [0, 10], [10, 10]])
    assert stroke_mask(line, (12, 12)).sum() == 21
    square = np.array([[2.0, 2.0], [2.0, 8.0], [8.0, 8.0], [8.0, 2.0]])
    inside = polygon_mask(square, (12, 12))
    assert inside[5, 5] and inside[2, 2] and not inside[9, 9] and inside.sum() == 49


def _session(two_balls, box_only):
    vol, a, b = two_balls
    return Session(vol, model=FakeModel(box_only=box_only)), a, b


@pytest.mark.parametrize("box_only", [True, False])
def test_positive_scribble_finds_the_object(two_balls, box_only):
    sess, a, _ = _session(two_balls, box_only)
    obj = sess.new_object()
    mask = sess.add_scribble(obj, 10, [(18, 14), (20, 18), (22, 22)])
    assert (mask == a[10]).all()
    assert sess.objects[obj].source[10] == "user"
    if not box_only:
        assert len(sess.objects[obj].prompts[10].points) == 6, "points sampled along it"


def test_negative_scribble_on_a_box_only_model_cuts_along_it(two_balls):
    sess, a, _ = _session(two_balls, True)
    obj = sess.new_object()
    sess.add_box(obj, 10, (11, 13, 25, 27))
    cut = sess.add_scribble(obj, 10, [(13, 18), (27, 18)], positive=False)
    assert not cut[13:28, 18].any(), "the scribble's pixels are background"
    assert cut.sum() < a[10].sum() and cut[20, 13] and cut[20, 23]


def test_lasso_modes_and_negative_lasso(two_balls):
    vol, a, _ = two_balls
    model = FakeModel(box_only=True)
    emb = model.embed(vol[10])
    predict = lambda **kw: model.predict(emb, **kw)  # noqa: E731
    empty = np.zeros_like(a[10])
    rough = np.array([[12.0, 10.0], [12.0, 26.0], [28.0, 26.0], [28.0, 10.0]])
    for mode in ("model_in_lasso", "model", "auto"):
        mask, score = lasso_mask(predict, empty, rough, True, 1.0, mode=mode)
        assert (mask == a[10]).all() and score == pytest.approx(0.9)
    loose, score = lasso_mask(predict, empty, rough, True, 1.0)  # the default: the outline
    assert loose.sum() == polygon_mask(rough, empty.shape).sum() and score is None
    wild = np.array([[0.0, 0.0], [0.0, 63.0], [47.0, 63.0], [47.0, 0.0]])  # the whole slice
    auto, _ = lasso_mask(predict, empty, wild, True, 1.0, mode="auto")
    assert auto.all(), "auto: the model disagrees with the outline, the outline wins"
    half = np.array([[0.0, 0.0], [0.0, 18.0], [47.0, 18.0], [47.0, 0.0]])
    cut, _ = lasso_mask(predict, a[10], half, False, 1.0)
    assert not cut[:, :19].any() and cut[20, 22]


def test_session_lasso_and_stroke_errors(two_balls):
    sess, a, _ = _session(two_balls, True)
    obj = sess.new_object()
    mask = sess.add_lasso(obj, 10, [(12, 10), (12, 26), (28, 26), (28, 10)])
    assert mask.sum() == 17 * 17 and mask[12, 10] and mask[28, 26]
    assert sess.undo() and not (sess.labels == obj).any()
    with pytest.raises(PromptError, match="outside slice 10"):
        sess.add_scribble(obj, 10, [(-50, -50), (-40, -40)])
    with pytest.raises(PromptError, match="non-finite"):
        sess.add_lasso(obj, 10, [(1, 1), (np.nan, 2), (3, 3)])
    with pytest.raises(PromptError, match="vertices"):
        sess.add_scribble(obj, 10, [])
