"""The plain reference for the batched gradient-flow engine: one ordinary nn.Module per variant.

micrograd-style oracle. Each variant is built from nn.Linear / nn.LayerNorm / nn.BatchNorm1d
and nn's own activation modules, initialized through torch's own init functions after
torch.manual_seed(seed), and trained in its own loop with autograd and torch.optim. It shares
only the data (app.demo.tasks.make_task, batch_indices) with the engine, and reads the
experiment's variants and parameters; the network, the loss, the optimizer, the recorded steps
and the norms are written here again, plainly. It uses the global RNG: a test oracle only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from app.demo.experiment import Experiment
from app.demo.families.gradient_flow import GradientVariant
from app.demo.families.gradient_flow_params import GradientFlowParams
from app.demo.tasks import batch_indices, make_task

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}
RECORDED = 5  # the engine's contract: initialization and 5 evenly spaced steps


def recorded_steps(steps: int) -> list[int]:
    """Step 0 and round(steps * i / 5) for i = 1..5, without repeats."""
    return sorted({0, *(round(steps * i / RECORDED) for i in range(1, RECORDED + 1))})


def _reinit(lin: nn.Linear, scheme: str) -> None:
    if scheme == "default":
        lin.reset_parameters()
    elif scheme == "xavier":
        nn.init.xavier_uniform_(lin.weight)
        nn.init.zeros_(lin.bias)
    elif scheme == "kaiming":
        nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        nn.init.zeros_(lin.bias)
    else:
        raise ValueError(scheme)


# ----------------------------------------------------------------------------- MLP


@dataclass(frozen=True)
class MLPSpec:
    """One plain MLP: stem Linear(d_in, width) -> depth blocks -> head Linear(width, d_out)."""

    width: int
    depth: int
    activation: str = "relu"
    residual: bool = False
    scale: float = 1.0  # residual branch scale s in h + s*f(h)
    norm: str = "none"  # none | layernorm | batchnorm
    init: str = "default"
    norm_position: str = "pre"  # pre: f(norm(h)); post: norm(h + s*f(h))


class RefBlock(nn.Module):  # type: ignore[misc]  # torch is untyped here
    def __init__(self, spec: MLPSpec) -> None:
        super().__init__()
        self.spec = spec
        self.fc = nn.Linear(spec.width, spec.width)
        self.act = ACTIVATIONS[spec.activation]()
        self.norm: nn.Module | None = {
            "none": None,
            "layernorm": nn.LayerNorm(spec.width),
            "batchnorm": nn.BatchNorm1d(spec.width),
        }[spec.norm]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        spec, norm = self.spec, self.norm
        u = norm(h) if norm is not None and spec.norm_position == "pre" else h
        f = self.act(self.fc(u))
        out = h + spec.scale * f if spec.residual else f
        return norm(out) if norm is not None and spec.norm_position == "post" else out


class RefMLP(nn.Module):  # type: ignore[misc]  # torch is untyped here
    def __init__(self, spec: MLPSpec, d_in: int, d_out: int, seed: int) -> None:
        super().__init__()
        self.stem = nn.Linear(d_in, spec.width)
        self.blocks = nn.ModuleList(RefBlock(spec) for _ in range(spec.depth))
        self.head = nn.Linear(spec.width, d_out)
        torch.manual_seed(seed)
        for lin in [self.stem, *(b.fc for b in self.blocks), self.head]:
            _reinit(lin, spec.init)

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


# ----------------------------------------------------------------------------- transformer


class RefAttention(nn.Module):  # type: ignore[misc]  # torch is untyped here
    """Single-head self-attention, no mask."""

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
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.ReLU(), nn.Linear(4 * width, width)
        )

    def _sub(self, x: torch.Tensor, ln: nn.Module, f: nn.Module) -> torch.Tensor:
        if self.kind == "pre-ln":
            return x + f(ln(x))
        if self.kind == "post-ln":
            return ln(x + f(x))
        return ln(f(x))  # no-residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._sub(self._sub(x, self.ln1, self.attn), self.ln2, self.mlp)


class RefTransformer(nn.Module):  # type: ignore[misc]  # torch is untyped here
    """One token per input feature (x_t * tok_w[t] + tok_b[t]), blocks, a head per token."""

    def __init__(self, width: int, depth: int, kind: str, d_in: int, d_out: int, seed: int) -> None:
        super().__init__()
        self.tok_w = nn.Parameter(torch.empty(d_in, width))
        self.tok_b = nn.Parameter(torch.empty(d_in, width))
        self.blocks = nn.ModuleList(RefTBlock(width, kind) for _ in range(depth))
        self.ln_f = nn.LayerNorm(width) if kind == "pre-ln" else None
        self.head = nn.Linear(width, d_out)
        torch.manual_seed(seed)
        nn.init.normal_(self.tok_w)
        nn.init.normal_(self.tok_b)
        for b in self.blocks:
            for j in range(3):  # q, k, v: each its own Xavier matrix
                nn.init.xavier_uniform_(b.attn.c_attn.weight[j * width : (j + 1) * width])
            nn.init.zeros_(b.attn.c_attn.bias)
            for lin in (b.attn.c_proj, b.mlp[0], b.mlp[2]):
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
            [b.attn.c_attn.weight, b.attn.c_proj.weight, b.mlp[0].weight, b.mlp[2].weight]
            for b in self.blocks
        ]


# ----------------------------------------------------------------------------- training


def _norm(ts: list[torch.Tensor]) -> float:
    return float(math.sqrt(sum(float(t.double().square().sum()) for t in ts)))


def mlp_spec(params: GradientFlowParams, v: GradientVariant) -> MLPSpec:
    """The variant's network: its own fields, else the run's parameters (relu, default, none)."""
    scale = getattr(params, "branch_scale", "1/sqrt(depth)")
    return MLPSpec(
        width=params.width,
        depth=params.depth,
        activation=str(v.activation or getattr(params, "activation", "relu")),
        residual=bool(v.residual),
        scale=1.0 / math.sqrt(params.depth) if scale == "1/sqrt(depth)" else 1.0,
        norm=str(v.norm or getattr(params, "norm", "none")),
        init=str(v.init or getattr(params, "init", "default")),
    )


def run_variant(params: GradientFlowParams, v: GradientVariant) -> dict[str, Any]:
    """Train one variant on its own; the layout of one engine VariantResult."""
    data = make_task(params.task, params.seed)
    idx = batch_indices(params.seed, params.steps, params.batch_size)
    model: RefMLP | RefTransformer
    if params.arch == "transformer":
        d_out = data.d_out if data.classification else 1
        model = RefTransformer(
            params.width, params.depth, v.block or "pre-ln", data.d_in, d_out, params.seed
        )
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
    else:
        model = RefMLP(mlp_spec(params, v), data.d_in, data.d_out, params.seed)
        opt = torch.optim.SGD(model.parameters(), lr=params.lr, momentum=0.9)
    record_at = set(recorded_steps(params.steps))
    losses: list[float] = []
    recorded = []
    for step in range(params.steps + 1):
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
        if step < params.steps:
            opt.step()
    return {
        "name": v.name,
        "label": v.label,
        "layers": recorded[0]["layers"],
        "loss": losses,
        "recorded_steps": recorded,
    }


def run_reference(experiment: Experiment, params: GradientFlowParams) -> list[dict[str, Any]]:
    """Every variant of the experiment, one after another, on one CPU thread."""
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as the engine runs (and as a float32 GPU does)
    variants = [v for v in experiment.variants if isinstance(v, GradientVariant)]
    assert len(variants) == len(experiment.variants), experiment.name
    return [run_variant(params, v) for v in variants]
