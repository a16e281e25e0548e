"""Click strategies for box-only models (slicesam.engine.clicks), on masks and a fake predictor."""

from __future__ import annotations

import numpy as np
import pytest

from fakes import FakeModel
from slicesam.engine.clicks import (
    CLICK_STRATEGIES,
    NO_INTENSITY_EDITS,
    ClickEdits,
    box_only_click,
    default_click_edits,
    drop_thin_remnants,
    grown_on_empty,
    intensity_edit,
    local_edit,
    similar_region,
)
from slicesam.engine.masks import mask_bbox
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
    disk_only = local_edit(current, click)
    # the disk's thin cusps at the rectangle's top and bottom go with it
    assert (kept <= disk_only).all() and kept.sum() >= 0.95 * disk_only.sum()
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


def _cord_and_arch():
    """A dark round structure (0.45; the spinal cord) with a bright band (1.0; the vertebral
    arch) below it on a 0.3 background, and a mask that covers both."""
    image = np.full((64, 64), 0.3)
    yy, xx = np.mgrid[:64, :64]
    arch = (yy >= 30) & (yy < 36) & (xx >= 24) & (xx < 40)
    cord = ((yy - 24) ** 2 + (xx - 32) ** 2 <= 36) & ~arch
    image[cord] = 0.45
    image[arch] = 1.0
    return image, cord, arch


def test_similar_region_follows_the_clicked_intensity_inside_the_mask():
    image, cord, arch = _cord_and_arch()
    mask = cord | arch
    assert (similar_region(image, mask, 33.0, 30.0, 0.3) == arch).all()
    assert (similar_region(image, mask, 24.0, 32.0, 0.3) == cord).all()
    assert not similar_region(image, mask, 5.0, 5.0, 0.3).any()  # outside the mask


def test_a_negative_click_on_a_brighter_part_removes_that_part_only():
    """The model's mask of the cord spread into the arch: a negative click on the arch
    removes the arch and keeps the cord, where a disk would take a bite out of the arch
    only, and the component rule everything."""
    image, cord, arch = _cord_and_arch()
    mask = cord | arch
    predict = _predictor(np.zeros((64, 64), np.uint8))
    click = Point(0, 33.0, 26.0, False)
    out, score = box_only_click(predict, mask, click, 1.0, image=image, edits=ClickEdits())
    assert (out == cord).all()
    assert score is None
    plain, _ = box_only_click(predict, mask, click, 1.0, image=image, edits=NO_INTENSITY_EDITS)
    assert plain[arch].sum() > 0.5 * arch.sum(), "without intensities most of the arch stays"


def test_a_click_on_the_objects_own_intensity_edits_a_disk_as_before():
    """Where the click's intensity is the whole mask's, no region stands out
    (``max_fraction``): the click is answered as without intensities."""
    image = np.zeros((64, 64))
    current = _square(x1=45)
    image[current] = 0.8
    predict = _predictor(np.zeros((64, 64), np.uint8))
    click = Point(0, 30.0, 42.0, False)
    assert intensity_edit(image, current, click, ClickEdits()) is None
    with_image, _ = box_only_click(predict, current, click, 1.0, image=image, edits=ClickEdits())
    without, _ = box_only_click(predict, current, click, 1.0)
    assert (with_image == without).all()


def test_a_positive_click_next_to_the_mask_adds_the_similar_pixels_within_reach():
    image, cord, arch = _cord_and_arch()
    mask = cord & (np.arange(64)[:, None] < 27)  # the cord but its lowest rows
    click = Point(0, 28.0, 32.0, True)  # just below the mask, on the cord's lowest rows
    out = intensity_edit(image, mask, click, ClickEdits())
    assert out is not None
    assert (out & mask).sum() == mask.sum(), "a positive click never removes voxels"
    added = out & ~mask
    assert added[28, 32] and not (added & ~cord).any(), "only the cord's own intensity"
    assert added.sum() >= 0.8 * (cord & ~mask).sum()
    off = intensity_edit(image, mask, click, NO_INTENSITY_EDITS)
    assert off is None


def test_positive_reach_is_bounded_by_the_distance_to_the_mask():
    image = np.full((64, 64), 0.5)  # everything outside the mask looks alike
    mask = _square(y0=28, y1=36, x0=4, x1=12)
    click = Point(0, 31.0, 15.0, True)  # 4 px right of the mask
    out = intensity_edit(image, mask, click, ClickEdits(add_max_fraction=100.0))
    reach = 2.0 * 4
    ys, xs = np.nonzero(out & ~mask)
    assert np.hypot(ys - 31, xs - 15).max() <= reach + 0.5


def test_a_positive_click_next_to_a_sliver_adds_a_region_larger_than_the_mask():
    """The model found a sliver of a uniform ventricle: the click's region is rightly
    larger than the mask (up to ``add_max_fraction`` times it), not refused as for a
    negative click (``max_fraction``)."""
    image = np.zeros((64, 64))
    yy, xx = np.mgrid[:64, :64]
    ventricle = (yy - 32) ** 2 + (xx - 32) ** 2 <= 49
    image[ventricle] = 0.2
    sliver = ventricle & (yy >= 35)
    click = Point(0, 31.0, 32.0, True)
    out = intensity_edit(image, sliver, click, ClickEdits(add_max_fraction=3.0))
    assert out is not None
    added = out & ~sliver
    assert added.sum() > sliver.sum() and not (added & ~ventricle).any()
    assert intensity_edit(image, sliver, click, ClickEdits(add_max_fraction=0.5)) is None


def test_microscopy_clicks_ignore_intensities_and_other_modalities_follow_them():
    assert default_click_edits("microscopy") == NO_INTENSITY_EDITS
    for modality in ("CT", "MR", None):
        assert default_click_edits(modality) == ClickEdits()
    assert ClickEdits().remove_tolerance > 0 and ClickEdits().add_tolerance > 0


def test_an_intensity_edit_never_undoes_an_earlier_click_of_the_other_sign():
    """A negative click on the arch after a positive click there (the user said it belongs
    to the object) edits a disk instead: two region edits would otherwise take turns."""
    image, cord, arch = _cord_and_arch()
    mask = cord | arch
    click = Point(0, 33.0, 26.0, False)
    said = [Point(0, 33.0, 36.0, True)]
    assert intensity_edit(image, mask, click, ClickEdits(), earlier=said) is None
    same_sign = [Point(0, 33.0, 36.0, False)]
    assert intensity_edit(image, mask, click, ClickEdits(), earlier=same_sign) is not None
    predict = _predictor(np.zeros((64, 64), np.uint8))
    out, _ = box_only_click(
        predict, mask, click, 1.0, image=image, edits=ClickEdits(), earlier=said
    )
    assert out[arch].sum() > 0.5 * arch.sum(), "most of the arch stays"


def test_a_central_negative_click_keeps_a_component_built_with_positive_clicks():
    """Two positive clicks built the component: a central negative click refines it (a
    disk) instead of throwing it away; after one positive click it removes it as before."""
    current = _square() | _square(y0=50, y1=60, x0=50, x1=60)
    predict = _predictor(np.zeros((64, 64), dtype=np.uint8))
    click = Point(0, 55.0, 55.0, False)
    built = [Point(0, 52.0, 52.0, True), Point(0, 57.0, 57.0, True)]
    out, _ = box_only_click(predict, current, click, 1.0, earlier=built)
    assert out[50:60, 50:60].any(), "the user built the component"
    disk_only = local_edit(current, click)  # less its thin cusps in the square's corners
    assert (out <= disk_only).all() and out.sum() >= 0.9 * disk_only.sum()
    once, _ = box_only_click(predict, current, click, 1.0, earlier=built[:1])
    assert not once[50:60, 50:60].any()


def test_distance_to_mask_is_the_background_distance_map_at_one_pixel():
    from slicesam.engine.clicks import _distance_to_mask, _inner_distance

    rng = np.random.default_rng(3)
    for _ in range(20):
        mask = np.zeros((40, 56), bool)
        y, x = rng.integers(5, 35), rng.integers(5, 50)
        mask[y - 3 : y + 3, x - 4 : x + 2] = True
        full = _inner_distance(~mask)
        for yy, xx in rng.integers(0, (40, 56), size=(10, 2)):
            assert _distance_to_mask(mask, int(yy), int(xx)) == pytest.approx(full[yy, xx])
    assert _distance_to_mask(np.zeros((8, 8), bool), 0, 3) == 1.0  # the image edge


def _ventricle_and_sliver():
    """A uniform round ventricle (0.2, radius 7) on a dark slice, and a sliver of it (its
    bottom rows) as the model's mask."""
    image = np.zeros((64, 64))
    yy, xx = np.mgrid[:64, :64]
    ventricle = (yy - 32) ** 2 + (xx - 32) ** 2 <= 49
    image[ventricle] = 0.2
    return image, ventricle, ventricle & (yy >= 37)


def test_a_positive_click_may_add_up_to_the_neighbours_size():
    """The cap on what a positive click adds counts the object's size on the neighbour slice
    too: a sliver of 5 rows does not stop the click from adding the rest of the ventricle."""
    image, ventricle, sliver = _ventricle_and_sliver()
    click = Point(0, 30.0, 32.0, True)
    edits = ClickEdits(add_max_fraction=2.0, add_max_neighbour=2.0)
    assert intensity_edit(image, sliver, click, edits) is None  # the region > 2 x the sliver
    out = intensity_edit(image, sliver, click, edits, expected_area=int(ventricle.sum()))
    assert out is not None
    added = out & ~sliver
    assert added[30, 32] and added.sum() > 2 * sliver.sum() and not (added & ~ventricle).any()


def test_a_first_click_on_an_empty_slice_adds_its_region_when_the_model_found_a_sliver():
    image, ventricle, sliver = _ventricle_and_sliver()
    hint = ventricle.copy()  # the object on the neighbour slice
    click = Point(0, 32.0, 32.0, True)
    out, score = grown_on_empty(image, (sliver, 0.7), hint, click, ClickEdits())
    assert score == 0.7 and (out == ventricle).all()
    # the model's mask is as large as the neighbour's: kept as it is
    big = _square(y0=20, y1=45, x0=20, x1=45)
    out, _ = grown_on_empty(image, (big, 0.7), hint, click, ClickEdits())
    assert (out == big).all()
    # off, or without intensities (microscopy)
    for edits in (ClickEdits(empty_grow_below=0.0), NO_INTENSITY_EDITS):
        out, _ = grown_on_empty(image, (sliver, 0.7), hint, click, edits)
        assert (out == sliver).all()


def test_a_first_click_on_a_uniform_slice_does_not_flood_it():
    """Where everything near the click looks alike, the region is many times the neighbour's
    object: the model's mask stays as it was."""
    image = np.full((64, 64), 0.5)
    hint = _square(y0=28, y1=36, x0=28, x1=36)
    sliver = _square(y0=30, y1=32, x0=30, x1=32)
    out, _ = grown_on_empty(image, (sliver, 0.5), hint, Point(0, 31.0, 31.0, True), ClickEdits())
    assert (out == sliver).all()


def test_box_only_click_grows_a_first_click_when_the_model_finds_too_little():
    """The model answers every box with the sliver (which misses the click): the click's
    own region of intensity, the ventricle, is what the user gets."""
    from slicesam.models.base import Prediction

    image, ventricle, sliver = _ventricle_and_sliver()

    def predict(**kw):
        return Prediction(sliver[None], np.array([0.8]), np.zeros((1, 64, 64), np.float32))

    empty = np.zeros((64, 64), dtype=bool)
    click = Point(0, 32.0, 32.0, True)
    out, _ = box_only_click(
        predict, empty, click, 1.0, hint=ventricle, image=image, edits=ClickEdits()
    )
    assert (out == ventricle).all()
    out, _ = box_only_click(predict, empty, click, 1.0, hint=ventricle, edits=ClickEdits())
    assert out.sum() < 20, "without the slice's intensities: a small disk at the click"


#: The model's mask of the CT aorta on its slice 29 (P3 after the box, 3 mm pixels): the
#: vessel (rows 5-11) and the structure in front of it that the mask took in (rows 0-4).
AORTA_MASK = """
..++++...
.++++++..
++++++++.
++++++++.
++++++++.
+++++++++
+++++++++
+++++++++
+++++++++
.++++++++
.++++++..
..+++++..
"""


def _aorta(top: int = 20, left: int = 20) -> np.ndarray:
    rows = AORTA_MASK.split()
    mask = np.zeros((64, 64), dtype=bool)
    for y, row in enumerate(rows):
        for x, c in enumerate(row):
            mask[top + y, left + x] = c == "+"
    return mask


def test_a_negative_click_on_a_blob_takes_the_thin_remnants_beside_it():
    """The click (where P3 put it) removes a disk from the structure in front of the aorta
    and leaves 1-2 pixel columns on either side; they go too, so the slice's box, and the
    next slice's prompt, shrink back to the vessel (its top row: 5 rows lower)."""
    mask = _aorta()
    predict = _predictor(np.zeros((64, 64), np.uint8))
    click = Point(0, 22.0, 23.0, False)
    kept, _ = box_only_click(predict, mask, click, 1.0, edits=ClickEdits(remnant_width=0))
    assert kept[20:25].sum() >= 5, "the disk alone leaves the structure's sides"
    out, _ = box_only_click(predict, mask, click, 1.0, edits=ClickEdits())
    assert not out[:25].any(), "no remnant of the structure in front is left"
    assert (out[25:] == mask[25:]).all(), "the vessel is untouched"
    assert mask_bbox(out)[1] == 25


def test_thin_remnants_stay_when_the_click_removed_much_of_the_mask():
    """A large cut says little about what is left: a thin object keeps its thin parts."""
    slit = np.zeros((64, 64), dtype=bool)
    slit[10:50, 30:32] = True  # a slit 2 pixels wide
    after = slit.copy()
    after[10:30] = False  # the click took half of it
    assert (drop_thin_remnants(slit, after, 3, 0.4) == after).all()
    assert not drop_thin_remnants(slit, after, 3, 0.6)[30:32].any()  # the limit is what keeps it
    assert (drop_thin_remnants(slit, after, 0, 1.0) == after).all()  # width 0 = off
    assert (drop_thin_remnants(slit, slit, 3, 1.0) == slit).all()  # nothing removed


def test_thin_remnants_go_only_near_the_removed_region():
    """A thin part of the mask far from the click (a vessel's branch) stays."""
    mask = _aorta()
    mask[32:50, 24] = True  # a 1-pixel branch below the vessel, far from the click
    after = mask.copy()
    after[20:24, 21:27] = False
    out = drop_thin_remnants(mask, after, 3, 0.4)
    assert out[32:50, 24].all()
    assert not out[:24].any()
