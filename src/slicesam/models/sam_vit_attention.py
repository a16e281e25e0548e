"""The attention of SAM's ViT image encoder (vit_b/l/h, MedSAM) with a fused kernel.

segment-anything's ``Attention.forward`` writes the whole (heads, N, N) score matrix in float32,
adds the decomposed relative-position bias in a second pass over it and runs the softmax in a
third; a global-attention block of vit_b at 1024 px holds 12 x 4096 x 4096 scores (805 MB),
twice. :func:`install` replaces that forward, on the encoder's own modules and with their own
weights, by one that computes the same function with torch's fused
``F.scaled_dot_product_attention``:

- the relative-position bias is the kernel's additive mask, built a few heads at a time
  (at most ``max_mask_bytes``, 64 MB by default), so no score matrix is ever materialised;
- a :func:`~slicesam.models.yield_points.yield_point` between head chunks lets a background
  embedding pause inside a global block, not only between blocks.

The result equals the reference up to float rounding (relative error ~1e-6 in float32; tests
compare against segment-anything's module). On 2 CPU cores a vit_b forward takes 8.2 s
instead of 12.3 s in float32, and its peak memory grows by 0.3 GB instead of 2.5 GB
(``slicesam bench --speed --sam``; BENCHMARKS.md).

Under bfloat16 autocast (opt-in) the fused kernel is no faster than in float32 on CPU, so
attention in bfloat16/float16 runs as row blocks of oneDNN matrix products instead
(:func:`_row_blocked`): the same function, same feature error as the fused kernel in bf16.

Shapes: the attention input is (B, H, W, C) tokens (B = windows x batch for windowed blocks).
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F

from .yield_points import yield_point

#: the segment-anything module whose ``Attention`` class this replaces the forward of
REFERENCE_MODULE = "segment_anything.modeling.image_encoder"
MAX_MASK_BYTES = 64 << 20
MAX_BLOCK_BYTES = 8 << 20
#: dtypes whose attention runs as row blocks of matrix products (:func:`_row_blocked`)
LOW_PRECISION = (torch.bfloat16, torch.float16)


def _relative_table(size: int, table: torch.Tensor) -> torch.Tensor:
    """(size, size, d): row i, column j holds ``table[i - j + size - 1]`` (the embedding of the
    offset from key j to query i along one axis)."""
    pos = torch.arange(size, device=table.device)
    return table[pos[:, None] - pos[None, :] + (size - 1)]


def _forward(self, x: torch.Tensor) -> torch.Tensor:
    """Fused attention of one segment-anything ``Attention`` (bound as its ``forward``)."""
    b, h, w, _ = x.shape
    n, heads = h * w, self.num_heads
    rel = self.use_rel_pos
    if rel and (self.rel_pos_h.shape[0] != 2 * h - 1 or self.rel_pos_w.shape[0] != 2 * w - 1):
        return self._reference_forward(x)  # tables to interpolate: the reference does that
    q, k, v = self.qkv(x).view(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    if q.dtype in self._blocked_dtypes and q.device.type == "cpu":
        return self.proj(_row_blocked(self, q, k, v, h, w).transpose(1, 2).reshape(b, h, w, -1))
    d = q.shape[-1]
    out = q.new_empty(b, heads, n, d)
    step = heads
    if rel:
        step = max(1, min(heads, self._max_mask_bytes // max(1, b * n * n * q.element_size())))
        table_h = _relative_table(h, self.rel_pos_h).to(q.dtype)  # (h, h, d)
        table_w = _relative_table(w, self.rel_pos_w).to(q.dtype)  # (w, w, d)
    for first in range(0, heads, step):
        if first:
            yield_point()
        part = slice(first, first + step)
        mask = None
        if rel:
            grid = q[:, part].reshape(b, -1, h, w, d)  # (B, heads in part, h, w, d)
            bias_h = torch.einsum("bnyxc,ykc->bnyxk", grid, table_h)  # (.., h, w, key row)
            bias_w = torch.einsum("bnyxc,xkc->bnyxk", grid, table_w)  # (.., h, w, key col)
            mask = (bias_h[..., :, None] + bias_w[..., None, :]).reshape(b, -1, n, n)
        att = F.scaled_dot_product_attention(
            q[:, part], k[:, part], v[:, part], attn_mask=mask, scale=self.scale
        )
        out[:, part] = att.to(out.dtype)
    return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


def _row_blocked(
    self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, h: int, w: int
) -> torch.Tensor:
    """Attention in bfloat16/float16, a few query rows at a time: (B, heads, N, d) -> same.

    torch's fused kernel gains nothing from bfloat16 on CPU (it computes at float32 speed),
    while oneDNN's bfloat16 matrix products run twice as fast as float32 ones. So the scores
    of a block of query rows (all heads, all N keys) are one batched matrix product, then
    the softmax and the product with the values follow. A block holds as many rows as fit
    in ``self._max_block_bytes`` of scores (at least one); a yield point separates blocks.

    The relative-position bias is ``bias_h[query, key row] + bias_w[query, key column]``.
    Where the grid is small (h + w <= d: the 14 x 14 windows), both parts join the inner
    product: each query gains its h + w bias values and each key the one-hot code of its
    row and column, so the matrix product adds the bias (broadcast adds over a short last
    axis are slow). On the large global grid that would triple the product, so the bias is
    added to each block's scores in place instead.
    """
    b, heads, n, d = q.shape
    rows = max(1, min(h, self._max_block_bytes // max(1, b * heads * w * n * q.element_size())))
    q, v = q.contiguous(), v.contiguous()
    keys_t = (k * self.scale).transpose(-1, -2).contiguous()  # (B, heads, d, N)
    add_bias = False
    if self.use_rel_pos:
        grid = q.view(b, heads, h, w, d)
        bias_h = torch.einsum(
            "bnyxc,ykc->bnyxk", grid, _relative_table(h, self.rel_pos_h).to(q.dtype)
        )
        bias_w = torch.einsum(
            "bnyxc,xkc->bnyxk", grid, _relative_table(w, self.rel_pos_w).to(q.dtype)
        )
        if h + w <= d:
            key = torch.arange(n, device=q.device)
            code = torch.cat(
                [
                    torch.arange(h, device=q.device)[:, None] == key // w,
                    torch.arange(w, device=q.device)[:, None] == key % w,
                ]
            ).to(q.dtype)  # (h + w, N): one-hot key row, then one-hot key column
            q = torch.cat([q, bias_h.reshape(b, heads, n, h), bias_w.reshape(b, heads, n, w)], -1)
            keys_t = torch.cat([keys_t, code.expand(b, heads, -1, -1)], -2)
        else:
            add_bias = True
            bias_h, bias_w = bias_h[..., None], bias_w[..., None, :]  # (.., h, w, kh|1, 1|kw)
    out = torch.empty_like(v)
    for first in range(0, h, rows):
        if first:
            yield_point()
        last = min(h, first + rows)
        tokens = slice(first * w, last * w)
        scores = torch.matmul(q[:, :, tokens], keys_t)  # (B, heads, rows * w, N)
        if add_bias:
            grid_scores = scores.view(b, heads, last - first, w, h, w)
            grid_scores += bias_h[:, :, first:last]
            grid_scores += bias_w[:, :, first:last]
        out[:, :, tokens] = torch.matmul(torch.softmax(scores, dim=-1), v)
    return out


def install(
    image_encoder: torch.nn.Module,
    max_mask_bytes: int = MAX_MASK_BYTES,
    max_block_bytes: int = MAX_BLOCK_BYTES,
    blocked_dtypes: tuple[torch.dtype, ...] = LOW_PRECISION,
) -> int:
    """Give every segment-anything ``Attention`` module inside ``image_encoder`` the fused
    forward (in place; the weights are the module's own). Returns how many were changed (0
    for encoders that are not SAM ViTs).

    ``max_mask_bytes`` bounds the bias mask of one head chunk of the fused kernel;
    ``max_block_bytes`` the scores of one row block of :func:`_row_blocked`, which CPU
    attention in ``blocked_dtypes`` (bfloat16 and float16 by default) runs instead.
    """
    count = 0
    for module in image_encoder.modules():
        if type(module).__module__ != REFERENCE_MODULE or not hasattr(module, "qkv"):
            continue
        if not hasattr(module, "_reference_forward"):
            module._reference_forward = module.forward
        module._max_mask_bytes = int(max_mask_bytes)
        module._max_block_bytes = int(max_block_bytes)
        module._blocked_dtypes = tuple(blocked_dtypes)
        module.forward = types.MethodType(_forward, module)
        count += 1
    return count
