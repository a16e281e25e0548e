"""Click strategies for box-only models (slicesam.engine.clicks), on masks and a fake predictor."""

from __future__ import annotations

import numpy as np
import pytest

from fakes import FakeModel
from slicesam.engine.clicks import CLICK_STRATEGIES, box_only_click, local_edit
from slicesam.prompts import Point


def _square(shape=(64, 64), y0=20, y1=40, x0=20, x1=40) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def _predictor(image: np.ndarray):
    model = FakeModel(box_only=True)
    emb = model.embed(image)
    return lambda **kw: model.predict(emb, **kw)


def test_local_negative_click_removes_a_disk_as_wide_as_the_border_distance():
    current = _square()
    out = local_edit(current, Point(0, 22.0, 30.0, False))  # 2 px inside the top border
    assert not out[22, 30]
    assert out[30, 30], "the disk must not reach the far side of the mask"
    removed = current & ~out
    assert 5 <= removed.sum() <= 40


def test_local_positive_click_adds_the_gap_it_lands_in():
    current = _square()
    out = local_edit(current, Point(0, 30.0, 43.0, True))  # 3 px right of the mask
    assert out[30, 43] and out[30, 41]
    assert out.sum() > current.sum()
    assert (out & current).sum() == current.sum(), "a positive click never removes voxels"


@pytest.mark.parametrize("strategy", CLICK_STRATEGIES)
def test_every_strategy_flips_the_clicked_pixel(strategy):
    image = np.zeros((64, 64), dtype=np.uint8)
    image[20:40, 20:40] = 200
    predict = _predictor(image)
    current = _square(x1=45)  # leaks 5 px to the right
    neg, _ = box_only_click(predict, current, Point(0, 30.0, 42.0, False), 1.0, strategy=strategy)
    assert not neg[30, 42]
    pos, _ = box_only_click(predict, _square(x1=35), Point(0, 30, 37, True), 1.0, strategy=strategy)
    assert pos[30, 37]


def test_adaptive_negative_click_at_the_centre_removes_the_whole_component():
    current = _square() | _square(y0=50, y1=60, x0=50, x1=60)
    predict = _predictor(np.zeros((64, 64), dtype=np.uint8))
    out, score = box_only_click(predict, current, Point(0, 55.0, 55.0, False), 1.0)
    assert not out[50:60, 50:60].any(), "the clicked component is gone"
    assert (out == _square()).all(), "the other component is untouched"
    assert score is None, "an edit does not ask the model"
    local, _ = box_only_click(predict, current, Point(0, 55.0, 55.0, False), 1.0, strategy="local")
    assert local[50:60, 50:60].any(), "local edits only take a disk"


def test_a_central_negative_click_on_a_boxed_slice_only_takes_a_disk():
    """The user's box on the slice says the object is there: a negative click at the mask's
    centre removes a disk around it (a local edit), never the whole component (on the MR
    abdomen's left kidney that emptied the object's only anchor, and with it the 3D object)."""
    current = _square(x1=60)  # 20 x 40 px
    predict = _predictor(np.zeros((64, 64), dtype=np.uint8))
    click = Point(0, 30.0, 40.0, False)
    gone, _ = box_only_click(predict, current, click, 1.0)
    assert not gone.any()
    kept, _ = box_only_click(predict, current, click, 1.0, boxed=True)
    assert (kept == local_edit(current, click)).all()
    assert not kept[30, 40] and kept[30, 22] and kept[30, 58]


def test_session_negative_click_keeps_the_users_boxed_slice(fake_box_model):
    from slicesam.engine.session import Session

    vol = np.zeros((12, 40, 64), np.int16)
    vol[:, 10:30, 10:50] = 200  # a bar, 20 x 40 px on every slice
    sess = Session(vol, model=fake_box_model, window=(0, 255))
    obj = sess.new_object()
    sess.add_box(obj, 5, (8, 8, 52, 32))
    sess.propagate(obj)
    boxed = sess.add_point(obj, 5, 19.5, 29.5, positive=False)
    assert boxed[20, 12] and boxed[20, 47] and not boxed[20, 30]  # a disk went
    propagated = sess.add_point(obj, 8, 19.5, 29.5, positive=False)
    assert not propagated.any()  # no box there: the whole (wrong) mask goes


def test_first_positive_click_uses_the_neighbour_mask_as_hint():
    image = np.zeros((64, 64), dtype=np.uint8)
    image[20:40, 20:40] = 200
    predict = _predictor(image)
    empty = np.zeros((64, 64), dtype=bool)
    hint = _square(y0=22, y1=38, x0=22, x1=38)
    out, score = box_only_click(predict, empty, Point(0, 30.0, 30.0, True), 1.0, hint=hint)
    assert (out == _square()).all()
    assert score == pytest.approx(0.9)


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown click strategy"):
        box_only_click(lambda **kw: None, _square(), Point(0, 1, 1, True), 1.0, strategy="magic")
