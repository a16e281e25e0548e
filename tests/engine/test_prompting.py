"""A session picks its prompting strategy once, from the capabilities its model declares."""

from __future__ import annotations

import numpy as np

from fakes import FakeModel
from slicesam.engine.prompting import BoxOnlyPrompting, PointPrompting, neighbour_mask, prompt_name
from slicesam.engine.session import Session
from slicesam.prompts import Box, Lasso, Point, Scribble


def test_the_strategy_follows_the_models_capabilities(two_balls):
    vol, a, _ = two_balls
    point_model, box_model = FakeModel(), FakeModel(box_only=True)
    assert isinstance(Session(vol, model=point_model).prompting, PointPrompting)
    sess = Session(vol, model=box_model)
    assert isinstance(sess.prompting, BoxOnlyPrompting)
    obj = sess.new_object()
    ys, xs = np.nonzero(a[10])
    sess.add_point(obj, 10, float(ys.mean()), float(xs.mean()))
    record = sess.objects[obj].slices[10]
    assert record.logits is None, "a box-only click edits the mask: no logits"
    assert record.prompts.points == [Point(10, float(ys.mean()), float(xs.mean()), True)]


def test_prompt_names_and_the_neighbour_mask():
    assert prompt_name(Box(3, 0, 0, 5, 5)) == "box on 3"
    assert prompt_name(Point(4, 1.0, 2.0, False)) == "click - on 4"
    assert prompt_name(Scribble(5, ((1.0, 1.0),), True)) == "scribble + on 5"
    assert prompt_name(Lasso(6, ((1.0, 1.0),), False)) == "lasso - on 6"
    labels = np.zeros((6, 4, 4), np.uint16)
    labels[1, 0, 0] = 2
    labels[4, 1, 1] = 2
    assert neighbour_mask(labels, 2, 2)[0, 0]  # 1 before 3 at distance 1
    assert neighbour_mask(labels, 2, 5)[1, 1]
    assert neighbour_mask(labels, 3, 2) is None
