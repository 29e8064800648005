"""The gradient-flow family's networks, K variants at once (the data are in tasks.py).

Every parameter has a leading variant dimension K, so all variants of an experiment run in
the same batched matmuls (torch.baddbmm). Where variants differ in structure (activation,
normalization, residual path) the op runs on contiguous runs of variants that share it.

Shapes: K variants, L layers (blocks), B batch, D input features, W width, T tokens (= D),
O outputs. Weights are stored transposed, (K, in, out), and the per-block ones stacked as
(L, K, in, out): x @ w needs no transpose and the optimizer steps a handful of tensors.

Initialization is per variant, in module order, from a generator seeded with the run's seed:
exactly what nn.Linear's init (or xavier_uniform_ / kaiming_normal_) draws after
torch.manual_seed(seed), so tests/demo_reference.py rebuilds it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,  # exact (erf) GELU, as nn.GELU()
}
LN_EPS = 1e-5  # nn.LayerNorm's and nn.BatchNorm1d's default

Run = tuple[object, int, int]  # (key, start, end): variants start..end-1 share key


def runs_of(keys: Sequence[object]) -> list[Run]:
    """Split per-variant keys into contiguous runs of equal keys."""
    out: list[Run] = []
    start = 0
    for k in range(1, len(keys) + 1):
        if k == len(keys) or keys[k] != keys[start]:
            out.append((keys[start], start, k))
            start = k
    return out


def per_run(
    runs: list[Run], x: torch.Tensor, fn: Callable[[object, int, int, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """fn(key, start, end, x[start:end]) for every run, concatenated along the variant dim."""
    if len(runs) == 1:
        key, s, e = runs[0]
        return fn(key, s, e, x)
    return torch.cat([fn(key, s, e, x[s:e]) for key, s, e in runs], dim=0)


def init_linear_(weight: torch.Tensor, bias: torch.Tensor, scheme: str, g: torch.Generator) -> None:
    """Initialize ONE variant's linear layer, weight (out, in) and bias (out,), in place."""
    if scheme == "default":  # nn.Linear.reset_parameters: U(-1/sqrt(in), 1/sqrt(in)) for both
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=g)
        bound = 1.0 / math.sqrt(weight.shape[1])
        nn.init.uniform_(bias, -bound, bound, generator=g)
    elif scheme == "xavier":  # Glorot & Bengio 2010, "normalized initialization"
        nn.init.xavier_uniform_(weight, generator=g)
        nn.init.zeros_(bias)
    elif scheme == "kaiming":  # He et al. 2015: N(0, 2/in), the ReLU gain, whatever the unit
        nn.init.kaiming_normal_(weight, nonlinearity="relu", generator=g)
        nn.init.zeros_(bias)
    else:
        raise ValueError(f"unknown init {scheme!r}")


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched linear layer: x (K, N, in) @ w (K, in, out) + b (K, 1, out) -> (K, N, out)."""
    return torch.baddbmm(b, x, w)


def init_stacked_(
    weight: torch.Tensor, bias: torch.Tensor, scheme: str, g: torch.Generator
) -> None:
    """Initialize one variant's slice of a stacked layer stored transposed: weight (in, out),
    bias (out,); draws exactly what nn.Linear(in, out) with this scheme would."""
    w = torch.empty(weight.shape[1], weight.shape[0])  # nn.Linear's (out, in)
    init_linear_(w, bias, scheme, g)
    weight.copy_(w.T)


def layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the last dim with per-variant affine: x (K, ..., W), w/b broadcastable."""
    return torch.addcmul(b, F.layer_norm(x, x.shape[-1:], eps=LN_EPS), w)


def batch_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Training-mode BatchNorm1d per variant and feature over the batch: x (K, B, W)."""
    k, bsz, width = x.shape
    flat = x.transpose(0, 1).reshape(bsz, k * width)  # (B, K*W): one channel per (variant, unit)
    y = F.batch_norm(flat, None, None, w.reshape(-1), b.reshape(-1), training=True, eps=LN_EPS)
    return y.view(bsz, k, width).transpose(0, 1)


# ----------------------------------------------------------------------------- MLP


@dataclass(frozen=True)
class MLPVariant:
    residual: bool = False  # h + s*f(h) instead of f(h)
    branch_scale: float = 1.0  # s, the residual branch's scale
    activation: str = "relu"  # relu | tanh | sigmoid | gelu
    init: str = "default"  # default (torch's) | xavier | kaiming
    norm: str = "none"  # none | layernorm | batchnorm
    norm_position: Literal["pre", "post"] = "pre"  # pre: f(norm(h)); post: norm(h + s*f(h))


@dataclass(frozen=True)
class MLPConfig:
    variants: tuple[MLPVariant, ...]
    d_in: int = 16  # input features: 16 for the teacher, 2 for spirals
    d_out: int = 16  # outputs: 16 teacher outputs, or 2 logits for spirals
    width: int = 64  # units per hidden layer
    depth: int = 32  # hidden layers (the reported layers)


class BatchedMLP(nn.Module):  # type: ignore[misc]  # torch is untyped here
    """stem Linear(D, W) -> depth x block -> head Linear(W, O), for K variants at once.

    block: u = norm(h) if pre-norm else h; f = act(u @ W + b);
           h = h + s*f if residual else f; h = norm(h) if post-norm.
    The hidden layers' weights are one (L, K, W, W) tensor, so the optimizer steps a handful
    of tensors rather than 2L per variant.
    """

    def __init__(self, cfg: MLPConfig, seed: int) -> None:
        super().__init__()
        self.cfg = cfg
        k, d, w, o, depth = len(cfg.variants), cfg.d_in, cfg.width, cfg.d_out, cfg.depth
        self.stem_w = nn.Parameter(torch.empty(k, d, w))  # (K, in, out)
        self.stem_b = nn.Parameter(torch.empty(k, 1, w))
        self.fc_w = nn.Parameter(torch.empty(depth, k, w, w))  # (L, K, in, out)
        self.fc_b = nn.Parameter(torch.empty(depth, k, 1, w))
        self.head_w = nn.Parameter(torch.empty(k, w, o))
        self.head_b = nn.Parameter(torch.empty(k, 1, o))
        self.has_norm = any(v.norm != "none" for v in cfg.variants)
        if self.has_norm:  # gain 1, shift 0; variants without normalization ignore theirs
            self.norm_w = nn.Parameter(torch.ones(depth, k, 1, w))
            self.norm_b = nn.Parameter(torch.zeros(depth, k, 1, w))
        with torch.no_grad():
            for i, v in enumerate(cfg.variants):
                g = torch.Generator().manual_seed(seed)  # in nn.Module order: stem, fc..., head
                init_stacked_(self.stem_w[i], self.stem_b[i, 0], v.init, g)
                for layer in range(depth):
                    init_stacked_(self.fc_w[layer, i], self.fc_b[layer, i, 0], v.init, g)
                init_stacked_(self.head_w[i], self.head_b[i, 0], v.init, g)

        vs = cfg.variants
        self._act_runs = runs_of([v.activation for v in vs])
        self._pre_runs = runs_of([v.norm if v.norm_position == "pre" else "none" for v in vs])
        self._post_runs = runs_of([v.norm if v.norm_position == "post" else "none" for v in vs])
        self._any_post = any(v.norm != "none" and v.norm_position == "post" for v in vs)
        res = [v.residual for v in vs]
        self._all_plain, self._all_res = not any(res), all(res)
        scales = {v.branch_scale for v in vs}
        self._scale = scales.pop() if len(scales) == 1 else None
        # mixed plain/residual: h_new = a*h + s*f with a = 1 (residual) or 0 (plain) and
        # s = branch scale (plain: 1), exact for finite h
        self.register_buffer(
            "_a", torch.tensor([float(r) for r in res]).view(k, 1, 1), persistent=False
        )
        self.register_buffer(
            "_s",
            torch.tensor([v.branch_scale if v.residual else 1.0 for v in vs]).view(k, 1, 1),
            persistent=False,
        )

    def _norm(
        self, runs: list[Run], h: torch.Tensor, nw: torch.Tensor, nb: torch.Tensor
    ) -> torch.Tensor:
        if len(runs) == 1 and runs[0][0] == "none":
            return h

        def apply(kind: object, s: int, e: int, x: torch.Tensor) -> torch.Tensor:
            if kind == "layernorm":
                return layer_norm(x, nw[s:e], nb[s:e])
            if kind == "batchnorm":
                return batch_norm(x, nw[s:e], nb[s:e])
            return x

        return per_run(runs, h, apply)

    def _act(self, z: torch.Tensor) -> torch.Tensor:
        return per_run(self._act_runs, z, lambda a, s, e, x: ACTIVATIONS[str(a)](x))

    def forward(
        self, x: torch.Tensor, keep_inputs: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, D) shared by all variants -> out (K, B, O), block inputs [(K, B, W)] * depth.

        With keep_inputs, each block's input keeps its .grad after backward."""
        k = len(self.cfg.variants)
        ws, bs = self.fc_w.unbind(0), self.fc_b.unbind(0)  # one node each, not L selects
        if self.has_norm:
            nws, nbs = self.norm_w.unbind(0), self.norm_b.unbind(0)
        h = linear(x.expand(k, *x.shape), self.stem_w, self.stem_b)  # (K, B, W)
        inputs = []
        for layer in range(self.cfg.depth):
            if keep_inputs:
                h.retain_grad()
                inputs.append(h)
            u = self._norm(self._pre_runs, h, nws[layer], nbs[layer]) if self.has_norm else h
            f = self._act(linear(u, ws[layer], bs[layer]))  # (K, B, W)
            if self._all_plain:
                h = f
            elif self._all_res and self._scale is not None:
                h = torch.add(h, f, alpha=self._scale)
            else:
                h = torch.addcmul(h * self._a, f, self._s)
            if self._any_post:
                h = self._norm(self._post_runs, h, nws[layer], nbs[layer])
        return linear(h, self.head_w, self.head_b), inputs  # (K, B, O)

    def block_weight_grad_norms(self) -> torch.Tensor:
        """Frobenius norm of each hidden layer's weight gradient, in float64: (K, depth)."""
        return gnorms(self.fc_w).T


def gnorms(p: torch.Tensor) -> torch.Tensor:
    """Per-(layer, variant) Frobenius norm of an (L, K, ...) parameter's gradient, summed in
    float64 (the squares of a vanishing gradient underflow float32): (L, K)."""
    if p.grad is None:
        return torch.zeros(p.shape[:2], device=p.device, dtype=torch.float64)
    return torch.linalg.vector_norm(p.grad.flatten(2), dim=2, dtype=torch.float64)
