"""Classical backends (GrabCut, random walker): torch-free, every session workflow works."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from slicesam.errors import CheckpointError
from slicesam.metrics import dice
from slicesam.models import load_model
from slicesam.models.base import Prediction, SegmentationModel
from slicesam.models.classical import (
    GrabCutModel,
    RandomWalkerModel,
    boundary_contrast,
    box_hint,
    low_res_logits,
    make_hints,
)

NAMES = ["grabcut", "random_walker"]


def _disk(shape, cy, cx, r):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


@pytest.fixture(scope="module")
def blobs():
    """(image uint8 (128, 160), big disk, small disk): two bright disks on noisy grey."""
    shape = (128, 160)
    big = _disk(shape, 60, 70, 25)
    small = _disk(shape, 100, 135, 12)
    rng = np.random.default_rng(0)
    image = np.where(big | small, 190.0, 60.0) + rng.normal(0, 12, shape)
    return np.clip(image, 0, 255).astype(np.uint8), big, small


@pytest.mark.parametrize("name", NAMES)
def test_interface_and_box_on_a_bright_disk(name, blobs):
    image, big, _ = blobs
    model = load_model(name)
    assert isinstance(model, SegmentationModel)
    assert model.name == name and model.weights_sha256 == "" and model.device == "cpu"
    assert model.capabilities.points and model.input_scale_ref == 256
    emb = model.embed(image)
    assert emb.original_size == emb.input_size == (128, 160)
    assert np.array_equal(emb.features, image) and emb.nbytes == image.nbytes
    pred = model.predict(emb, box=(40, 30, 100, 90))
    assert isinstance(pred, Prediction)
    assert pred.masks.shape == (1, 128, 160) and pred.masks.dtype == bool
    assert pred.scores.shape == (1,) and pred.scores.dtype == np.float32
    assert 0.0 <= pred.scores[0] <= 1.0
    assert pred.low_res_logits.shape == (1, 128, 160) and pred.low_res_logits.dtype == np.float32
    assert dice(pred.masks[0], big) > 0.9
    assert pred.scores[0] > 0.9  # a clean edge all round
    # A tight (inclusive) box works too.
    tight = model.predict(emb, box=(45, 35, 95, 85))
    assert dice(tight.masks[0], big) > 0.9


@pytest.mark.parametrize("name", NAMES)
def test_clicks_add_and_remove_regions(name, blobs):
    image, big, small = blobs
    model = load_model(name)
    emb = model.embed(image)
    one = model.predict(emb, points=np.array([[70.0, 60.0]]), point_labels=np.array([1]))
    assert dice(one.masks[0], big) > 0.9
    multi = model.predict(
        emb, points=np.array([[70.0, 60.0]]), point_labels=np.array([1]), multimask=True
    )
    assert multi.masks.shape == (3, 128, 160) and multi.scores.shape == (3,)
    both = model.predict(
        emb,
        points=np.array([[70.0, 60.0], [135.0, 100.0]]),
        point_labels=np.array([1, 1]),
        mask_input=one.low_res_logits[0],
    )
    assert dice(both.masks[0], big | small) > 0.9
    # A negative click on the small disk removes it again.
    less = model.predict(
        emb,
        points=np.array([[70.0, 60.0], [135.0, 100.0], [130.0, 98.0]]),
        point_labels=np.array([1, 1, 0]),
        mask_input=both.low_res_logits[0],
    )
    assert dice(less.masks[0], big) > 0.9
    # A negative click inside a box removes the region it lands on.
    boxed = model.predict(
        emb, box=(40, 30, 150, 115), points=np.array([[135.0, 100.0]]), point_labels=np.array([0])
    )
    assert boxed.masks[0][big].mean() > 0.9 and boxed.masks[0][small].mean() < 0.1


@pytest.mark.parametrize("name", NAMES)
def test_nothing_to_segment(name, blobs):
    image, _, _ = blobs
    model = load_model(name)
    emb = model.embed(image)
    assert not model.predict(emb).masks.any()  # no prompt at all
    only_negative = model.predict(emb, points=np.array([[70.0, 60.0]]), point_labels=np.array([0]))
    assert not only_negative.masks.any()
    empty = model.predict(emb, box=(5, 100, 40, 125))  # a box on flat background
    assert empty.masks[0].sum() < 60 and empty.scores[0] < 0.5


@pytest.mark.parametrize("name", NAMES)
def test_session_workflows(name, two_balls):
    from slicesam.engine import Session

    vol, a, b = two_balls
    sess = Session(vol, model=name, window=(0, 255))
    assert sess.model.name == name
    obj = sess.new_object()
    mask = sess.add_box(obj, 10, (10, 12, 26, 28))
    assert dice(mask, a[10]) > 0.9
    mask = sess.add_point(obj, 10, 20, 18, positive=True)
    assert dice(mask, a[10]) > 0.9
    summary = sess.propagate(obj)
    assert dice(sess.labels == obj, a) > 0.85, summary
    other = sess.new_object()
    mask = sess.add_point(other, 8, 24, 46, positive=True)  # clicks only, no box
    assert dice(mask, b[8]) > 0.85
    sess.propagate(other)
    assert dice(sess.labels == other, b) > 0.85


def test_classical_backends_do_not_import_torch():
    code = (
        "import sys, numpy as np\n"
        "from slicesam.models import load_model\n"
        "for name in ('grabcut', 'random_walker'):\n"
        "    m = load_model(name)\n"
        "    img = np.zeros((32, 32), np.uint8); img[8:24, 8:24] = 200\n"
        "    assert m.predict(m.embed(img), box=(6, 6, 25, 25)).masks.any()\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"], out.stderr


def test_no_weights_means_no_checkpoint():
    with pytest.raises(CheckpointError, match="no weights"):
        load_model("grabcut", checkpoint="some.pth")
    assert isinstance(GrabCutModel.create(None, "cuda"), GrabCutModel)  # always the CPU
    assert RandomWalkerModel.create(None, "auto").device == "cpu"


def test_box_hint_finds_the_object_and_falls_back_to_the_centre(blobs):
    image, big, _ = blobs
    seeds = box_hint(image, (40, 30, 100, 90))
    assert seeds.any() and seeds[big].mean() > 0.5 and (seeds & ~big).sum() <= 0.05 * seeds.sum()
    flat = np.full((50, 50), 90, np.uint8)
    centre = box_hint(flat, (10, 10, 39, 39))
    ys, xs = np.nonzero(centre)
    assert centre.any() and abs(ys.mean() - 24.5) < 1.5 and abs(xs.mean() - 24.5) < 1.5


def test_boundary_contrast_is_a_calibrated_confidence(blobs):
    image, big, _ = blobs
    assert boundary_contrast(image, big) > 0.99
    assert boundary_contrast(image, np.roll(big, 12, axis=1)) < boundary_contrast(image, big)
    assert boundary_contrast(image, np.zeros_like(big)) == 0.0
    assert boundary_contrast(image, np.ones_like(big)) == 0.0
    flat = np.full((40, 40), 100, np.uint8)
    assert boundary_contrast(flat, _disk((40, 40), 20, 20, 8)) == 0.0


def test_low_res_logits_round_trip():
    mask = _disk((600, 300), 300, 150, 100)
    logits = low_res_logits(mask)
    assert logits.shape == (256, 128) and logits.dtype == np.float32
    hints = make_hints(np.zeros((600, 300), np.uint8), None, None, None, logits, 2.0)
    assert dice(hints.prior, mask) > 0.98
    small = low_res_logits(np.ones((10, 12), bool))
    assert small.shape == (10, 12)


def test_hints_resolve_conflicting_clicks(blobs):
    image, big, _ = blobs
    # Positive then negative on the same spot: the later click replaces the earlier one.
    hints = make_hints(
        image, None, np.array([[70.0, 60.0], [70.4, 60.2]]), np.array([1, 0]), None, 1.0
    )
    assert hints.clicks == [(60, 70, False)]
    assert not hints.pos_seeds.any() and hints.neg_seeds[60, 70]
    # Two clicks of opposite sign on one region split it by distance.
    hints = make_hints(image, None, np.array([[50.0, 60.0], [90.0, 60.0]]), [1, 0], None, 1.0)
    assert hints.pos_region[60, 55] and not hints.pos_region[60, 85]
    assert hints.neg_region[60, 85] and not hints.neg_region[60, 55]
