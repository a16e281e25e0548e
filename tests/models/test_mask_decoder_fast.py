"""slicesam's own mask decoder against segment-anything's module (same weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicesam.models.litemedsam import load_litemedsam
from slicesam.models.mask_decoder_fast import FastMaskDecoder
from slicesam.models.torch_sam import fast_decoder_default


@pytest.fixture(scope="module")
def sam_parts():
    """segment-anything's prompt encoder and mask decoder with random (seeded) weights, with
    every parameter perturbed so that no bias or norm is left at its trivial initial value."""
    from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

    torch.manual_seed(0)
    prompt = PromptEncoder(
        embed_dim=256, image_embedding_size=(64, 64), input_image_size=(256, 256), mask_in_chans=16
    ).eval()
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
        transformer_dim=256,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    ).eval()
    with torch.no_grad():
        for p in decoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return prompt, decoder


def _decode_both(prompt, decoder, fast, features, *, points=None, boxes=None, masks=None, multi):
    with torch.inference_mode():
        sparse, dense = prompt(points=points, boxes=boxes, masks=masks)
        pe = prompt.get_dense_pe()
        want = decoder(
            image_embeddings=features,
            image_pe=pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multi,
        )
        got = fast(features, pe, sparse, dense, multi, cached=masks is None)
    return want, got


def _assert_close(want, got):
    (wl, wi), (gl, gi) = want, got
    assert gl.shape == wl.shape and gi.shape == wi.shape
    scale = wl.abs().max().item()
    assert (gl - wl).abs().max().item() <= 1e-5 * max(scale, 1.0) + 1e-5
    assert torch.allclose(gi, wi, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize(
    "n_points, box",
    [(0, True), (1, False), (3, True), (20, False)],  # 20 points: the plain-projection path
)
def test_matches_segment_anything(sam_parts, n_points, box, multi):
    prompt, decoder = sam_parts
    fast = FastMaskDecoder(decoder.state_dict())
    gen = torch.Generator().manual_seed(n_points)
    features = torch.randn(1, 256, 64, 64, generator=gen)
    points = None
    if n_points:
        coords = torch.rand(1, n_points, 2, generator=gen) * 256
        points = (coords, torch.randint(0, 2, (1, n_points), generator=gen))
    boxes = torch.tensor([[30.0, 40.0, 150.0, 200.0]]) if box else None
    want, got = _decode_both(
        prompt, decoder, fast, features, points=points, boxes=boxes, multi=multi
    )
    _assert_close(want, got)
    assert got[0].shape == (1, 3 if multi else 1, 256, 256)


def test_batches_of_prompts_and_mask_prompts(sam_parts):
    prompt, decoder = sam_parts
    fast = FastMaskDecoder(decoder.state_dict())
    features = torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(5))
    boxes = torch.tensor([[30.0, 40.0, 150.0, 200.0], [10, 10, 90, 60], [0, 0, 255, 255]])
    _assert_close(*_decode_both(prompt, decoder, fast, features, boxes=boxes, multi=False))
    masks = torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(6))
    _assert_close(
        *_decode_both(prompt, decoder, fast, features, boxes=boxes[:1], masks=masks, multi=True)
    )


def test_without_onednn_gives_the_same_logits(sam_parts):
    prompt, decoder = sam_parts
    fast = FastMaskDecoder(decoder.state_dict())
    fast._onednn = False
    features = torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(7))
    boxes = torch.tensor([[30.0, 40.0, 150.0, 200.0]])
    _assert_close(*_decode_both(prompt, decoder, fast, features, boxes=boxes, multi=False))


def test_precomputation_is_reused_per_embedding_only(sam_parts, monkeypatch):
    prompt, decoder = sam_parts
    fast = FastMaskDecoder(decoder.state_dict(), cache_size=2)
    calls = []
    real = fast._prepare
    monkeypatch.setattr(fast, "_prepare", lambda *a: calls.append(1) or real(*a))
    gen = torch.Generator().manual_seed(8)
    a, b, c = (torch.randn(1, 256, 64, 64, generator=gen) for _ in range(3))
    boxes = torch.tensor([[30.0, 40.0, 150.0, 200.0]])
    for features in (a, a, b, a):  # a is computed once; b once
        _assert_close(*_decode_both(prompt, decoder, fast, features, boxes=boxes, multi=False))
    assert len(calls) == 2
    _decode_both(prompt, decoder, fast, c, boxes=boxes, multi=False)  # evicts b (LRU of 2)
    _decode_both(prompt, decoder, fast, b, boxes=boxes, multi=False)
    assert len(calls) == 4
    masks = torch.zeros(1, 1, 256, 256)  # a mask prompt changes the dense input: not cached
    _assert_close(*_decode_both(prompt, decoder, fast, b, boxes=boxes, masks=masks, multi=False))
    assert len(calls) == 5


def test_default_on_cpu_and_switch(monkeypatch):
    monkeypatch.delenv("SLICESAM_FAST_DECODER", raising=False)
    assert fast_decoder_default("cpu") and not fast_decoder_default("cuda")
    monkeypatch.setenv("SLICESAM_FAST_DECODER", "0")
    assert not fast_decoder_default("cpu")
    monkeypatch.setenv("SLICESAM_FAST_DECODER", "1")
    assert fast_decoder_default("cuda")


@pytest.mark.slow
def test_litemedsam_masks_identical_to_the_reference_decoder():
    """The real weights, a real-looking slice: same masks, logits within float rounding."""
    ref = load_litemedsam(device="cpu", fast=False)
    fast = load_litemedsam(device="cpu")
    assert (ref.decoder_variant, fast.decoder_variant) == ("reference", "fast")
    yy, xx = np.mgrid[:300, :220]
    image = np.where((yy - 140) ** 2 / 60**2 + (xx - 100) ** 2 / 45**2 < 1, 210, 40)
    image = (image + np.random.default_rng(0).normal(0, 8, image.shape)).clip(0, 255)
    emb = fast.embed(image.astype(np.uint8))
    prompts = [
        {"box": (50.0, 75.0, 150.0, 205.0)},
        {"box": (50.0, 75.0, 150.0, 205.0), "multimask": True},
        {"box": (0.0, 0.0, 219.0, 299.0)},
    ]
    for kw in prompts:
        want, got = ref.predict(emb, **kw), fast.predict(emb, **kw)
        np.testing.assert_array_equal(got.masks, want.masks)
        np.testing.assert_allclose(got.low_res_logits, want.low_res_logits, atol=1e-3)
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)
    assert want.masks.any()
    ref_low = ref.predict(emb, box=prompts[0]["box"]).low_res_logits[0]
    want = ref.predict(emb, box=prompts[0]["box"], mask_input=ref_low)
    got = fast.predict(emb, box=prompts[0]["box"], mask_input=ref_low)
    np.testing.assert_array_equal(got.masks, want.masks)
