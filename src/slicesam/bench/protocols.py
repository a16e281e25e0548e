"""The accuracy protocols P1-P4 and the two reference baselines, one object at a time.

Every function takes a :class:`Runner` that holds the model, one embedding cache per dataset
(so the protocols never embed a slice twice) and the ground truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..engine.masks import pixel_extent
from ..engine.session import Session
from ..metrics import dice, iou
from ..models.base import SegmentationModel
from ..models.geometry import longest_side_shape
from ..prompts import Point
from .datasets import Dataset
from .simulate import largest_slice, next_click_2d, next_click_3d, tight_box, z_extent

#: Click counts reported for P3 (3D Dice) and P4 (2D IoU).
P3_REPORT_AT = (0, 1, 3, 5, 10)
P4_REPORT_AT = (1, 3, 5)


@dataclass
class Runner:
    """Sessions on one dataset that share the model and one embedding cache."""

    dataset: Dataset
    model: SegmentationModel
    session_kwargs: dict = field(default_factory=dict)
    _base: Session | None = None

    def session(self) -> Session:
        """A fresh session on the dataset's image, reusing the dataset's embeddings."""
        sess = Session(self.dataset.image, model=self.model, **self.session_kwargs)
        if self._base is None:
            self._base = sess
        elif sess.cache.signature == self._base.cache.signature:
            sess.cache = self._base.cache
        return sess

    def gt(self, label: int) -> np.ndarray:
        return self.dataset.labels == label


def _per_slice(sess: Session, obj: int, gt: np.ndarray) -> list[dict]:
    """Per written slice: 2D Dice against the ground truth and the stored confidence."""
    pred = sess.labels == obj
    rows = []
    for z, conf in sorted(sess.confidence(obj).items()):
        rows.append({"z": int(z), "dice": dice(pred[z], gt[z]), "confidence": float(conf)})
    return rows


def p1_box3d(run: Runner, label: int) -> dict:
    """P1: the 3D box's 2D extent on the middle slice of its z range, plus the range."""
    gt = run.gt(label)
    z0, z1 = z_extent(gt)
    mid = (z0 + z1) // 2
    sess = run.session()
    obj = sess.new_object()
    sess.add_box(obj, mid, tight_box(gt))
    sess.propagate(obj, z_range=(z0, z1))
    return {"dice": dice(sess.labels == obj, gt), "slices": _per_slice(sess, obj, gt)}


def _p2_session(run: Runner, gt: np.ndarray) -> tuple[Session, int]:
    z = largest_slice(gt)
    sess = run.session()
    obj = sess.new_object()
    sess.add_box(obj, z, tight_box(gt[z]))
    sess.propagate(obj)
    return sess, obj


def p2_box1(run: Runner, label: int) -> dict:
    """P2: one tight 2D box on the largest slice, no z range."""
    gt = run.gt(label)
    sess, obj = _p2_session(run, gt)
    return {"dice": dice(sess.labels == obj, gt), "slices": _per_slice(sess, obj, gt)}


def noc(curve: list[float], threshold: float, not_reached: int) -> int:
    """Index of the first value >= threshold (= clicks used), ``not_reached`` when none."""
    for i, value in enumerate(curve):
        if value >= threshold:
            return i
    return not_reached


def p3_correct(
    run: Runner, label: int, max_clicks: int = 10, on_click: Callable[[], None] | None = None
) -> dict:
    """P3: P2, then up to ``max_clicks`` error-driven clicks, each given as the napari widget
    gives a click on a propagated object: ``Session.correct(obj, Point(...))``, the click and a
    re-walk from its slice."""
    gt = run.gt(label)
    sess, obj = _p2_session(run, gt)
    curve = [dice(sess.labels == obj, gt)]
    clicks = []
    for _ in range(max_clicks):
        pred = sess.labels == obj
        click = next_click_3d(pred, gt)
        if click is None:
            curve.append(curve[-1])
            continue
        sess.correct(obj, Point(click.z, click.y, click.x, click.positive))
        curve.append(dice(sess.labels == obj, gt))
        clicks.append([click.z, click.y, click.x, click.positive])
        if on_click is not None:
            on_click()
    return {
        "dice_curve": curve,
        "dice_at": {str(k): curve[k] for k in P3_REPORT_AT if k < len(curve)},
        "noc85": noc(curve, 0.85, max_clicks + 1),
        "noc90": noc(curve, 0.90, max_clicks + 1),
        "clicks": clicks,
    }


def p4_clicks2d(run: Runner, label: int, max_clicks: int = 20) -> dict:
    """P4: clicks only, on the largest slice, from an empty mask; 2D IoU after each click."""
    gt3 = run.gt(label)
    z = largest_slice(gt3)
    gt = gt3[z]
    sess = run.session()
    obj = sess.new_object()
    curve = [0.0]  # no click: empty mask
    for _ in range(max_clicks):
        click = next_click_2d(sess.labels[z] == obj, gt, z)
        if click is None:
            curve.append(curve[-1])
            continue
        sess.add_point(obj, z, click.y, click.x, click.positive)
        curve.append(iou(sess.labels[z] == obj, gt))
        if curve[-1] >= 0.9 and len(curve) > max(P4_REPORT_AT):
            break  # every reported figure is known from here on
    while len(curve) < max_clicks + 1:
        curve.append(curve[-1])
    return _p4_result(z, curve, max_clicks)


def _p4_result(z: int, curve: list[float], max_clicks: int) -> dict:
    """What a P4 run reports: the IoU curve, the reported points of it and the NoCs."""
    return {
        "z": z,
        "iou_curve": curve,
        "iou_at": {str(k): curve[k] for k in P4_REPORT_AT if k < len(curve)},
        "noc85": noc(curve, 0.85, max_clicks + 1),
        "noc90": noc(curve, 0.90, max_clicks + 1),
    }


def p4_suggested(run: Runner, label: int, max_clicks: int = 20) -> dict:
    """P4 where the user follows the model's suggested click (:meth:`Session.uncertainty`).

    The first click is P4's (no mask yet, nothing to be unsure about). Then at each step the
    simulated user looks at the suggestion and answers it from the ground truth: a click of
    the right polarity there when the current mask is wrong at that pixel; otherwise (the mask
    is already right there, or no suggestion) the user ignores it and places P4's error-based
    click instead. ``followed`` counts the suggestions taken.
    """
    gt3 = run.gt(label)
    z = largest_slice(gt3)
    gt = gt3[z]
    sess = run.session()
    obj = sess.new_object()
    curve, followed = [0.0], 0
    for i in range(max_clicks):
        current = sess.labels[z] == obj
        click = None
        if i > 0 and current.any():
            _, suggestion = sess.uncertainty(obj, z)
            if (
                suggestion is not None
                and current[suggestion.y, suggestion.x] != gt[suggestion.y, suggestion.x]
            ):
                click = (suggestion.y, suggestion.x, bool(gt[suggestion.y, suggestion.x]))
                followed += 1
        if click is None:
            error_click = next_click_2d(current, gt, z)
            if error_click is None:
                curve.append(curve[-1])
                continue
            click = (error_click.y, error_click.x, error_click.positive)
        sess.add_point(obj, z, *click)
        curve.append(iou(sess.labels[z] == obj, gt))
    return {**_p4_result(z, curve, max_clicks), "followed": followed}


def _decode(sess: Session, z: int, box) -> tuple[np.ndarray, float]:
    pred = sess.model.predict(sess.embed(z), box=box)
    return pred.masks[0], float(pred.scores[0])


def medsam_box_from_mask(mask: np.ndarray, model_side: int, shift: float = 3.0):
    """The next-slice box of MedSAM's own 3D inference: the bounding box of the previous
    mask *resized to the model's input* (nearest neighbour, longest side ``model_side``),
    grown by ``shift`` model pixels and clipped to the input; returned in slice pixels (the
    backend scales it back exactly). None for an empty mask."""
    import cv2

    h, w = mask.shape
    nh, nw = longest_side_shape(h, w, model_side)
    small = cv2.resize(mask.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST)
    ys, xs = np.nonzero(small)
    if ys.size == 0:
        return None
    x0, x1 = max(0.0, xs.min() - shift), min(float(model_side), xs.max() + shift)
    y0, y1 = max(0.0, ys.min() - shift), min(float(model_side), ys.max() + shift)
    sx, sy = nw / w, nh / h
    return x0 / sx, y0 / sy, x1 / sx, y1 / sy


def baseline_medsam3d(run: Runner, label: int) -> dict:
    """MedSAM's own 3D inference on P1's prompt (the reference every P1 figure is set against).

    The middle slice gets the 3D box's 2D extent; every further slice the bounding box of the
    previous slice's mask at model scale plus 3 model pixels (:func:`medsam_box_from_mask`),
    or the 3D box when that mask is empty; only inside the z range.
    """
    gt = run.gt(label)
    z0, z1 = z_extent(gt)
    mid = (z0 + z1) // 2
    box3d = tight_box(gt)
    sess = run.session()
    side = sess.model.input_scale_ref
    out = np.zeros_like(gt)
    out[mid], _ = _decode(sess, mid, box3d)
    for direction, end in ((1, z1), (-1, z0)):
        prev = out[mid]
        for z in range(mid + direction, end + direction, direction):
            box = medsam_box_from_mask(prev, side)
            out[z], _ = _decode(sess, z, box3d if box is None else box)
            prev = out[z]
    return {"dice": dice(out, gt)}


def baseline_oracle(run: Runner, label: int, extent: bool = False) -> dict:
    """The ceiling: every slice of the object prompted with its own tight ground-truth box.

    As BENCHMARK.md defines it the box runs between the centres of the outermost object
    pixels (``extent=False``); with ``extent=True`` it is those pixels' outer edges
    (:func:`~slicesam.engine.masks.pixel_extent`), the box our own prompts use, which
    LiteMedSAM answers better: that variant is reported beside it for honesty.
    """
    gt = run.gt(label)
    sess = run.session()
    out = np.zeros_like(gt)
    for z in np.flatnonzero(gt.any(axis=(1, 2))):
        box = tight_box(gt[z])
        out[z], _ = _decode(sess, int(z), pixel_extent(box) if extent else box)
    return {"dice": dice(out, gt)}


def baseline_oracle_extent(run: Runner, label: int) -> dict:
    """:func:`baseline_oracle` with pixel-extent boxes."""
    return baseline_oracle(run, label, extent=True)


PROTOCOLS: dict[str, Callable[..., dict]] = {
    "P1": p1_box3d,
    "P2": p2_box1,
    "P3": p3_correct,
    "P4": p4_clicks2d,
}
BASELINES: dict[str, Callable[[Runner, int], dict]] = {
    "medsam3d": baseline_medsam3d,
    "oracle": baseline_oracle,
    "oracle_extent": baseline_oracle_extent,
}
