"""The plain reference for the batched engine: one ordinary nn.Module per variant.

Each variant is built from nn.Linear / nn.LayerNorm / nn.BatchNorm1d, initialized through
torch's own init functions after torch.manual_seed(seed), and trained in its own loop with
autograd and torch.optim. It shares only the data (nets.make_task, nets.batch_indices) with
the engine. The tests check that the engine reproduces its numbers; benchmarks/demo.py
times it as the one-variant-at-a-time baseline. It uses the global RNG: not for the server.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from app.demo.engine import configure_cpu, recorded_steps
from app.demo.nets import ACTIVATIONS, batch_indices, make_task
from app.demo.presets import PRESETS, DemoConfig, Variant


def _reinit(lin: nn.Linear, scheme: str) -> None:
    if scheme == "default":
        lin.reset_parameters()
    elif scheme == "xavier":
        nn.init.xavier_uniform_(lin.weight)
        nn.init.zeros_(lin.bias)
    else:  # kaiming
        nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        nn.init.zeros_(lin.bias)


class RefBlock(nn.Module):  # type: ignore[misc]  # torch is untyped here
    def __init__(
        self, width: int, act: str, residual: bool, scale: float, norm: str, position: str
    ) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.act, self.residual, self.scale, self.position = act, residual, scale, position
        self.norm: nn.Module | None = {
            "none": None,
            "layernorm": nn.LayerNorm(width),
            "batchnorm": nn.BatchNorm1d(width),
        }[norm]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        norm = self.norm
        u = norm(h) if norm is not None and self.position == "pre" else h
        f = ACTIVATIONS[self.act](self.fc(u))
        out = h + self.scale * f if self.residual else f
        return norm(out) if norm is not None and self.position == "post" else out


class RefMLP(nn.Module):  # type: ignore[misc]  # torch is untyped here
    def __init__(
        self, config: DemoConfig, v: Variant, d_in: int, d_out: int, norm_position: str = "pre"
    ) -> None:
        super().__init__()
        w = config.width
        self.stem = nn.Linear(d_in, w)
        self.blocks = nn.ModuleList(
            RefBlock(
                w,
                v.activation or config.activation,
                bool(v.residual),
                config.branch_scale_value(),
                v.norm or config.norm,
                norm_position,
            )
            for _ in range(config.depth)
        )
        self.head = nn.Linear(w, d_out)
        torch.manual_seed(config.seed)
        for lin in [self.stem, *(b.fc for b in self.blocks), self.head]:
            _reinit(lin, v.init or config.init)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.stem(x)
        inputs = []
        for block in self.blocks:
            h.retain_grad()
            inputs.append(h)
            h = block(h)
        return self.head(h), inputs

    def weights(self) -> list[list[torch.Tensor]]:
        return [[b.fc.weight] for b in self.blocks]


class RefAttention(nn.Module):  # type: ignore[misc]  # torch is untyped here
    def __init__(self, width: int) -> None:
        super().__init__()
        self.c_attn = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, W)
        q, k, v = self.c_attn(x).split(x.shape[-1], dim=-1)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(x.shape[-1]), dim=-1)
        return self.c_proj(att @ v)


class RefTBlock(nn.Module):  # type: ignore[misc]  # torch is untyped here
    def __init__(self, width: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.ln1, self.attn = nn.LayerNorm(width), RefAttention(width)
        self.ln2 = nn.LayerNorm(width)
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def _sub(self, x: torch.Tensor, ln: nn.Module, f: Any) -> torch.Tensor:
        if self.kind == "pre-ln":
            return x + f(ln(x))
        if self.kind == "post-ln":
            return ln(x + f(x))
        return ln(f(x))  # no-residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._sub(x, self.ln1, self.attn)
        return self._sub(x, self.ln2, lambda u: self.fc2(F.relu(self.fc1(u))))


class RefTransformer(nn.Module):  # type: ignore[misc]  # torch is untyped here
    def __init__(self, config: DemoConfig, v: Variant, d_in: int, d_out: int) -> None:
        super().__init__()
        w, kind = config.width, v.block or "pre-ln"
        self.tok_w = nn.Parameter(torch.empty(d_in, w))
        self.tok_b = nn.Parameter(torch.empty(d_in, w))
        self.blocks = nn.ModuleList(RefTBlock(w, kind) for _ in range(config.depth))
        self.ln_f = nn.LayerNorm(w) if kind == "pre-ln" else None
        self.head = nn.Linear(w, d_out)
        torch.manual_seed(config.seed)
        nn.init.normal_(self.tok_w)
        nn.init.normal_(self.tok_b)
        for b in self.blocks:
            for j in range(3):  # q, k, v: each its own Xavier matrix
                nn.init.xavier_uniform_(b.attn.c_attn.weight[j * w : (j + 1) * w])
            nn.init.zeros_(b.attn.c_attn.bias)
            for lin in (b.attn.c_proj, b.fc1, b.fc2):
                _reinit(lin, "xavier")
        _reinit(self.head, "xavier")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = x[:, :, None] * self.tok_w + self.tok_b  # (B, T, W)
        inputs = []
        for block in self.blocks:
            h.retain_grad()
            inputs.append(h)
            h = block(h)
        if self.ln_f is not None:
            h = self.ln_f(h)
        return self.head(h), inputs  # (B, T, O)

    def weights(self) -> list[list[torch.Tensor]]:
        return [
            [b.attn.c_attn.weight, b.attn.c_proj.weight, b.fc1.weight, b.fc2.weight]
            for b in self.blocks
        ]


def _norm(ts: list[torch.Tensor]) -> float:
    return float(math.sqrt(sum(float(t.double().square().sum()) for t in ts)))


def run_variant(config: DemoConfig, v: Variant) -> dict[str, Any]:
    """Train one variant on its own; the same result layout as one engine variant."""
    preset = PRESETS[config.preset]
    data = make_task(config.task, config.seed)
    idx = batch_indices(config.seed, config.steps, config.batch_size)
    model: RefMLP | RefTransformer
    if preset.arch == "transformer":
        d_out = data.d_out if data.classification else 1
        model = RefTransformer(config, v, data.d_in, d_out)
    else:
        model = RefMLP(config, v, data.d_in, data.d_out)
    if preset.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    record_at = set(recorded_steps(config.steps))
    losses: list[float] = []
    recorded = []
    for step in range(config.steps + 1):
        x, y = data.x[idx[step]], data.y[idx[step]]
        out, inputs = model(x)
        if data.classification:
            if out.dim() == 3:  # every token predicts the class
                loss = F.cross_entropy(
                    out.reshape(-1, out.shape[-1]), y.repeat_interleave(out.shape[1])
                )
            else:
                loss = F.cross_entropy(out, y)
        else:
            loss = F.mse_loss(out.reshape(y.shape), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        losses.append(loss.item())
        if step in record_at:
            layers = [
                {
                    "index": i + 1,
                    "weight_grad_norm": _norm([w.grad for w in ws if w.grad is not None]),
                    "activation_grad_norm": _norm([h.grad]) if h.grad is not None else 0.0,
                }
                for i, (ws, h) in enumerate(zip(model.weights(), inputs, strict=True))
            ]
            recorded.append({"step": step, "layers": layers})
        if step < config.steps:
            opt.step()
    return {
        "name": v.name,
        "label": v.label,
        "layers": recorded[0]["layers"],
        "loss": losses,
        "recorded_steps": recorded,
    }


def run_reference(config: DemoConfig, threads: int | None = None) -> list[dict[str, Any]]:
    """Every variant of the config, one after another (the engine's `variants` list)."""
    configure_cpu(threads)
    return [run_variant(config, v) for v in PRESETS[config.preset].variants]
