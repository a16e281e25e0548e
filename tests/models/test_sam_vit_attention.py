"""slicesam's fused attention for SAM's ViT encoder against segment-anything's own module."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
image_encoder = pytest.importorskip("segment_anything.modeling.image_encoder")

from slicesam.models import sam_vit_attention  # noqa: E402
from slicesam.models.yield_points import set_yield_hook  # noqa: E402


def _small_vit(seed: int = 0, embed_dim: int = 64) -> torch.nn.Module:
    """A 3-block SAM ViT (windowed and global attention, relative positions) at 128 px, with
    random weights and non-zero relative-position tables (they start at zero)."""
    torch.manual_seed(seed)
    enc = image_encoder.ImageEncoderViT(
        img_size=128,
        patch_size=16,
        embed_dim=embed_dim,
        depth=3,
        num_heads=4,
        out_chans=32,
        use_rel_pos=True,
        window_size=3,
        global_attn_indexes=(1,),
    ).eval()
    with torch.no_grad():
        for block in enc.blocks:
            block.attn.rel_pos_h.normal_(0, 0.5)
            block.attn.rel_pos_w.normal_(0, 0.5)
    return enc


def test_fused_attention_equals_the_reference_encoder():
    enc = _small_vit()
    x = torch.randn(2, 3, 128, 128)
    with torch.inference_mode():
        want = enc(x)
        assert sam_vit_attention.install(enc) == 3
        got = enc(x)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)


def _before_and_after_install(enc, x, **install_kwargs):
    """The encoder's output before and after install(), and the pause points of the latter."""
    with torch.inference_mode():
        want = enc(x)
        sam_vit_attention.install(enc, **install_kwargs)
        calls = []
        set_yield_hook(lambda: calls.append(1))
        try:
            got = enc(x)
        finally:
            set_yield_hook(None)
    return want, got, len(calls)


def test_head_chunks_give_the_same_result_and_pause_points():
    enc = _small_vit(1)
    x = torch.randn(1, 3, 128, 128)
    want, got, calls = _before_and_after_install(enc, x, max_mask_bytes=1)  # a head per chunk
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)
    assert calls == 3 * (4 - 1)  # between the 4 heads of each of the 3 blocks


def test_tables_of_another_size_fall_back_to_the_reference():
    enc = _small_vit(2)
    attn = enc.blocks[1].attn  # global attention, tables for an 8 x 8 token grid
    x = torch.randn(1, 6, 6, 64)  # a 6 x 6 grid: the reference interpolates the tables
    with torch.inference_mode():
        want = attn(x)
        sam_vit_attention.install(enc)
        got = attn(x)
    assert torch.equal(got, want)


def test_only_segment_anything_encoder_attention_is_changed():
    class Attention(torch.nn.Module):  # same name and attributes, another module
        def __init__(self):
            super().__init__()
            self.qkv = torch.nn.Linear(4, 12)

    holder = torch.nn.Sequential(Attention())
    assert sam_vit_attention.install(holder) == 0


@pytest.mark.parametrize("embed_dim", [64, 32])
def test_row_blocked_attention_equals_the_reference(embed_dim):
    # the low-precision path, run in float32 so that it can be compared tightly. Head width
    # 16 (embed 64): the 3 x 3 windows and the 8 x 8 global grid both put the bias into the
    # inner product (h + w <= 16); head width 8 (embed 32): the global grid adds it to the
    # scores instead (8 + 8 > 8). One row of queries per block: 8 blocks on the global grid.
    enc = _small_vit(3, embed_dim)
    x = torch.randn(2, 3, 128, 128)
    want, got, calls = _before_and_after_install(
        enc, x, max_block_bytes=1, blocked_dtypes=(torch.float32,)
    )
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)
    # pause points between row blocks: 2 windowed blocks of 3 rows, 1 global block of 8 rows
    assert calls == 2 * (3 - 1) + (8 - 1)


def test_bfloat16_autocast_runs_row_blocks_close_to_the_float32_reference():
    enc = _small_vit(4, 32)
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        want = enc(x)
        sam_vit_attention.install(enc, max_block_bytes=1)
        calls = []
        set_yield_hook(lambda: calls.append(1))
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got = enc(x).float()
        finally:
            set_yield_hook(None)
    assert len(calls) == 2 * (3 - 1) + (8 - 1)  # the row-blocked path ran, one row a block
    assert float((got - want).norm() / want.norm()) < 2e-2
