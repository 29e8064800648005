"""A decoder-only transformer in the nanoGPT style: pre-LayerNorm blocks, causal
self-attention, a GELU MLP, tied input and output embeddings.

Positions are a choice (none, sinusoidal, learned, rotary) so the positional experiment can
compare them on one architecture. Attention is written out (not fused) so that its weights
can be returned and its logits scaled; a KV cache makes generation one token per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from app.demo.lm.config import GPTConfig

KV = tuple[torch.Tensor, torch.Tensor]  # keys, values: (B, nh, T, hs)


@dataclass
class Inspect:
    """What a forward pass can be asked to record or change."""

    logit_scale: float = 1.0  # multiplies every attention logit (1: the trained model)
    keep_attention: bool = False
    attention: list[torch.Tensor] | None = None  # per layer (B, nh, T, T), filled in


def sinusoidal(n: int, d: int) -> torch.Tensor:
    """(n, d) fixed sine/cosine positions of Vaswani et al. 2017."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


def rotate(x: torch.Tensor, offset: int) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021) of (B, nh, T, hs) at positions offset..."""
    hs, t = x.size(-1), x.size(-2)
    freq = 1.0 / (10000 ** (torch.arange(0, hs, 2, device=x.device, dtype=x.dtype) / hs))
    angle = torch.arange(offset, offset + t, device=x.device, dtype=x.dtype)[:, None] * freq
    cos, sin = angle.cos(), angle.sin()  # (T, hs/2)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


class CausalSelfAttention(nn.Module):  # type: ignore[misc]  # torch is untyped here
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.n_head, self.rotary = config.n_head, config.position == "rotary"
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(
        self, x: torch.Tensor, past: KV | None, inspect: Inspect | None
    ) -> tuple[torch.Tensor, KV]:
        b, t, c = x.shape  # batch, new tokens, n_embd
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        offset = 0 if past is None else past[0].size(2)
        if self.rotary:
            q, k = rotate(q, offset), rotate(k, offset)
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        total = k.size(2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))  # (B, nh, t, total)
        if inspect is not None and inspect.logit_scale != 1.0:
            att = att * inspect.logit_scale
        # query i (at position offset + i) sees keys 0..offset + i
        mask = torch.ones(t, total, dtype=torch.bool, device=x.device).tril(offset)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        if inspect is not None and inspect.keep_attention:
            assert inspect.attention is not None
            inspect.attention.append(att.detach())
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.proj(y), (k, v)


class Block(nn.Module):  # type: ignore[misc]
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(config.n_embd), nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
        )

    def forward(
        self, x: torch.Tensor, past: KV | None, inspect: Inspect | None
    ) -> tuple[torch.Tensor, KV]:
        a, present = self.attn(self.ln_1(x), past, inspect)
        x = x + a
        return x + self.mlp(self.ln_2(x)), present


class GPT(nn.Module):  # type: ignore[misc]
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = (
            nn.Embedding(config.block_size, config.n_embd) if config.position == "learned" else None
        )
        if config.position == "sinusoidal":
            self.register_buffer(
                "table", sinusoidal(config.block_size, config.n_embd), persistent=False
            )
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.wte.weight  # tied (Press and Wolf 2017)
        self.apply(_init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.n_layer))

    def forward(
        self,
        idx: torch.Tensor,
        past: list[KV] | None = None,
        inspect: Inspect | None = None,
    ) -> tuple[torch.Tensor, list[KV]]:
        """(B, t) token ids -> (B, t, vocab) logits and the keys/values to pass next time."""
        _, t = idx.shape
        offset = 0 if past is None else past[0][0].size(2)
        if offset + t > self.config.block_size:
            raise ValueError(
                f"context of {offset + t} tokens > block_size {self.config.block_size}"
            )
        x = self.wte(idx)  # (B, t, n_embd)
        pos = torch.arange(offset, offset + t, device=idx.device)
        if self.wpe is not None:
            x = x + self.wpe(pos)
        elif self.config.position == "sinusoidal":
            x = x + self.table[pos]
        if inspect is not None and inspect.keep_attention and inspect.attention is None:
            inspect.attention = []
        presents: list[KV] = []
        for i, block in enumerate(self.blocks):
            x, present = block(x, None if past is None else past[i], inspect)
            presents.append(present)
        return self.head(self.ln_f(x)), presents

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy, in nats."""
        logits, _ = self(idx)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, 0.0, 0.02)
