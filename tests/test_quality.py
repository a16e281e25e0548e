"""Quality checks and post-processing of object masks (slicesam.quality, Session API)."""

from __future__ import annotations

import numpy as np
import pytest

from fakes import FakeModel, ball
from slicesam.engine import Session
from slicesam.errors import PromptError
from slicesam.io import Volume
from slicesam.quality import fill_holes, keep_largest_component, object_stats


def test_stats_of_a_ball_with_a_cavity_and_a_speck():
    shape = (30, 40, 40)
    mask = ball(shape, (15, 20, 20), 10) & ~ball(shape, (15, 20, 20), 3)
    mask[2, 2, 2] = True
    s = object_stats(mask, (2.0, 0.5, 0.5), "mm")
    assert s.voxels == mask.sum()
    assert s.volume == pytest.approx(mask.sum() * 0.5 / 1000) and s.volume_unit == "mL"
    assert s.components == 2 and s.largest_fraction > 0.99
    assert s.holes == 1 and s.hole_voxels == ball(shape, (15, 20, 20), 3).sum()
    assert s.z_extent == (2, 25) and s.slice_gaps == 2
    assert "1 hole" in str(s) and "2 components" in str(s)


def test_compactness_ranks_a_ball_above_a_plate():
    shape = (24, 48, 48)
    b = object_stats(ball(shape, (12, 24, 24), 9), (1, 1, 1), "um")
    plate = np.zeros(shape, bool)
    plate[12, 4:44, 4:44] = True
    p = object_stats(plate, (1, 1, 1), "um")
    assert b.volume_unit == "µm³"
    assert 0.85 < b.compactness <= 1.0 and p.compactness < 0.3


def test_empty_mask_stats():
    s = object_stats(np.zeros((3, 4, 5), bool), (1, 1, 1), "mm")
    assert s.voxels == 0 and s.z_extent is None and str(s) == "empty"


def test_fill_holes_and_keep_largest_per_slice_and_3d():
    mask = np.zeros((3, 20, 20), bool)
    mask[:, 4:16, 4:16] = True
    mask[1, 8:12, 8:12] = False  # a hole in slice 1 only
    mask[0, 18, 18] = True  # a speck in slice 0
    filled = fill_holes(mask)
    assert filled[1, 10, 10] and filled[0, 18, 18]
    assert fill_holes(mask, per_slice=False)[1, 10, 10], "closed above and below: a 3D cavity"
    largest = keep_largest_component(mask, per_slice=True)
    assert not largest[0, 18, 18] and largest[1, 5, 5]
    assert not keep_largest_component(mask)[0, 18, 18]


def test_session_postprocess_is_one_undoable_action_that_spares_other_objects(two_balls):
    vol, a, b = two_balls
    sess = Session(Volume(data=vol, spacing=(2.0, 1.0, 1.0), unit="mm"), model=FakeModel())
    obj = sess.new_object()
    sess.add_point(obj, 10, 20, 18)
    sess.propagate(obj)
    other = sess.new_object()
    sess.add_point(other, 8, 24, 46)
    sess.labels[10, 19:22, 17:20] = 0  # a hole in obj
    sess.labels[10, 20, 18] = other  # with a voxel of the other object inside
    sess.labels[2, 0, 0] = obj  # a stray voxel of obj
    sess.sync_external_edits()
    stats = sess.stats(obj)
    assert stats.components == 2 and stats.volume == pytest.approx(stats.voxels * 2 / 1000)
    before = sess.labels.copy()
    changed = sess.postprocess(obj, fill_holes=True, keep_largest=True, per_slice=False)
    assert changed == [2, 10]
    assert sess.labels[2, 0, 0] == 0
    assert sess.labels[10, 20, 18] == other, "filling never takes another object's voxels"
    assert (sess.labels[10, 19:22, 17:20] == obj).sum() == 8
    assert sess.stats(obj).components == 1
    assert sess.undo() and np.array_equal(sess.labels, before)
    sess.lock_object(obj, True)
    with pytest.raises(PromptError, match="locked"):
        sess.postprocess(obj, fill_holes=True)
