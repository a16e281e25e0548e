"""Cancelling a propagation, and brush edits made while one runs on another thread.

A cancelled propagation must leave every slice either fully as it was or fully as the finished
propagation would have left it (today: everything as it was). A brush stroke painted into the
label array while a propagation runs (napari's paint brush does not wait for the session) and
then adopted with ``sync_external_edits`` must never be overwritten by that propagation.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from slicesam.engine import Session
from slicesam.engine.objects import USER


def box_of(mask2d: np.ndarray, pad: int = 1):
    ys, xs = np.nonzero(mask2d)
    return (int(xs.min()) - pad, int(ys.min()) - pad, int(xs.max()) + pad, int(ys.max()) + pad)


def slow(model_cls, delay: float):
    """A fake model whose predict takes ``delay`` seconds (a propagation takes a while)."""

    class Slow(model_cls):
        def predict(self, *args, **kwargs):
            time.sleep(delay)
            return super().predict(*args, **kwargs)

    return Slow()


def setup(vol, a, b, model) -> Session:
    """Two objects, one propagated before; a second anchor makes the next propagation differ."""
    sess = Session(vol, model=model)
    one = sess.new_object("A")
    sess.add_box(one, 10, box_of(a[10]))
    sess.propagate(one, z_range=(6, 14))
    two = sess.new_object("B")
    sess.add_box(two, 8, box_of(b[8]))
    sess.add_box(one, 5, box_of(a[5]))  # a new anchor: propagating again changes slices 3-7
    return sess


def assert_old_or_new(labels, old, new) -> list[str]:
    """Each slice equals its old or its new state; returns which, per slice."""
    states = []
    for z in range(labels.shape[0]):
        if np.array_equal(labels[z], old[z]):
            states.append("old")
        elif np.array_equal(labels[z], new[z]):
            states.append("new")
        else:
            raise AssertionError(f"slice {z} is half written (neither old nor new)")
    return states


def test_cancel_at_every_step_leaves_each_slice_old_or_new(two_balls, fake_model):
    vol, a, b = two_balls
    ref = setup(vol, a, b, type(fake_model)())
    old, old_objects = ref.labels.copy(), ref.objects
    polls = []
    ref.propagate(1, cancel=lambda: polls.append(1) and False)
    new = ref.labels.copy()
    changed = np.flatnonzero((old != new).any(axis=(1, 2)))
    assert changed.size >= 3 and len(polls) >= 3
    for n in range(len(polls)):
        sess = setup(vol, a, b, type(fake_model)())
        heard = []
        sess.add_listener(heard.append)
        calls: list[int] = []

        def cancel(calls=calls, n=n) -> bool:
            calls.append(1)
            return len(calls) > n

        summary = sess.propagate(1, cancel=cancel)
        assert summary.cancelled, n
        states = assert_old_or_new(sess.labels, old, new)
        assert states == ["old"] * len(states)  # today a cancel changes nothing at all
        assert sess.objects == old_objects and heard == []
        assert sess._history.names[-1].startswith("box")  # no undo entry for it


def test_cancel_from_another_thread_mid_propagation(two_balls, fake_model):
    vol, a, b = two_balls
    model = slow(type(fake_model), 0.03)
    sess = setup(vol, a, b, model)
    old, old_objects = sess.labels.copy(), sess.objects
    new_sess = setup(vol, a, b, type(fake_model)())
    new_sess.propagate(1)
    new = new_sess.labels
    started, cancel = threading.Event(), threading.Event()
    out = {}

    def run():
        out["summary"] = sess.propagate(
            1, progress=lambda done, total: started.set(), cancel=cancel.is_set
        )

    worker = threading.Thread(target=run)
    worker.start()
    assert started.wait(10)
    cancel.set()
    worker.join(30)
    assert out["summary"].cancelled
    assert_old_or_new(sess.labels, old, new)
    assert np.array_equal(sess.labels, old) and sess.objects == old_objects


def propagate_while(sess: Session, obj: int, brush, *, z_range=None) -> list[int]:
    """Run ``sess.propagate(obj)`` on a thread; once it has started, call ``brush()`` (which
    paints into ``sess.labels``) and then adopt the stroke as the widget does."""
    started = threading.Event()
    worker = threading.Thread(
        target=lambda: sess.propagate(
            obj, z_range=z_range, progress=lambda done, total: started.set()
        )
    )
    worker.start()
    assert started.wait(10)
    assert worker.is_alive(), "the propagation ended before the brush stroke"
    brush()
    adopted = sess.sync_external_edits()  # waits for the propagation (the session's lock)
    worker.join(30)
    return adopted


def test_brush_edit_on_a_slice_the_propagation_does_not_touch(two_balls, fake_model):
    vol, a, b = two_balls
    sess = setup(vol, a, b, slow(type(fake_model), 0.05))

    def brush():
        sess.labels[17, 0:4, 0:6] = 7  # far from object 1's mask (its walks end at 14/3)

    propagate_while(sess, 1, brush)
    assert (sess.labels[17, 0:4, 0:6] == 7).all()
    assert sess.objects[7].source[17] == USER
    assert not sess.sync_external_edits()  # nothing left un-adopted


def test_brush_stroke_of_another_label_during_propagation_is_adopted(two_balls, fake_model):
    vol, a, b = two_balls
    sess = setup(vol, a, b, slow(type(fake_model), 0.05))
    z = 4  # a slice the propagation changes (object 1 reaches it from the new anchor 5)

    def brush():
        sess.labels[z, 0:4, 0:6] = 7  # background voxels, a new label

    propagate_while(sess, 1, brush)
    assert (sess.labels[z, 0:4, 0:6] == 7).all()
    assert 7 in sess.objects and sess.objects[7].source.get(z) == USER


def test_brush_erasure_of_the_propagated_object_is_not_overwritten(two_balls, fake_model):
    vol, a, b = two_balls
    sess = setup(vol, a, b, slow(type(fake_model), 0.05))
    z = 12  # object 1 has it from the first propagation; the second one rewrites it
    region = (slice(None), slice(0, 18))

    def brush():
        erase = sess.labels[z][region]
        assert (erase == 1).any()
        erase[erase == 1] = 0  # the user erases the left half of object 1 on the slice
        sess.labels[z, 40, 60] = 1  # and paints one voxel of it elsewhere

    propagate_while(sess, 1, brush)
    assert not (sess.labels[z][region] == 1).any()
    assert sess.labels[z, 40, 60] == 1
    assert sess.objects[1].source[z] == USER
