"""Box helpers of the engine, and how a walk uses them."""

from __future__ import annotations

import numpy as np

from slicesam.engine.masks import disk, mask_bbox
from slicesam.engine.propagation import PropagationParams, Step, walk
from slicesam.models.base import Prediction


def test_overshoot_is_how_far_a_mask_reaches_past_its_box_on_average():
    from slicesam.engine.masks import erode_mask, overshoot, overshoot_erosion

    mask = np.zeros((20, 20), bool)
    mask[4:11, 5:12] = True  # x 5..11, y 4..10
    assert overshoot(mask, (6, 5, 10, 9)) == 1.0
    assert overshoot(mask, (5, 4, 11, 10)) == 0.0
    assert overshoot(mask, (5, 4, 12, 12)) == -0.75  # it falls short of a loose box
    assert overshoot(np.zeros_like(mask), (5, 4, 11, 10)) is None
    # the nearest whole pixel, halves down, capped
    assert [overshoot_erosion(v, 2) for v in (-1.0, 0.25, 0.5, 0.75, 1.5, 1.75, 4.0)] == [
        0,
        0,
        0,
        1,
        1,
        2,
        2,
    ]
    assert overshoot_erosion(3.0, 0) == 0
    eroded = erode_mask(mask, 1)
    assert mask_bbox(eroded) == (6.0, 5.0, 10.0, 9.0)
    assert erode_mask(mask, 0) is mask
    assert erode_mask(mask, 5, min_area_px=4) is mask  # would vanish: kept as it is


def test_next_box_margin_is_at_most_a_fraction_of_the_boxs_shorter_side():
    from slicesam.engine.propagation import next_box_margin

    assert next_box_margin((10.0, 10.0, 15.0, 30.0), 1.4, 0.0) == 1.4  # off
    assert next_box_margin((10.0, 10.0, 15.0, 30.0), 1.4, 0.2) == 1.0  # 5 px across
    assert next_box_margin((10.0, 10.0, 50.0, 40.0), 1.4, 0.2) == 1.4  # large: unchanged


def test_a_small_structure_that_the_model_fills_its_box_with_stays_small():
    """A model that fills its box (LiteMedSAM on a structure a few pixels across): with a
    fixed margin every slice's mask is the previous box plus the margin all round, so a
    5-pixel tube widens by 2 pixels a slice; with the margin a fraction of the box's side it
    widens by less, and a wide object's boxes keep the full margin."""
    shape = (64, 64)

    def fills_its_box(z, *, box, **_):
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        mask = np.zeros(shape, bool)
        mask[y0:y1, x0:x1] = True
        logits = np.where(mask, 5.0, -5.0).astype(np.float32)[None]
        return Prediction(mask[None], np.array([0.9], np.float32), logits)

    tube = np.zeros(shape, bool)
    tube[30:35, 30:35] = True  # 5 px across
    widths = {}
    for rel in (0.0, 0.2):
        params = PropagationParams(margin_rel=rel, max_growth=100.0, min_overlap=0.0)
        steps = [s for s in walk(0, tube, 1, 2, fills_its_box, margin_px=2.0, params=params)]
        widths[rel] = [int(s.mask.any(axis=0).sum()) for s in steps if isinstance(s, Step)]
    assert widths[0.0] == [9, 13]  # 2 px a side per slice
    assert widths[0.2] == [7, 9]  # 1 px a side (0.2 x 5), then 1.4 px (0.2 x 7) rounded

    wide = np.zeros(shape, bool)
    wide[10:50, 10:50] = True
    params = PropagationParams(margin_rel=0.2, max_growth=100.0)
    steps = [s for s in walk(0, wide, 1, 1, fills_its_box, margin_px=2.0, params=params)]
    assert int(steps[0].mask.any(axis=0).sum()) == 44  # the full 2 px a side


def _cone_model(shape, radius_at_zero: float):
    """A model whose logits fall by 1 a pixel away from the image centre, 0 at
    ``radius_at_zero`` pixels, and that sees nothing outside its box: its mask at threshold t
    is the disk of radius ``radius_at_zero - t`` (within the box)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cone = (radius_at_zero - np.hypot(yy - 32, xx - 32)).astype(np.float32)

    def predict(z, *, box, **_):
        x0, y0, x1, y1 = box
        inside = (xx >= x0) & (xx + 1 <= x1 + 1e-6) & (yy >= y0) & (yy + 1 <= y1 + 1e-6)
        logits = np.where(inside, cone, -10.0).astype(np.float32)[None]
        return Prediction(logits > 0, np.array([0.9], np.float32), logits, logits=logits)

    return predict


def test_a_small_structure_whose_mask_grows_past_the_limit_is_thresholded_higher():
    """The model draws a disk one pixel wider than the structure (radius 4 for 3) in the box
    the walk gives it: without the rule every mask is that disk, 80 % larger; with it the
    logits are thresholded at 1 (0.5 still gives 37 pixels), and the mask is the structure
    again."""
    shape = (64, 64)
    seed = disk(shape, 32, 32, 2.9)  # 25 pixels, 5 across: the model's mask at 1
    areas = {}
    for growth in (0.0, 0.1):
        params = PropagationParams(max_small_growth=growth, max_growth=100.0)
        steps = walk(0, seed, 1, 2, _cone_model(shape, 4.0), margin_px=2.0, params=params)
        areas[growth] = [int(s.mask.sum()) for s in steps if isinstance(s, Step)]
    assert all(a > 1.5 * seed.sum() for a in areas[0.0])
    assert areas[0.1] == [int(seed.sum())] * 2


def test_large_structures_and_models_without_logits_keep_their_masks():
    """Boxes wider than ``small_side_px`` are not touched (a large organ's mask may grow
    from one slice to the next), nor are predictions without full-resolution logits."""
    from slicesam.engine.propagation import BoxPrediction, within_growth

    shape = (64, 64)
    seed = disk(shape, 32, 32, 10)
    params = PropagationParams(max_small_growth=0.1, max_growth=100.0)
    steps = walk(0, seed, 1, 1, _cone_model(shape, 12.0), margin_px=2.0, params=params)
    assert next(iter(steps)).mask.sum() > 1.3 * seed.sum()  # radius 12 for 10: untouched

    mask = disk(shape, 32, 32, 5)
    plain = BoxPrediction(mask, 0.9, np.zeros((8, 8), np.float32))
    assert (within_growth(plain, lambda m: m, limit=10) == mask).all()


def _box_recorder(shape):
    """A model that draws the disk of radius 3 at the image centre inside whatever box it
    gets, recording the boxes."""
    boxes = []
    blob = disk(shape, 32, 32, 3)

    def predict(z, *, box, **_):
        boxes.append(tuple(box))
        logits = np.where(blob, 5.0, -5.0).astype(np.float32)[None]
        return Prediction(blob[None], np.array([0.9], np.float32), logits)

    return blob, boxes, predict


def test_a_small_structures_next_box_runs_from_its_pixel_centres():
    """With ``small_box_inset`` 0.5 a small mask's next box is 0.5 px a side tighter (from the
    outermost pixel centres), unless the object's masks are eroded (the erosion tightened
    them already) or the box is wider than ``small_side_px``."""
    shape = (64, 64)
    blob, boxes, predict = _box_recorder(shape)  # 7 px across: pixel extent 29-36
    for inset, erode, side in ((0.0, 0, 12.0), (0.5, 0, 12.0), (0.5, 1, 12.0), (0.5, 0, 6.0)):
        boxes.clear()
        params = PropagationParams(small_box_inset=inset, small_side_px=side)
        list(walk(0, blob, 1, 1, predict, margin_px=1.0, params=params, erode_px=erode))
        widths = boxes[0][2] - boxes[0][0]
        assert widths == (6.0 if (inset, erode, side) == (0.5, 0, 12.0) else 7.0) + 2.0


def test_the_small_structure_rules_are_on_for_ct_first_walks_only(
    two_balls, fake_model, monkeypatch
):
    """The growth limit and the box inset are on for CT; a re-walk from a correction walks
    without them (a positive click may ask for a larger object)."""
    from slicesam.engine import walks as walks_module
    from slicesam.engine.propagation import default_params
    from slicesam.engine.session import Session
    from slicesam.io.volume import Volume

    assert default_params("CT").max_small_growth > 0
    for modality in ("MR", "microscopy", None):
        assert default_params(modality).max_small_growth == 0
        assert default_params(modality).small_box_inset == 0

    seen = []

    def spy(*args, params, **kwargs):
        seen.append((params.max_small_growth, params.small_box_inset))
        return walk(*args, params=params, **kwargs)

    monkeypatch.setattr(walks_module, "walk", spy)
    vol, _, _ = two_balls
    sess = Session(Volume(data=vol, modality="CT"), model=fake_model)
    obj = sess.new_object()
    sess.add_box(obj, 10, (8, 10, 28, 30))
    sess.propagate(obj)
    first = list(seen)
    seen.clear()
    sess.add_point(obj, 7, 20, 18, positive=True)
    sess.propagate(obj, from_slices=[7])
    ct = default_params("CT")
    assert ct.small_box_inset > 0
    assert first and all(p == (ct.max_small_growth, ct.small_box_inset) for p in first)
    assert seen and all(p == (0, 0) for p in seen)
