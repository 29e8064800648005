"""The gradient-flow family's transformer blocks, K variants at once (Post-LN, Pre-LN, none).

The same stacked-weights layout as nets.py's MLP: per-block weights are (L, K, in, out), and
variants that differ in block type run on contiguous runs of variants that share it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from app.demo.nets import gnorms, init_stacked_, layer_norm, linear


@dataclass(frozen=True)
class TransformerConfig:
    blocks: tuple[str, ...]  # per variant: post-ln | pre-ln | no-residual
    d_in: int = 16  # input features; each becomes one token, so T = d_in
    d_out: int = 1  # outputs per token: 1 (token t predicts teacher output t), 2 for spirals
    width: int = 64  # model dimension W
    n_head: int = 1  # attention heads, each of size W / n_head
    depth: int = 6  # transformer blocks
    mlp_ratio: int = 4  # MLP hidden = mlp_ratio * W


class BatchedTransformer(nn.Module):  # type: ignore[misc]  # torch is untyped here
    """Feature tokens -> depth x (self-attention, MLP) blocks -> a prediction per token.

    token t of example x: x_t * tok_w[t] + tok_b[t] (one token per input feature, as the
    FT-Transformer tokenizer). Blocks, with F the attention or the MLP sublayer:
      post-ln:     h = LN(h + F(h))          (Vaswani et al. 2017)
      pre-ln:      h = h + F(LN(h)), and a final LN before the head (Xiong et al. 2020)
      no-residual: h = LN(F(h))
    Linear layers use Xavier init with zero biases (q, k, v each its own Xavier matrix),
    tokens N(0, 1), as in the setting Xiong et al. analyse.
    """

    def __init__(self, cfg: TransformerConfig, seed: int) -> None:
        super().__init__()
        self.cfg = cfg
        k, t, w, o, depth = len(cfg.blocks), cfg.d_in, cfg.width, cfg.d_out, cfg.depth
        hid = cfg.mlp_ratio * w

        def stacked(*shape: int, fill: float | None = None) -> nn.Parameter:
            """One (L, K, *shape) parameter for a layer of every block and variant."""
            p = torch.empty(depth, k, *shape)
            return nn.Parameter(p if fill is None else p.fill_(fill))

        self.tok_w = nn.Parameter(torch.empty(k, t, w))
        self.tok_b = nn.Parameter(torch.empty(k, t, w))
        self.attn_w, self.attn_b = stacked(w, 3 * w), stacked(1, 3 * w)  # fused q, k, v
        self.proj_w, self.proj_b = stacked(w, w), stacked(1, w)
        self.fc1_w, self.fc1_b = stacked(w, hid), stacked(1, hid)
        self.fc2_w, self.fc2_b = stacked(hid, w), stacked(1, w)
        self.ln1_w, self.ln1_b = stacked(1, 1, w, fill=1.0), stacked(1, 1, w, fill=0.0)
        self.ln2_w, self.ln2_b = stacked(1, 1, w, fill=1.0), stacked(1, 1, w, fill=0.0)
        self.lnf_w = nn.Parameter(torch.ones(k, 1, 1, w))  # used by pre-ln variants only
        self.lnf_b = nn.Parameter(torch.zeros(k, 1, 1, w))
        self.head_w = nn.Parameter(torch.empty(k, w, o))
        self.head_b = nn.Parameter(torch.empty(k, 1, o))
        with torch.no_grad():
            for i in range(k):
                g = torch.Generator().manual_seed(seed)
                nn.init.normal_(self.tok_w[i], generator=g)
                nn.init.normal_(self.tok_b[i], generator=g)
                for layer in range(depth):
                    aw, ab = self.attn_w[layer, i], self.attn_b[layer, i, 0]
                    for j in range(3):  # q, k, v: each its own (W, W) Xavier matrix
                        part = slice(j * w, (j + 1) * w)
                        init_stacked_(aw[:, part], ab[part], "xavier", g)
                    for pw, pb in (
                        (self.proj_w, self.proj_b),
                        (self.fc1_w, self.fc1_b),
                        (self.fc2_w, self.fc2_b),
                    ):
                        init_stacked_(pw[layer, i], pb[layer, i, 0], "xavier", g)
                init_stacked_(self.head_w[i], self.head_b[i, 0], "xavier", g)
        # per-variant masks (K, 1, 1, 1): LN before the branch, LN after the sum, residual add
        kinds = cfg.blocks
        for name, on in (
            ("_pre", [b == "pre-ln" for b in kinds]),
            ("_post", [b in ("post-ln", "no-residual") for b in kinds]),
            ("_res", [b in ("post-ln", "pre-ln") for b in kinds]),
        ):
            self.register_buffer(name, torch.tensor(on).view(k, 1, 1, 1), persistent=False)
            setattr(self, "_any" + name, any(on))
        self._mixed = len(set(kinds)) > 1

    def _attn(self, u: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        k, b, t, w = u.shape
        nh = self.cfg.n_head
        qkv = linear(u.reshape(k, b * t, w), p["attn_w"], p["attn_b"])
        # (K, B, T, 3W) -> 3 x (K, B, H, T, W/H)
        q, kk, v = qkv.view(k, b, t, 3, nh, w // nh).permute(3, 0, 1, 4, 2, 5).unbind(0)
        att = torch.softmax(q @ kk.transpose(-1, -2) * (w // nh) ** -0.5, dim=-1)  # (.., T, T)
        y = att @ v  # (K, B, H, T, W/H); plain ops beat SDPA's kernel at these sizes
        y = y.permute(0, 1, 3, 2, 4).reshape(k, b * t, w)  # heads side by side
        return linear(y, p["proj_w"], p["proj_b"]).view(k, b, t, w)

    def _mlp(self, u: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        k, b, t, w = u.shape
        z = F.relu(linear(u.reshape(k, b * t, w), p["fc1_w"], p["fc1_b"]))  # (K, B*T, 4W)
        return linear(z, p["fc2_w"], p["fc2_b"]).view(k, b, t, w)

    def _sublayer(
        self,
        h: torch.Tensor,
        ln_w: torch.Tensor,
        ln_b: torch.Tensor,
        fn: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """One residual sublayer for every variant: h (K, B, T, W) -> (K, B, T, W).

        Variants differ only in where the LN sits, so the LN runs for all of them and
        torch.where picks per variant (exact: the unpicked branch gets no gradient)."""
        pre, post, res = self._pre, self._post, self._res
        u = h
        if self._any_pre:
            u = (
                torch.where(pre, layer_norm(h, ln_w, ln_b), h)
                if self._mixed
                else (layer_norm(h, ln_w, ln_b))
            )
        f = fn(u)  # the attention or MLP branch, batched over all variants
        y = f
        if self._any_res:
            y = torch.where(res, h + f, f) if self._mixed else h + f
        if self._any_post:
            y = (
                torch.where(post, layer_norm(y, ln_w, ln_b), y)
                if self._mixed
                else (layer_norm(y, ln_w, ln_b))
            )
        return y

    def forward(
        self, x: torch.Tensor, keep_inputs: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, T) shared by all variants -> out (K, B, T, O), block inputs [(K, B, T, W)]."""
        h = torch.addcmul(self.tok_b[:, None], x[None, :, :, None], self.tok_w[:, None])
        names = (
            "attn_w",
            "attn_b",
            "proj_w",
            "proj_b",
            "fc1_w",
            "fc1_b",
            "fc2_w",
            "fc2_b",
            "ln1_w",
            "ln1_b",
            "ln2_w",
            "ln2_b",
        )
        per_layer = [
            dict(zip(names, ps, strict=True))  # unbind once, not L selects
            for ps in zip(*(getattr(self, n).unbind(0) for n in names), strict=True)
        ]
        inputs = []
        for p in per_layer:
            if keep_inputs:
                h.retain_grad()
                inputs.append(h)
            h = self._sublayer(h, p["ln1_w"], p["ln1_b"], functools.partial(self._attn, p=p))
            h = self._sublayer(h, p["ln2_w"], p["ln2_b"], functools.partial(self._mlp, p=p))
        if self._any_pre:  # Pre-LN's final LN
            hf = layer_norm(h, self.lnf_w, self.lnf_b)
            h = torch.where(self._pre, hf, h) if self._mixed else hf
        k, b, t, w = h.shape
        out = linear(h.reshape(k, b * t, w), self.head_w, self.head_b)  # (K, B*T, O)
        return out.view(k, b, t, -1), inputs  # (K, B, T, O): one prediction per token

    def block_weight_grad_norms(self) -> torch.Tensor:
        """Frobenius norm of each block's weight gradients (q,k,v, proj, fc1, fc2): (K, depth)."""
        squares = sum(
            gnorms(p).square() for p in (self.attn_w, self.proj_w, self.fc1_w, self.fc2_w)
        )
        return torch.as_tensor(squares).sqrt().T
