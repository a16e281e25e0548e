"""The model-free part of a session: labels, objects, undo/redo."""

from __future__ import annotations

import numpy as np
import pytest

from slicesam.engine.annotation import Annotation
from slicesam.errors import PromptError, SliceSamError


def test_existing_labels_become_objects_and_brush_edits_are_adopted_and_undone():
    labels = np.zeros((4, 8, 8), np.uint16)
    labels[1, 2:4, 2:4] = 3
    ann = Annotation(labels.shape, labels)
    assert ann.object_ids == [3]
    new = ann.new_object("second")
    assert new == 1  # ids skip values already in use

    ann.labels[2, 5:7, 5:7] = new  # a brush stroke behind the annotation's back
    assert ann.sync_external_edits() == [2]
    assert ann.objects[new].anchors == [2]
    assert ann.undo_name == "paint"

    assert ann.undo()
    assert not ann.labels[2].any()
    assert ann.redo()
    assert ann.mask(new, 2).sum() == 4

    ann.delete_object(3)
    assert not (ann.labels == 3).any()
    assert ann.undo() and (ann.labels == 3).sum() == 4


def test_bad_labels_and_ids_are_refused():
    with pytest.raises(SliceSamError, match="does not match"):
        Annotation((2, 4, 4), np.zeros((2, 4, 5), np.uint16))
    with pytest.raises(SliceSamError, match="integer dtype"):
        Annotation((2, 4, 4), np.zeros((2, 4, 4), np.float32))
    ann = Annotation((2, 4, 4))
    with pytest.raises(PromptError, match="unknown object 7"):
        ann.rename_object(7, "x")
    with pytest.raises(PromptError, match="outside the volume"):
        ann.mask(1, 5)
