"""Corrections re-propagate only as far as they change the result; interpolation between
anchors; confidence evidence."""

from __future__ import annotations

import numpy as np
import pytest

from fakes import ball
from slicesam.engine.interpolation import interpolate_masks, signed_distance
from slicesam.engine.objects import INTERPOLATED, PROPAGATED, USER
from slicesam.engine.propagation import PropagationParams
from slicesam.engine.session import INTERPOLATED_CONFIDENCE, Session
from slicesam.errors import PromptError
from slicesam.metrics import dice
from slicesam.prompts import Box, Lasso, Point, Scribble


def _disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_interpolate_masks_morphs_between_two_disks():
    a = _disk((40, 40), 10, 10, 4)
    b = _disk((40, 40), 30, 30, 8)
    mid = interpolate_masks(a, b, 3)[1]
    expected = _disk((40, 40), 20, 20, 6)
    assert dice(mid, expected) > 0.85
    assert interpolate_masks(a, b, 0) == []


def test_signed_distance_sign_and_empty():
    m = _disk((20, 20), 10, 10, 5)
    sd = signed_distance(m)
    assert (sd[m] > 0).all() and (sd[~m] < 0).all()
    assert (signed_distance(np.zeros((5, 5), bool)) < 0).all()


def test_correction_repropagates_only_where_the_result_changes(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, (8, 10, 28, 30))
    sess.propagate(obj)
    before = sess.labels.copy()
    # a click on slice 7 (already well propagated): the new anchor's neighbours do not change
    sess.add_point(obj, 7, 20, 18, positive=True)
    calls = fake_model.predict_calls
    summary = sess.propagate(obj, from_slices=[7])
    assert fake_model.predict_calls - calls <= 2  # one slice each way, then "unchanged"
    assert any("unchanged" in s for s in summary.stops)
    np.testing.assert_array_equal(sess.labels, before)
    assert sess.objects[obj].source[7] == USER


def test_correction_that_removes_a_slice_ends_the_object_there(two_balls, fake_box_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_box_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, (8, 10, 28, 30))
    sess.propagate(obj)
    assert (sess.labels[5] == obj).any()
    sess.add_point(obj, 6, 20, 18, positive=False)  # remove the ball on slice 6
    assert not (sess.labels[6] == obj).any()
    sess.propagate(obj, from_slices=[6])
    # slices below the emptied anchor that came from the first walk are cleared
    assert not (sess.labels[:6] == obj).any()
    assert (sess.labels[7:10] == obj).any(axis=(1, 2)).all()


def test_from_slices_must_be_anchors(two_balls, fake_model):
    vol, _, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, (8, 10, 28, 30))
    with pytest.raises(PromptError, match="not prompted slices"):
        sess.propagate(obj, from_slices=[3])


def test_unreached_gap_between_anchors_is_interpolated(fake_model):
    # a ball whose middle slices are dark: propagation cannot cross them
    shape = (20, 48, 64)
    obj_mask = ball(shape, (10, 24, 32), 8)
    vol = np.where(obj_mask, 200, 20).astype(np.uint8)
    vol[9:12] = 20
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 6, (20, 12, 44, 36))
    sess.add_box(obj, 14, (20, 12, 44, 36))
    summary = sess.propagate(obj)
    assert summary.interpolated == [9, 10, 11]
    src = sess.objects[obj].source
    assert all(src[z] == INTERPOLATED for z in (9, 10, 11))
    assert src[8] == PROPAGATED
    assert sess.confidence(obj)[10] == INTERPOLATED_CONFIDENCE
    assert dice(sess.labels[10] == obj, obj_mask[10]) > 0.8
    assert sess.undo()
    assert not (sess.labels[9:12] == obj).any()


def test_interpolate_fills_between_user_slices(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 6, (8, 10, 28, 30))
    sess.add_box(obj, 14, (8, 10, 28, 30))
    written = sess.interpolate(obj)
    assert written == list(range(7, 14))
    assert dice(sess.labels[7:14] == obj, a[7:14]) > 0.8  # linear: misses the bulge
    other = sess.new_object()
    sess.add_box(other, 8, (36, 14, 60, 34))
    with pytest.raises(PromptError, match="two prompted slices"):
        sess.interpolate(other)


def test_confidence_evidence_is_recorded(two_balls, fake_model):
    vol, _, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, (8, 10, 28, 30))
    sess.propagate(obj)
    ev = sess.objects[obj].evidence
    assert set(ev[10]) == {"iou", "stability"}
    assert set(ev[11]) == {"iou", "stability", "agreement"}
    assert 0.0 <= sess.confidence(obj)[11] <= 1.0


def test_a_rewalk_from_a_shrunk_end_slice_keeps_the_objects_own_stop_rules(fake_model):
    """Two spheres stacked in z that touch (23 % of the largest area where they meet); the
    walk up from the lower one stops there (``min_rel_area``). The user then shrinks the last
    slice (a tighter box): re-walking from that small slice, a walk that compares only with
    its seed sees the upper sphere as more object and walks through it; with
    ``rewalk_reference`` it compares with the object's largest slice and stops where the first
    walk stopped."""
    z, y, x = np.mgrid[:34, :40, :40]
    spheres = ((z - 8) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 64) | (
        (z - 22) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 64
    )
    vol = np.where(spheres, 200, 0).astype(np.int16)
    top = {}
    for reference in (False, True):
        params = PropagationParams(rewalk_reference=reference)
        sess = Session(vol, model=fake_model, window=(0, 255), params=params)
        obj = sess.new_object()
        sess.add_box(obj, 8, (10, 10, 30, 30))
        sess.propagate(obj)
        end = int(np.flatnonzero((sess.labels == obj).any(axis=(1, 2))).max())
        assert end == 14  # the first walk stopped where the spheres meet
        sess.add_box(obj, end, (17, 17, 24, 24))
        summary = sess.propagate(obj, from_slices=[end])
        top[reference] = int(np.flatnonzero((sess.labels == obj).any(axis=(1, 2))).max())
        if reference:
            assert top[reference] == end
            assert any("of the largest at 15" in stop for stop in summary.stops)
    assert top[False] >= 26  # through the upper sphere


def test_a_rewalk_within_the_extent_stops_at_the_objects_ends(fake_model):
    """A bar through the whole volume, dimmer from slice 15: the first walk stops there (its
    intensity fell). A box on slice 17 makes it the object's last slice; a re-walk from it
    ``within_extent`` fills 15-16 and stops there, one without runs on to the volume's end."""
    vol = np.zeros((30, 40, 40), np.int16)
    vol[:, 10:30, 10:30] = 200
    vol[15:, 10:30, 10:30] = 150
    extent = {}
    for within in (True, False):
        sess = Session(vol, model=fake_model, window=(0, 255))
        obj = sess.new_object()
        sess.add_box(obj, 10, (10, 10, 29, 29))
        summary = sess.propagate(obj)
        assert any("intensity fell at 15" in stop for stop in summary.stops)
        sess.add_box(obj, 17, (10, 10, 29, 29))
        sess.propagate(obj, from_slices=[17], within_extent=within)
        held = np.flatnonzero((sess.labels == obj).any(axis=(1, 2)))
        extent[within] = (int(held.min()), int(held.max()), len(held))
    assert extent[True] == (0, 17, 18)  # 15 and 16 filled, nothing past the box
    assert extent[False] == (0, 29, 30)


def test_only_a_negative_correction_rewalks_within_the_objects_extent(two_balls, fake_model):
    """``Session.correct`` keeps the re-walk of a prompt that removes voxels (negative click,
    scribble or lasso) between the object's ends (``removal_within_extent``); a box or a
    positive prompt may grow the object past them."""
    vol, _, _ = two_balls
    for enabled in (True, False):
        params = PropagationParams(removal_within_extent=enabled)
        sess = Session(vol, model=fake_model, params=params)
        obj = sess.new_object()
        sess.add_box(obj, 10, (8, 10, 28, 30))
        sess.propagate(obj)
        seen = []
        walk = sess.propagate

        def spy(*args, _walk=walk, _seen=seen, **kwargs):
            _seen.append(kwargs["within_extent"])
            return _walk(*args, **kwargs)

        sess.propagate = spy
        sess.correct(obj, Point(12, 18, 18, False))
        sess.correct(obj, Scribble(12, ((17, 17), (19, 19)), False))
        sess.correct(obj, Point(12, 18, 18, True))
        sess.correct(obj, Box(12, 8, 10, 28, 30))
        assert seen == [enabled, enabled, False, False]


def test_a_rewalk_keeps_a_surer_propagated_mask(two_balls, fake_model):
    """A re-walk stops at a propagated slice whose mask is surer (confidence higher by more
    than ``keep_surer_by``) than the one it would write there, even when the new mask agrees
    better with the re-walked slice before it."""
    from slicesam.engine.propagation import Step
    from slicesam.engine.walks import settled

    vol, a, _ = two_balls
    for keep, expected in ((0.1, "the mask there is surer"), (-1.0, None)):
        sess = Session(vol, model=fake_model, params=PropagationParams(keep_surer_by=keep))
        obj = sess.new_object()
        sess.add_box(obj, 10, (8, 10, 28, 30))
        sess.propagate(obj)
        target = sess.objects[obj]
        assert target.source[6] == PROPAGATED and target.confidence[6] > 0.85
        current = sess.labels[6] == obj
        shifted = np.roll(current, 3, axis=1)  # a worse mask, on the same slice
        unsure = Step(6, shifted, 0.6, np.zeros((8, 8), np.float32), {"iou": 0.6})
        assert settled(target.slices[6], current, unsure, shifted, sess.params) == expected
        sure = Step(6, shifted, 0.9, np.zeros((8, 8), np.float32), {"iou": 0.9})
        assert settled(target.slices[6], current, sure, shifted, sess.params) is None


def test_masks_that_overshoot_the_users_box_are_eroded_on_every_slice():
    """A model whose masks are one pixel too wide all round (LiteMedSAM on the CT spinal
    cord or the MR aorta): its mask for a tight box reaches a pixel past the box on every
    side, so the boxed slice's mask and every propagated one are eroded by one pixel and
    match the object; with the erosion off they stay a pixel too wide."""
    from fakes import WideFakeModel

    z, y, x = np.mgrid[:12, :40, :40]
    column = (y - 20) ** 2 + (x - 20) ** 2 <= 16
    vol = np.where(column, 200, 0).astype(np.int16)
    results = {}
    for max_px in (0, 2):
        params = PropagationParams(max_overshoot_erosion_px=max_px)
        sess = Session(vol, model=WideFakeModel(), window=(0, 255), params=params)
        obj = sess.new_object()
        sess.add_box(obj, 6, (16, 16, 24, 24))  # tight on the disk of radius 4
        assert sess.objects[obj].overshoot == {6: 1.0}
        sess.propagate(obj, z_range=(0, 11))
        results[max_px] = [dice(sess.labels[k] == obj, column[k]) for k in range(12)]
    assert min(results[2]) == 1.0  # every slice exactly the object
    assert max(results[0]) < 0.85  # a pixel too wide on every slice


def test_a_rewalk_fills_the_empty_slices_between_two_prompted_slices(fake_model):
    """A column the model loses on z 6-8 (too dim): the walk from a box on z 2 stops there.
    A second box on z 12, re-walked alone (``from_slices``), stops there too; the slices
    between the two boxes are then filled by interpolation, as a full propagation fills
    what its walks did not reach."""
    z, y, x = np.mgrid[:16, :40, :40]
    column = (y - 20) ** 2 + (x - 20) ** 2 <= 25
    vol = np.where(column, np.where((z >= 6) & (z <= 8), 100, 200), 0).astype(np.uint8)
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 2, (14, 14, 26, 26))
    sess.propagate(obj)
    assert not (sess.labels[6:] == obj).any()
    sess.add_box(obj, 12, (14, 14, 26, 26))
    summary = sess.propagate(obj, from_slices=[12])
    assert summary.interpolated == [6, 7, 8]
    for zz in (6, 7, 8):
        assert sess.objects[obj].source[zz] == INTERPOLATED
        assert dice(sess.labels[zz] == obj, column[zz]) > 0.9


def propagated_ball(vol, model) -> tuple[Session, int]:
    """A session whose one object was boxed on slice 10 (ball A) and propagated."""
    sess = Session(vol, model=model)
    obj = sess.new_object()
    sess.add_box(obj, 10, (8, 10, 28, 30))
    sess.propagate(obj)
    return sess, obj


def test_a_correction_and_its_rewalk_are_one_undo_step(two_balls, fake_model):
    sess, obj = propagated_ball(two_balls[0], fake_model)
    before, objects_before = sess.labels.copy(), sess.objects
    # a negative click on slice 12 removes the ball there; the re-walk ends the object there
    result = sess.correct(obj, Point(12, 20.0, 18.0, positive=False))
    assert not result.mask.any()
    assert result.summary is not None and not result.summary.cancelled
    assert (before[13:] == obj).any() and not (sess.labels[13:] == obj).any()  # the re-walk
    assert sess.objects[obj].prompts[12].points[-1] == Point(12, 20.0, 18.0, False)
    after = sess.labels.copy()
    assert sess.undo()  # ONE undo: the click, its mask and the re-walk are gone
    np.testing.assert_array_equal(sess.labels, before)
    assert sess.objects == objects_before
    assert sess.redo()
    np.testing.assert_array_equal(sess.labels, after)
    assert sess.undo() and sess.undo()  # then the propagation
    assert np.flatnonzero((sess.labels == obj).any(axis=(1, 2))).tolist() == [10]


def test_a_correction_without_propagated_slices_does_not_rewalk(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    result = sess.correct(obj, Box(10, 8, 10, 28, 30))
    assert result.summary is None and result.mask.any()
    assert np.flatnonzero((sess.labels == obj).any(axis=(1, 2))).tolist() == [10]
    sess.propagate(obj)
    kept = sess.labels.copy()
    sess.correct(obj, Lasso(6, ((14.0, 12.0), (14.0, 24.0), (26.0, 24.0), (26.0, 12.0))),
                 repropagate=False)  # fmt: skip
    changed = np.flatnonzero((sess.labels != kept).any(axis=(1, 2))).tolist()
    assert changed in ([], [6])  # only the prompted slice may change
    with pytest.raises(PromptError, match="Box, Point, Scribble or Lasso"):
        sess.correct(obj, (10, 8, 10, 28, 30))


def test_a_cancelled_rewalk_keeps_the_prompt_as_one_step(two_balls, fake_model):
    sess, obj = propagated_ball(two_balls[0], fake_model)
    before = sess.labels.copy()
    result = sess.correct(obj, Point(12, 20.0, 18.0, positive=False), cancel=lambda: True)
    assert result.summary.cancelled and not (sess.labels[12] == obj).any()
    assert "cancelled" in str(result)
    sess.undo()
    np.testing.assert_array_equal(sess.labels, before)


def test_a_click_re_walks_an_object_whose_walks_stopped_at_its_anchor(two_balls, fake_model):
    """The user propagated and no walk got past the boxed slice: a correction there still
    re-walks (as the benchmark's P3 does), and an object never propagated does not."""
    sess = Session(two_balls[0], model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, (8, 10, 28, 30))
    sess.propagate(obj, z_range=(10, 10))  # the walks cannot leave the anchor
    target = sess.objects[obj]
    assert target.propagated and not target.has_derived_slices()
    result = sess.correct(obj, Point(10, 20.0, 18.0, positive=True))
    assert result.summary is not None
    assert sess.undo() and sess.undo()  # the correction, then the propagation
    assert not sess.objects[obj].propagated
    assert sess.correct(obj, Point(10, 20.0, 18.0, positive=True)).summary is None
