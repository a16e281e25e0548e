"""Box helpers of the engine, and how a walk uses them."""

from __future__ import annotations

import numpy as np

from slicesam.engine.masks import core_bbox, disk, mask_bbox
from slicesam.engine.propagation import PropagationParams, Step, walk
from slicesam.models.base import Prediction


def test_core_bbox_ignores_stray_pixels_but_keeps_a_split_object():
    mask = disk((40, 40), 20, 12, 5) | disk((40, 40), 20, 28, 4)  # an object split in two
    mask[2, 38] = True  # one stray pixel far away
    assert mask_bbox(mask) == (7.0, 2.0, 38.0, 25.0)
    assert core_bbox(mask, 0.1) == (7.0, 15.0, 32.0, 25.0)  # both halves, not the stray
    assert core_bbox(mask, 0.0) == mask_bbox(mask)
    assert core_bbox(np.zeros((5, 5), bool), 0.1) is None
    one = disk((40, 40), 20, 20, 5)
    assert core_bbox(one, 0.1) == mask_bbox(one)


def test_a_stray_pixel_does_not_stretch_the_next_slices_box():
    """A model's mask with a stray pixel in a far corner: the next slice's box prompt comes
    from the object's parts only, so the walk does not widen to the whole slice."""
    shape = (64, 64)
    object_mask = disk(shape, 32, 32, 6)
    boxes = []

    def predict(z, *, box, **_):
        boxes.append(tuple(box))
        mask = object_mask.copy()
        mask[1, 1] = True
        logits = np.where(mask, 5.0, -5.0).astype(np.float32)[None]
        return Prediction(mask[None], np.array([0.9], np.float32), logits)

    seed = object_mask.copy()
    seed[1, 1] = True
    for min_fragment in (0.0, 0.25):
        boxes.clear()
        params = PropagationParams(min_fragment=min_fragment)
        steps = [s for s in walk(0, seed, 1, 3, predict, margin_px=2.0, params=params)]
        assert sum(isinstance(s, Step) for s in steps) == 3
        inside = [x0 >= 23 and y0 >= 23 and x1 <= 42 and y1 <= 42 for x0, y0, x1, y1 in boxes]
        assert all(inside) == (min_fragment > 0)  # 0: the box spans the stray pixel
