"""Session logic on a deterministic fake model (no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from slicesam.engine import PropagationParams, Session
from slicesam.errors import PromptError, SliceSamError
from slicesam.metrics import dice


def box_of(mask2d: np.ndarray, pad: int = 1):
    ys, xs = np.nonzero(mask2d)
    return (xs.min() - pad, ys.min() - pad, xs.max() + pad, ys.max() + pad)


def test_new_object_ids_never_collide(two_balls, fake_model):
    vol, _, _ = two_balls
    existing = np.zeros(vol.shape, np.uint16)
    existing[0, 0, 0] = 1
    sess = Session(vol, model=fake_model, labels=existing)
    assert sess.new_object("a") == 2  # 1 is already painted in the given labels
    assert sess.new_object("b", label_id=7) == 7
    assert sess.new_object() == 3
    with pytest.raises(PromptError, match="already used"):
        sess.new_object("c", label_id=7)
    with pytest.raises(PromptError, match=">= 1"):
        sess.new_object("c", label_id=0)


def test_add_box_segments_the_slice(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object("a")
    mask = sess.add_box(obj, 10, box_of(a[10]))
    assert mask.dtype == bool and mask.shape == vol.shape[1:]
    assert np.array_equal(mask, a[10])
    assert np.array_equal(sess.labels[10] == obj, a[10])
    assert sess.labels.dtype == np.uint16
    assert (sess.labels[:10] == 0).all() and (sess.labels[11:] == 0).all()


def test_box_accepts_floats_and_clips_partly_outside(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    mask = sess.add_box(obj, 10, (-5.5, -3.2, 40.7, 47.9 + 30))
    assert np.array_equal(mask, a[10])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"z": 10, "box": (100, 100, 120, 120)}, "outside slice 10"),
        ({"z": 25, "box": (1, 1, 5, 5)}, "outside the volume"),
        ({"z": -1, "box": (1, 1, 5, 5)}, "outside the volume"),
        ({"z": 10, "box": (1, 2, 3)}, "expected \\[x0, y0, x1, y1\\]"),
        ({"z": 10, "box": (1, 2, float("nan"), 4)}, "finite number"),
    ],
)
def test_bad_boxes_are_clear_errors_and_change_nothing(two_balls, fake_model, kwargs, message):
    vol, _, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    with pytest.raises(PromptError, match=message):
        sess.add_box(obj, **kwargs)
    assert not sess.labels.any()


def test_unknown_and_locked_objects(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    with pytest.raises(PromptError, match="unknown object 3"):
        sess.add_box(3, 10, box_of(a[10]))
    obj = sess.new_object("liver")
    sess.lock_object(obj)
    with pytest.raises(PromptError, match="locked"):
        sess.add_box(obj, 10, box_of(a[10]))
    with pytest.raises(PromptError, match="locked"):
        sess.add_point(obj, 10, 20, 18)
    sess.lock_object(obj, False)
    sess.add_box(obj, 10, box_of(a[10]))


def test_point_outside_is_an_error(two_balls, fake_model):
    vol, _, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    with pytest.raises(PromptError, match="outside slice"):
        sess.add_point(obj, 5, y=48, x=3)


def test_propagate_follows_the_ball_and_stops_where_it_ends(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    summary = sess.propagate(obj)
    # The ball's single-voxel tips are below the smallest area propagation accepts.
    zs = np.flatnonzero(a.sum(axis=(1, 2)) >= sess.params.min_area_px)
    assert summary.slices == [z for z in zs if z != 10]
    assert set(summary.confidence) == set(summary.slices)
    assert all(0.0 <= c <= 1.0 for c in summary.confidence.values())
    assert dice(sess.labels == obj, a) > 0.99
    assert "vanished" in " ".join(summary.stops)
    assert sess.confidence(obj)[10] == pytest.approx(0.9)


def test_propagate_respects_z_range(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    summary = sess.propagate(obj, z_range=(8, 12))
    assert summary.slices == [8, 9, 11, 12]
    written = np.flatnonzero((sess.labels == obj).any(axis=(1, 2)))
    assert list(written) == [8, 9, 10, 11, 12]


def test_propagate_needs_an_anchor(two_balls, fake_model):
    vol, _, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    with pytest.raises(PromptError, match="no prompted slice"):
        sess.propagate(obj)


def test_anchor_slices_are_never_overwritten(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    # A deliberately partial box on slice 12: the user's result there must survive propagation.
    ys, xs = np.nonzero(a[12])
    partial = (xs.min(), ys.min(), xs.min() + 3, ys.max())
    user12 = sess.add_box(obj, 12, partial).copy()
    sess.propagate(obj)
    assert np.array_equal(sess.labels[12] == obj, user12)
    assert np.array_equal(sess.labels[10] == obj, a[10])


def test_objects_never_overwrite_each_other(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    first = sess.new_object("first")
    sess.add_box(first, 10, box_of(a[10]))
    second = sess.new_object("second")
    sess.add_box(second, 10, box_of(a[10]))  # same structure, same slice
    assert np.array_equal(sess.labels[10] == first, a[10])
    assert not (sess.labels[10] == second).any()
    sess.propagate(second)  # nothing to seed from: its anchor mask is empty
    assert np.array_equal(sess.labels[10] == first, a[10])


def test_user_prompt_takes_voxels_another_object_only_propagated(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    first = sess.new_object("first")
    sess.add_box(first, 10, box_of(a[10]))
    sess.propagate(first)
    second = sess.new_object("second")
    mask = sess.add_box(second, 9, box_of(a[9]))  # slice 9 is first's by propagation only
    assert np.array_equal(mask, a[9])
    assert not (sess.labels[9] == first).any()
    strict = Session(vol, model=fake_model, overwrite="none")
    first = strict.new_object()
    strict.add_box(first, 10, box_of(a[10]))
    strict.propagate(first)
    second = strict.new_object()
    assert not strict.add_box(second, 9, box_of(a[9])).any()


def test_propagation_between_two_anchors_meets_half_way(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 6, box_of(a[6]))
    sess.add_box(obj, 14, box_of(a[14]))
    summary = sess.propagate(obj)
    zs = set(np.flatnonzero(a.sum(axis=(1, 2)) >= sess.params.min_area_px)) - {6, 14}
    assert set(summary.slices) == zs
    assert dice(sess.labels == obj, a) > 0.99


def test_undo_redo_every_action(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object("a")
    sess.add_box(obj, 10, box_of(a[10]))
    after_box = sess.labels.copy()
    sess.propagate(obj)
    after_prop = sess.labels.copy()
    sess.rename_object(obj, "renamed")
    assert sess.undo()  # rename
    assert sess.objects[obj].name == "a"
    assert sess.undo()  # propagate
    assert np.array_equal(sess.labels, after_box)
    assert sess.undo()  # box
    assert not sess.labels.any()
    assert 10 not in sess.objects[obj].prompts
    assert sess.undo()  # new object
    assert obj not in sess.objects
    assert not sess.undo()
    for _ in range(3):
        assert sess.redo()
    assert np.array_equal(sess.labels, after_prop)
    assert sess.redo() and sess.objects[obj].name == "renamed"
    assert not sess.redo()


def test_new_action_clears_redo(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    sess.undo()
    sess.add_box(obj, 9, box_of(a[9]))
    assert not sess.can_redo


def test_delete_object_is_undoable(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    sess.propagate(obj)
    before = sess.labels.copy()
    sess.delete_object(obj)
    assert not sess.labels.any() and obj not in sess.objects
    sess.undo()
    assert np.array_equal(sess.labels, before) and obj in sess.objects


def test_cancel_leaves_everything_as_it_was(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    before = sess.labels.copy()
    calls = []
    summary = sess.propagate(
        obj, cancel=lambda: len(calls) >= 3, progress=lambda d, t: calls.append(d)
    )
    assert summary.cancelled
    assert np.array_equal(sess.labels, before)
    assert sess.objects[obj].anchors == [10]
    assert sess.undo() and not sess.labels.any()  # the last action is still the box


def test_progress_reports_done_and_total(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    seen = []
    sess.propagate(obj, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] == vol.shape[0] - 1


def test_repropagation_clears_slices_no_longer_reached(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    sess.propagate(obj)
    sess.params = PropagationParams(min_score=0.95)  # now every step is "unsure"
    summary = sess.propagate(obj)
    assert summary.slices == []
    written = np.flatnonzero((sess.labels == obj).any(axis=(1, 2)))
    assert list(written) == [10]


def test_positive_and_negative_clicks_with_a_point_model(two_balls, fake_model):
    vol, a, b = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    mask = sess.add_point(obj, 8, 20, 18)
    assert np.array_equal(mask, a[8])
    mask = sess.add_point(obj, 8, 24, 46)
    assert np.array_equal(mask, a[8] | b[8])
    mask = sess.add_point(obj, 8, 20, 18, positive=False)
    assert np.array_equal(mask, b[8])


def test_positive_and_negative_clicks_with_a_box_only_model(two_balls, fake_box_model):
    vol, a, b = two_balls
    sess = Session(vol, model=fake_box_model)
    obj = sess.new_object()
    sess.add_box(obj, 8, box_of(a[8]))
    mask = sess.add_point(obj, 8, 24, 46)  # positive click on the other ball adds it
    assert mask[24, 46] and mask[a[8]].all()
    assert mask.sum() > a[8].sum() + 0.5 * b[8].sum()
    mask = sess.add_point(obj, 8, 20, 18, positive=False)  # negative click removes ball a
    assert not mask[20, 18] and not (mask & a[8]).any()
    assert mask[24, 46]


def test_clicks_propagate_like_boxes(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_point(obj, 10, 20, 18)
    sess.propagate(obj)
    assert dice(sess.labels == obj, a) > 0.99


def test_label_ids_past_uint16_switch_to_uint32(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object(label_id=70000)
    assert sess.labels.dtype == np.uint32
    sess.add_box(obj, 10, box_of(a[10]))
    assert (sess.labels[10][a[10]] == 70000).all()


def test_embeddings_are_cached(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    sess.add_box(obj, 10, box_of(a[10]))
    sess.add_point(obj, 10, 20, 18)
    assert len(fake_model.embed_calls) == 1
    assert sess.cache.hits >= 2


def test_listeners_hear_changed_slices(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    heard = []
    sess.add_listener(heard.append)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    assert heard[-1] == [10]
    sess.undo()
    assert heard[-1] == [10]


def test_bad_session_inputs(two_balls, fake_model):
    vol, _, _ = two_balls
    with pytest.raises(SliceSamError, match="3D"):
        Session(vol[0], model=fake_model)
    nan = vol.astype(np.float32)
    nan[0, 0, 0] = np.nan
    with pytest.raises(SliceSamError, match="fill_nonfinite"):
        Session(nan, model=fake_model)
    with pytest.raises(SliceSamError, match="does not match"):
        Session(vol, model=fake_model, labels=np.zeros((2, 2, 2), np.uint16))
    with pytest.raises(SliceSamError, match="lo < hi"):
        Session(vol, model=fake_model, window=(5, 1))


def test_existing_labels_become_objects(two_balls, fake_model):
    vol, a, _ = two_balls
    labels = np.zeros(vol.shape, np.uint16)
    labels[a] = 4
    sess = Session(vol, model=fake_model, labels=labels)
    assert list(sess.objects) == [4]
    assert sess.new_object() == 1


def test_painted_edits_become_user_slices_and_are_undoable(two_balls, fake_model):
    vol, a, b = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    sess.propagate(obj)
    after_propagation = sess.labels.copy()
    # The user paints slice 12 by hand (as napari's brush would) and adds a new label 9.
    sess.labels[12][a[12]] = 0
    sess.labels[12, 0:3, 0:3] = obj
    sess.labels[5, 40:44, 50:54] = 9
    assert sess.sync_external_edits() == [5, 12]
    assert sess.objects[obj].source[12] == "user"
    assert 9 in sess.objects and sess.objects[9].anchors == [5]
    painted = sess.labels.copy()
    sess.propagate(obj)  # must not overwrite the painted slice 12
    assert np.array_equal(sess.labels[12], painted[12])
    sess.undo()  # propagation
    sess.undo()  # paint
    assert np.array_equal(sess.labels, after_propagation)
    assert 9 not in sess.objects
    assert sess.sync_external_edits() == []


def test_low_confidence_navigation(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, box_of(a[10]))
    sess.propagate(obj)
    assert sess.low_confidence_slices(obj, threshold=0.5) == []
    weak = sess.low_confidence_slices(obj, threshold=0.95)
    assert weak == sorted(sess.confidence(obj))
    assert sess.next_low_confidence(obj, 10, +1, threshold=0.95) == 11
    assert sess.next_low_confidence(obj, 10, -1, threshold=0.95) == 9
    assert sess.next_low_confidence(obj, 10, +1, threshold=0.5) is None


def test_sync_of_given_slices_only(two_balls, fake_model):
    vol, a, _ = two_balls
    sess = Session(vol, model=fake_model)
    obj = sess.new_object()
    sess.labels[3, 0, 0] = obj
    sess.labels[7, 0, 0] = obj
    assert sess.sync_external_edits(slices=[7]) == [7]
    assert sess.objects[obj].anchors == [7]
    assert sess.sync_external_edits() == [3]
    assert sess.object_ids == [obj]


def test_a_constant_volume_warns_that_there_is_nothing_to_segment(fake_model):
    import numpy as np

    with pytest.warns(UserWarning, match="constant.*nothing|no structure"):
        Session(np.full((3, 8, 8), 7, np.int16), model=fake_model)


def test_a_walk_stops_where_the_mask_slides_into_a_brighter_neighbour(fake_model):
    """A column of constant width whose upper part is brighter (a neighbour touching the
    object in z): no area rule can see the change; without a z range the walk up from the
    dim part stops where the mean intensity under the mask rises by more than 0.1 (window
    scaled to 0-1) above the walk's lowest."""
    z, y, x = np.mgrid[:30, :40, :40]
    column = (y - 20) ** 2 + (x - 20) ** 2 <= 64
    vol = np.where(column, np.where(z < 12, 160, 230), 0).astype(np.int16)
    reached = {}
    for rise in (0.0, 0.1):
        sess = Session(
            vol,
            model=fake_model,
            window=(0, 255),
            params=PropagationParams(max_intensity_rise=rise),
        )
        obj = sess.new_object()
        sess.add_box(obj, 5, (10, 10, 30, 30))
        summary = sess.propagate(obj)
        written = np.flatnonzero((sess.labels == obj).any(axis=(1, 2)))
        reached[rise] = (int(written.min()), int(written.max()))
        if rise:
            assert any("intensity rose" in stop for stop in summary.stops)
    assert reached[0.0] == (0, 29)  # on through the bright part
    assert reached[0.1] == (0, 11)  # the dim part only


def test_a_walk_stops_where_the_mask_dims(fake_model):
    """A column over a dark background dims from 240 to 200 above z = 10: the mean intensity
    under the mask falls by 0.16 of the window, more than ``max_intensity_drop`` below the
    seed's, and the walk up from z = 5 stops there; with the rule off it goes on."""
    z, y, x = np.mgrid[:30, :40, :40]
    column = (y - 20) ** 2 + (x - 20) ** 2 <= 64
    vol = np.where(column, np.where(z < 10, 240, 200), 0).astype(np.int16)
    reached, stops = {}, {}
    for drop in (0.1, 1.0):
        params = PropagationParams(max_intensity_drop=drop)
        sess = Session(vol, model=fake_model, window=(0, 255), params=params)
        obj = sess.new_object()
        sess.add_box(obj, 5, (10, 10, 30, 30))
        stops[drop] = sess.propagate(obj).stops
        reached[drop] = int(np.flatnonzero((sess.labels == obj).any(axis=(1, 2))).max())
    assert reached[0.1] == 9
    assert any("intensity fell at 10" in s for s in stops[0.1])
    assert reached[1.0] == 29


def test_microscopy_sessions_start_with_the_intensity_rise_rule_and_rewalk_reference(fake_model):
    from slicesam.engine import default_params
    from slicesam.io.volume import Volume

    vol = np.zeros((4, 16, 16), np.uint16)
    vol[:, 4:10, 4:10] = 200
    for modality, rise in (("microscopy", 0.05), ("CT", 0.0), ("MR", 0.2), (None, 0.0)):
        sess = Session(Volume(data=vol, modality=modality), model=fake_model)
        assert sess.params.max_intensity_rise == rise
        assert sess.params.rewalk_reference == (modality == "microscopy")
        assert sess.params.margin_model_px == (6.0 if modality == "microscopy" else 3.0)
        assert sess.params == default_params(modality)
    mine = PropagationParams(max_intensity_rise=0.3)  # the user's own settings win
    assert (
        Session(Volume(data=vol, modality="microscopy"), model=fake_model, params=mine).params
        is mine
    )
