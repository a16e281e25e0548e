"""An inference-only SAM mask decoder for CPUs (LiteMedSAM, SAM vit_b/l/h, MobileSAM).

slicesam's own implementation of segment-anything's ``MaskDecoder`` + ``TwoWayTransformer``
forward pass. It reads the parameters of the reference module (``mask_decoder.state_dict()``,
the same weights file) and computes the same function with less arithmetic:

- **per-slice precomputation.** Without a mask prompt, the first layer's image-side
  projections (token-to-image keys and values, image-to-token queries) depend only on the
  slice's embedding; they are computed once per embedding and reused by every later prompt on
  that slice (clicks, box votes, propagation re-tries). A small LRU of recent embeddings holds
  them.
- **low-rank attention.** A prompt has a handful of tokens T (5 output tokens + 2 box corners);
  the image has N = 4096. Instead of projecting all N image tokens to keys/values/queries, the
  few token-side vectors are mapped back through the projection weights: per head,
  ``q (X Wk)^T = (q Wk) X^T`` and ``P (X Wv) = (P X) Wv``, and likewise for image-to-token
  queries and the output projection. Key biases cancel in the softmax; value biases pass
  through because softmax rows sum to 1. Used when heads x T < the projection width (else
  the plain projections run).
- **one layout.** Image tokens stay (B, N, C); the two transposed 2x2 convolutions of the
  upscaling are matrix products whose sub-pixel offsets are put in place once, on the final
  one-channel mask; only the masks asked for (one, or the three multimask ones) are formed,
  and the final token-to-image attention runs only for their tokens and the IoU token.

Everything is float32; the result equals the reference up to float rounding (tests compare
logits and IoU predictions against segment-anything's module).

Shapes: ``image_embeddings`` (1, 256, 64, 64); sparse prompt embeddings (B, T-5, 256);
outputs low-res logits (B, K, 256, 256) and IoU predictions (B, K), K = 1 or 3.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .tinyvit_fast import mkldnn_fusion_works

LN_EPS = 1e-5
LN2D_EPS = 1e-6


@dataclass
class _Linear:
    weight: torch.Tensor  # (out, in)
    bias: torch.Tensor  # (out,)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


@dataclass
class _Attention:
    """One segment-anything ``Attention`` (q/k/v/out projections, ``heads`` heads)."""

    q: _Linear
    k: _Linear
    v: _Linear
    out: _Linear
    heads: int

    @property
    def width(self) -> int:
        return self.q.weight.shape[0]

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, width) -> (B, heads, L, width / heads)."""
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        """(B, heads, L, d) -> (B, L, heads * d)."""
        b, h, n, d = x.shape
        return x.transpose(1, 2).reshape(b, n, h * d)

    def full(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The plain attention: inputs (B, Lq, C), (B, Lk, C), (B, Lk, C) -> (B, Lq, C)."""
        out = F.scaled_dot_product_attention(
            self.split(self.q(q)), self.split(self.k(k)), self.split(self.v(v))
        )
        return self.out(self.merge(out))

    def _head_weights(self, lin: _Linear) -> torch.Tensor:
        """(heads, d, C) rows of a projection's weight, one block per head."""
        return lin.weight.view(self.heads, -1, lin.weight.shape[1])

    def tokens_to_image(
        self, tokens: torch.Tensor, image_k: torch.Tensor, image_v: torch.Tensor
    ) -> torch.Tensor:
        """Token queries (B, T, C) attend to N image tokens; keys from ``image_k`` and values
        from ``image_v`` (both (B, N, C), B or 1). Returns (B, T, C)."""
        b, t, _ = tokens.shape
        if self.heads * t >= self.width:
            bb = max(b, image_k.shape[0])
            return self.full(tokens, image_k.expand(bb, -1, -1), image_v.expand(bb, -1, -1))
        d = self.width // self.heads
        q = self.split(self.q(tokens))  # (B, H, T, d)
        # per head: scores = (q Wk_h) X^T (the key bias adds a constant per row: no effect)
        qk = torch.matmul(q, self._head_weights(self.k)[None])  # (B, H, T, C)
        scores = torch.matmul(qk.reshape(b, self.heads * t, -1), image_k.transpose(1, 2))
        probs = torch.softmax(scores * (1.0 / math.sqrt(d)), dim=-1)  # (B, H*T, N)
        pooled = torch.matmul(probs, image_v).view(b, self.heads, t, -1)  # (B, H, T, C)
        wv = self._head_weights(self.v).transpose(1, 2)[None]  # (1, H, C, d)
        out = torch.matmul(pooled, wv) + self.v.bias.view(1, self.heads, 1, d)
        return self.out(self.merge(out))

    def image_to_tokens(
        self,
        image_q: torch.Tensor | None,
        tokens_k: torch.Tensor,
        tokens_v: torch.Tensor,
        residual: torch.Tensor,
        projected_qt: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """N image queries attend to T tokens (keys ``tokens_k``, values ``tokens_v``,
        (B, T, C)). The queries are ``image_q`` (B|1, N, C), or their projections given
        per head and transposed, ``projected_qt`` (1, H, d, N). Returns ``residual``
        (B|1, N, C) + the attention output, (B, N, C).

        Scores are kept as (B, H, T, N), so the softmax over the T tokens runs along a
        middle axis with N contiguous (a softmax over a last axis of 7 is 15x slower).
        """
        b, t, _ = tokens_k.shape
        d = self.width // self.heads
        if projected_qt is None and self.heads * t >= self.width:
            bb = max(b, image_q.shape[0])
            return residual + self.full(image_q.expand(bb, -1, -1), tokens_k, tokens_v)
        k = self.split(self.k(tokens_k))  # (B, H, T, d)
        v = self.split(self.v(tokens_v))
        if projected_qt is not None:
            scores = torch.matmul(k, projected_qt)  # (B, H, T, N)
        else:
            # per head: (X Wq_h^T + bq_h) k_h^T = X (Wq_h^T k_h^T) + bq_h . k_h
            fold = torch.matmul(k, self._head_weights(self.q)[None]).reshape(b, self.heads * t, -1)
            qbias = torch.matmul(k, self.q.bias.view(1, self.heads, d, 1)).reshape(b, -1, 1)
            image_t = image_q.transpose(1, 2).expand(b, -1, -1)  # (B, C, N)
            scores = torch.baddbmm(qbias, fold, image_t).view(b, self.heads, t, -1)
        probs = torch.softmax(scores * (1.0 / math.sqrt(d)), dim=2)
        # the output projection folded into the values: out = sum_h P_h (V_h Wo_h^T) + bo,
        # and bo spread over the heads (each head's probabilities sum to 1 per query)
        wo = self.out.weight.view(self.out.weight.shape[0], self.heads, d).permute(1, 2, 0)
        values = torch.matmul(v, wo[None]) + self.out.bias / self.heads  # (B, H, T, C)
        probs_t = probs.reshape(b, self.heads * t, -1).transpose(1, 2)  # (B, N, H*T)
        return torch.baddbmm(
            residual.expand(b, -1, -1), probs_t, values.reshape(b, self.heads * t, -1)
        )


@dataclass
class _Prepared:
    """Per-embedding tensors that do not depend on the prompt (no mask prompt)."""

    keys: torch.Tensor  # (1, N, C): embedding + dense prompt
    k1: torch.Tensor  # (1, N, w): layer-1 token-to-image keys
    v1: torch.Tensor  # (1, N, w): layer-1 token-to-image values
    q1t: torch.Tensor  # (1, H, d, N): layer-1 image-to-token queries, per head, transposed


def _layer_norm(x: torch.Tensor, norm: _Linear, eps: float = LN_EPS) -> torch.Tensor:
    return F.layer_norm(x, norm.weight.shape, norm.weight, norm.bias, eps)


class FastMaskDecoder:
    """segment-anything's mask decoder forward pass, computed as described in the module
    docstring, with an LRU of ``cache_size`` per-embedding precomputations.

    Args:
        state: the reference decoder's ``state_dict()`` (``transformer.*``, ``iou_token``,
            ``mask_tokens``, ``output_upscaling.*``, ``output_hypernetworks_mlps.*``,
            ``iou_prediction_head.*``).
        num_heads: attention heads of the two-way transformer (8 in every SAM-family model).
        cache_size: how many embeddings' precomputations to keep (6 MB each).
    """

    def __init__(
        self, state: Mapping[str, torch.Tensor], *, num_heads: int = 8, cache_size: int = 4
    ) -> None:
        s = {k: v.detach().float().clone() for k, v in state.items()}

        def lin(name: str) -> _Linear:
            return _Linear(s[f"{name}.weight"], s[f"{name}.bias"])

        def attn(name: str) -> _Attention:
            return _Attention(
                *(lin(f"{name}.{p}_proj") for p in "qkv"), lin(f"{name}.out_proj"), num_heads
            )

        self.depth = 1 + max(int(k.split(".")[2]) for k in s if k.startswith("transformer.layers."))
        self.layers = []
        for i in range(self.depth):
            p = f"transformer.layers.{i}"
            self.layers.append(
                {
                    "self_attn": attn(f"{p}.self_attn"),
                    "t2i": attn(f"{p}.cross_attn_token_to_image"),
                    "i2t": attn(f"{p}.cross_attn_image_to_token"),
                    "mlp1": lin(f"{p}.mlp.lin1"),
                    "mlp2": lin(f"{p}.mlp.lin2"),
                    **{f"norm{n}": lin(f"{p}.norm{n}") for n in range(1, 5)},
                }
            )
        self.final_attn = attn("transformer.final_attn_token_to_image")
        self.norm_final = lin("transformer.norm_final_attn")
        self.output_tokens = torch.cat([s["iou_token.weight"], s["mask_tokens.weight"]], 0)
        self.num_mask_tokens = s["mask_tokens.weight"].shape[0]
        self.hyper = [
            [lin(f"output_hypernetworks_mlps.{i}.layers.{j}") for j in range(3)]
            for i in range(self.num_mask_tokens)
        ]
        self.iou_head = [
            lin(f"iou_prediction_head.layers.{j}")
            for j in range(
                1 + max(int(k.split(".")[2]) for k in s if k.startswith("iou_prediction_head."))
            )
        ]
        # transposed 2x2 stride-2 convolutions as linear layers: weight ((dy, dx, out), in)
        w1, w2 = s["output_upscaling.0.weight"], s["output_upscaling.3.weight"]
        self.up1 = (self._subpixel(w1), s["output_upscaling.0.bias"].repeat(4))
        self.up1_out = w1.shape[1]
        self.up_norm = lin("output_upscaling.1")
        self.up2 = (self._subpixel(w2), s["output_upscaling.3.bias"].repeat(4))
        self.up2_out = w2.shape[1]
        self._onednn = mkldnn_fusion_works(torch.float32)
        self.cache_size = cache_size
        self._cache: OrderedDict[int, tuple[torch.Tensor, _Prepared]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _subpixel(weight: torch.Tensor) -> torch.Tensor:
        """A (in, out, 2, 2) transposed-convolution weight as a (4 * out, in) linear weight
        whose output rows are ordered (dy, dx, out)."""
        return weight.permute(2, 3, 1, 0).reshape(-1, weight.shape[0]).contiguous()

    def to(self, device: str | torch.device) -> FastMaskDecoder:
        """Move every weight to ``device`` (in place); returns self."""

        def move(obj):
            if isinstance(obj, torch.Tensor):
                return obj.to(device)
            if isinstance(obj, (_Linear, _Attention)):
                for name, value in vars(obj).items():
                    setattr(obj, name, move(value))
                return obj
            if isinstance(obj, dict):
                return {k: move(v) for k, v in obj.items()}
            if isinstance(obj, (list, tuple)):
                return type(obj)(move(v) for v in obj)
            return obj

        for name, value in list(vars(self).items()):
            if name not in ("_cache", "_lock"):
                setattr(self, name, move(value))
        self.clear_cache()
        return self

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # -- precomputation -------------------------------------------------------------------
    def _prepare(
        self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, dense: torch.Tensor
    ) -> _Prepared:
        feats = image_embeddings.float() + dense.float()  # (1|B, C, h, w)
        keys = feats.flatten(2).transpose(1, 2).contiguous()  # (1|B, N, C)
        pe = image_pe.float().flatten(2).transpose(1, 2)
        kpe = keys + pe
        t2i, i2t = self.layers[0]["t2i"], self.layers[0]["i2t"]
        q1t = i2t.split(i2t.q(kpe)).transpose(2, 3).contiguous()
        return _Prepared(keys=keys, k1=t2i.k(kpe), v1=t2i.v(keys), q1t=q1t)

    def prepared(
        self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, no_mask_dense: torch.Tensor
    ) -> _Prepared:
        """The precomputation for an embedding without a mask prompt, from the LRU when the
        same ``image_embeddings`` tensor (by identity) was decoded recently."""
        key = id(image_embeddings)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] is image_embeddings:
                self._cache.move_to_end(key)
                return hit[1]
        prep = self._prepare(image_embeddings, image_pe, no_mask_dense)
        with self._lock:
            self._cache[key] = (image_embeddings, prep)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return prep

    # -- forward --------------------------------------------------------------------------
    def __call__(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        *,
        cached: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Same arguments and results as segment-anything's ``MaskDecoder.forward``.

        ``cached=True`` promises that ``dense_prompt_embeddings`` is the no-mask embedding
        (no mask prompt) and that ``image_embeddings`` is not modified in place later, so the
        per-embedding precomputation may be reused.
        """
        if (
            image_embeddings.shape[0] != 1
            and image_embeddings.shape[0] != sparse_prompt_embeddings.shape[0]
        ):
            raise ValueError("image_embeddings must have batch 1 or the prompts' batch size")
        if cached and dense_prompt_embeddings.shape[0] == 1:
            prep = self.prepared(image_embeddings, image_pe, dense_prompt_embeddings)
        else:
            prep = self._prepare(image_embeddings, image_pe, dense_prompt_embeddings)
        pe = image_pe.float().flatten(2).transpose(1, 2)  # (1, N, C)
        sparse = sparse_prompt_embeddings.float()
        b = sparse.shape[0]
        query_pe = torch.cat([self.output_tokens[None].expand(b, -1, -1), sparse], 1)
        wanted = list(range(1, self.num_mask_tokens) if multimask_output else range(0, 1))
        # only the IoU token and the wanted mask tokens leave the transformer
        queries, keys = self._transformer(query_pe, prep, pe, [0, *(1 + i for i in wanted)])
        masks = self._masks(keys, queries[:, 1:], wanted)
        iou = self._mlp(self.iou_head, queries[:, 0])[:, wanted]
        return masks, iou

    def _transformer(
        self, query_pe: torch.Tensor, prep: _Prepared, pe: torch.Tensor, keep: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two-way transformer: tokens (B, T, C) and image tokens -> (the tokens ``keep``
        (B, len(keep), C), keys (B, N, C)). The final token-to-image attention treats each
        token on its own, so it runs for the kept tokens only."""
        queries = query_pe
        keys = prep.keys
        for i, layer in enumerate(self.layers):
            sa = layer["self_attn"]
            if i == 0:  # the first layer skips the positional encoding and the residual
                queries = sa.full(queries, queries, queries)
            else:
                q = queries + query_pe
                queries = queries + sa.full(q, q, queries)
            queries = _layer_norm(queries, layer["norm1"])
            t2i, i2t = layer["t2i"], layer["i2t"]
            kpe = None if i == 0 else keys + pe
            if i == 0:
                q = t2i.split(t2i.q(queries + query_pe))
                b = q.shape[0]
                att = F.scaled_dot_product_attention(
                    q,
                    t2i.split(prep.k1).expand(b, -1, -1, -1),
                    t2i.split(prep.v1).expand(b, -1, -1, -1),
                )
                queries = queries + t2i.out(t2i.merge(att))
            else:
                queries = queries + t2i.tokens_to_image(queries + query_pe, kpe, keys)
            queries = _layer_norm(queries, layer["norm2"])
            queries = queries + layer["mlp2"](F.relu(layer["mlp1"](queries)))
            queries = _layer_norm(queries, layer["norm3"])
            tok = queries + query_pe
            keys = i2t.image_to_tokens(kpe, tok, queries, keys, prep.q1t if i == 0 else None)
            keys = _layer_norm(keys, layer["norm4"])
        queries, query_pe = queries[:, keep], query_pe[:, keep]
        att = self.final_attn.tokens_to_image(queries + query_pe, keys + pe, keys)
        queries = _layer_norm(queries + att, self.norm_final)
        return queries, keys

    def _linear(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, gelu: bool = False
    ) -> torch.Tensor:
        """``x @ weight.T + bias`` (then GELU), through oneDNN's fused kernel where it works."""
        if self._onednn and x.device.type == "cpu":
            return torch.ops.mkldnn._linear_pointwise(
                x, weight, bias, "gelu" if gelu else "none", [], "none" if gelu else ""
            )
        y = F.linear(x, weight, bias)
        return F.gelu(y) if gelu else y

    @staticmethod
    def _mlp(layers: list[_Linear], x: torch.Tensor) -> torch.Tensor:
        for j, layer in enumerate(layers):
            x = layer(x)
            if j < len(layers) - 1:
                x = F.relu(x)
        return x

    def _masks(
        self, keys: torch.Tensor, mask_tokens: torch.Tensor, wanted: list[int]
    ) -> torch.Tensor:
        """Upscale the image tokens (B, N, C) 4x and dot them with the hypernetwork outputs of
        the mask tokens (B, K, C), which are the ``wanted`` ones, in that order: (B, K, 4h,
        4w) logits."""
        b, n, _ = keys.shape
        side = math.isqrt(n)
        w1, b1 = self.up1
        y = self._linear(keys.reshape(b * n, -1), w1, b1).view(b * n * 4, self.up1_out)
        y = F.gelu(_layer_norm(y, self.up_norm, LN2D_EPS))
        w2, b2 = self.up2
        z = self._linear(y, w2, b2, gelu=True)  # (B*N*4, 4*out2), sub-pixel offsets (dy2, dx2)
        hyper = torch.stack(
            [self._mlp(self.hyper[i], mask_tokens[:, j]) for j, i in enumerate(wanted)], 1
        )
        k = len(wanted)
        logits = torch.bmm(z.view(b, n * 16, self.up2_out), hyper.transpose(1, 2))  # (B, N*16, K)
        # (B, i, j, dy1, dx1, dy2, dx2, K) -> (B, K, i, dy1, dy2, j, dx1, dx2)
        logits = logits.view(b, side, side, 2, 2, 2, 2, k).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return logits.reshape(b, k, side * 4, side * 4)
