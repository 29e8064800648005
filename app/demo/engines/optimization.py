"""Optimizers engine: GD, SGD, momentum and Adam on the same ill-conditioned 2-D least squares.

The problem is linear regression with two weights, loss(w) = mean_i (x_i . w - y_i)^2 / 2.
The inputs are whitened so that the Hessian X^T X / n is exactly diag(1/kappa, 1): the
valley is kappa times flatter along w1 than along w2. The targets are shifted so the least-
squares minimum is exactly w = 0, so the loss above the minimum is d^T H d / 2 in closed form
(float64: the 2-D problem is tiny, and excess losses of 1e-12 must not round to 0). Every
optimizer starts at the same point and SGD draws its minibatches from the same data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from app.demo.engines.common import and_list, curve, fmt, loss_chart, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.optimization_params import OptimizersParams
from app.demo.result import Chart, Grid, Number, Series, VariantResult

N_DATA = 256  # examples of the regression
NOISE = 0.5  # std of the target noise: the loss at the minimum is about NOISE^2 / 2
START = (-4.0, 1.0)  # every optimizer starts here; the minimum is at (0, 0)
ADAM_BETAS = (0.9, 0.999)  # Kingma and Ba's defaults
ADAM_EPS = 1e-8
GRID = 41  # contour grid points per axis
PROGRESS_EVERY = 5  # progress events per run
F64 = torch.float64


@dataclass
class Problem:
    x: torch.Tensor  # (N, 2) inputs with X^T X / N = diag(1/kappa, 1)
    y: torch.Tensor  # (N,) targets; least-squares minimum at w = 0
    h: torch.Tensor  # (2,) the Hessian's diagonal
    min_loss: float  # loss at the minimum

    def grad(self, w: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Gradient of the mean loss over all examples (or the minibatch idx): (2,)."""
        x, y = (self.x, self.y) if idx is None else (self.x[idx], self.y[idx])
        return x.T @ (x @ w - y) / len(y)

    def excess(self, w: torch.Tensor) -> torch.Tensor:
        """Loss above the minimum, d^T H d / 2 with d = w - 0; w (..., 2) -> (...)."""
        return 0.5 * (w.square() * self.h).sum(-1)


def make_problem(kappa: float, seed: int) -> Problem:
    """The run's regression from its own generator: whitened inputs, noisy targets."""
    g = torch.Generator().manual_seed(seed + 1)
    h = torch.tensor([1.0 / kappa, 1.0], dtype=F64)
    z = torch.randn(N_DATA, 2, generator=g, dtype=F64)
    chol = torch.linalg.cholesky(z.T @ z / N_DATA)
    x = torch.linalg.solve_triangular(chol, z.T, upper=False).T * h.sqrt()  # (N, 2), exact H
    y = x @ torch.tensor([0.7, -0.3], dtype=F64) + NOISE * torch.randn(
        N_DATA, generator=g, dtype=F64
    )
    w_opt = (x.T @ y / N_DATA) / h  # H is diagonal
    y = y - x @ w_opt  # move the minimum to the origin; the residual is unchanged
    return Problem(x, y, h, min_loss=float(0.5 * y.square().mean()))


# ----------------------------------------------------------------------------- optimizers
# Each update maps (w, gradient, step t >= 1) to the new w; state lives in the closure.

Update = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def sgd_update(lr: float) -> Update:
    return lambda w, g, t: w - lr * g


def momentum_update(lr: float, beta: float) -> Update:
    """Polyak's heavy ball: v = beta v + g; w -= lr v (torch.optim.SGD's form)."""
    v = torch.zeros(2, dtype=F64)

    def update(w: torch.Tensor, g: torch.Tensor, t: int) -> torch.Tensor:
        nonlocal v
        v = beta * v + g
        return w - lr * v

    return update


def adam_update(lr: float) -> Update:
    """Kingma and Ba's Adam with bias correction: each coordinate's step is scaled by the
    running RMS of its own gradient."""
    b1, b2 = ADAM_BETAS
    m = torch.zeros(2, dtype=F64)
    s = torch.zeros(2, dtype=F64)

    def update(w: torch.Tensor, g: torch.Tensor, t: int) -> torch.Tensor:
        nonlocal m, s
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * g.square()
        m_hat, s_hat = m / (1 - b1**t), s / (1 - b2**t)
        return w - lr * m_hat / (s_hat.sqrt() + ADAM_EPS)

    return update


def updates(p: OptimizersParams) -> dict[str, Update]:
    """GD and SGD share the learning rate with momentum; Adam has its own (its step is about
    lr in every coordinate, whatever the gradient's size)."""
    return {
        "gd": sgd_update(p.lr),
        "sgd": sgd_update(p.lr),
        "momentum": momentum_update(p.lr, p.momentum),
        "adam": adam_update(p.adam_lr),
    }


# ----------------------------------------------------------------------------- run


def run(experiment: Experiment, p: OptimizersParams, ctx: RunContext) -> EngineOutput:
    """Every optimizer from the same start; the path, the excess loss and the step sizes."""
    steps = p.steps
    prob = make_problem(p.condition_number, p.seed)
    g = torch.Generator().manual_seed(p.seed + 2)
    idx = torch.randint(0, N_DATA, (steps, p.batch_size), generator=g)  # SGD's minibatches
    ups = updates(p)
    names = [v.name for v in experiment.variants]
    paths = {n: [torch.tensor(START, dtype=F64)] for n in names}
    every = max(1, steps // PROGRESS_EVERY)
    for t in range(1, steps + 1):
        ctx.check(t, steps)
        for n in names:
            w = paths[n][-1]
            grad = prob.grad(w, idx[t - 1] if n == "sgd" else None)
            paths[n].append(ups[n](w, grad, t))
        if ctx.wants_progress and t % every == 0 and t < steps:
            ctx.progress(t, steps, _charts(experiment, prob, _stacked(paths)))
    stacked = _stacked(paths)
    results = [
        VariantResult(name=v.name, label=v.label, metrics=_metrics(prob, stacked[v.name]))
        for v in experiment.variants
    ]
    m = {r.name: r.metrics for r in results}
    run_metrics: dict[str, Number] = {
        "momentum_over_gd_excess": _ratio(m["momentum"]["final_excess"], m["gd"]["final_excess"]),
        "adam_over_gd_excess": _ratio(m["adam"]["final_excess"], m["gd"]["final_excess"]),
        "adam_max_step_over_lr": _ratio(m["adam"]["max_coordinate_step"], p.adam_lr),
        "sgd_rise_fraction": m["sgd"]["rise_fraction"],
    }
    return EngineOutput(
        variants=results,
        charts=_charts(experiment, prob, stacked),
        summary=_summary(results, steps, p.condition_number),
        run_metrics=run_metrics,
    )


def _stacked(paths: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {n: torch.stack(ws) for n, ws in paths.items()}  # (steps + 1, 2)


def _ratio(a: Number, b: Number) -> Number:
    return None if a is None or b is None or b == 0 else a / b


def _metrics(prob: Problem, path: torch.Tensor) -> dict[str, Number]:
    """final_loss (the full-data loss at the end), loss above the minimum, step sizes."""
    excess = prob.excess(path)  # (steps + 1,)
    moves = (path[1:] - path[:-1]).abs()  # (steps, 2)
    # a rise counts when it exceeds float64 rounding (1e-12 of the starting excess)
    rises = (excess[1:] > excess[:-1] + 1e-12 * excess[0]).double()
    return {
        "final_loss": num(float(excess[-1]) + prob.min_loss),
        "final_excess": num(float(excess[-1])),
        "initial_excess": num(float(excess[0])),
        "max_coordinate_step": num(float(moves.max())) if len(moves) else None,
        "rise_fraction": num(float(rises.mean())) if len(rises) else None,
    }


# ----------------------------------------------------------------------------- charts


def _finite_box(stacked: dict[str, torch.Tensor]) -> tuple[float, float, float, float]:
    """The plot box: every finite point, within 3x the start's distance from the minimum."""
    pts = torch.cat(list(stacked.values()))
    pts = pts[torch.isfinite(pts).all(dim=1)]
    cap = 3 * math.hypot(*START)
    pts = pts.clamp(-cap, cap)
    lo, hi = pts.min(0).values, pts.max(0).values
    pad = 0.08 * (hi - lo).clamp(min=0.5)
    return (
        float(lo[0] - pad[0]),
        float(hi[0] + pad[0]),
        float(lo[1] - pad[1]),
        float(hi[1] + pad[1]),
    )


def contour_chart(experiment: Experiment, prob: Problem, stacked: dict[str, torch.Tensor]) -> Chart:
    """Each optimizer's path over a heat map of the loss above the minimum."""
    x0, x1, y0, y1 = _finite_box(stacked)
    gx, gy = torch.linspace(x0, x1, GRID, dtype=F64), torch.linspace(y0, y1, GRID, dtype=F64)
    w = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)  # (GRID y, GRID x, 2)
    z = prob.excess(w)  # z[j][i] at (gx[i], gy[j])
    series = [
        Series(
            label=v.label,
            variant=v.name,
            points=[(float(a), num(float(b))) for a, b in stacked[v.name].tolist()],
        )
        for v in experiment.variants
    ]
    far = {n: float(prob.excess(s[-1])) for n, s in stacked.items()}
    best = min(far, key=lambda n: far[n] if math.isfinite(far[n]) else math.inf)
    return Chart(
        id="paths",
        kind="contour",
        title="Paths on the loss surface (darker = lower loss)",
        x_label="w1 (flat direction)",
        y_label="w2 (steep direction)",
        series=series,
        grid=Grid(x=gx.tolist(), y=gy.tolist(), z=z.tolist()),
        finding=f"From {START}, {_label(experiment, best)} ends closest to the minimum at (0, 0), "
        f"{fmt(far[best])} above it.",
    )


def _label(experiment: Experiment, name: str) -> str:
    return next(v.label for v in experiment.variants if v.name == name)


def _charts(experiment: Experiment, prob: Problem, stacked: dict[str, torch.Tensor]) -> list[Chart]:
    curves = [
        curve(v.label, [num(float(e)) for e in prob.excess(stacked[v.name])], v.name)
        for v in experiment.variants
    ]
    finals = [f"{fmt(c.points[-1][1])} ({c.label})" for c in curves]
    return [
        contour_chart(experiment, prob, stacked),
        loss_chart(
            "excess_loss",
            "Loss above the minimum by step (log scale)",
            curves,
            finding=f"After {len(curves[0].points) - 1} steps the loss is above its minimum by "
            f"{and_list(finals)}.",
            y_log=True,
        ),
    ]


def _summary(results: list[VariantResult], steps: int, kappa: float) -> str:
    parts = [f"{r.label} {fmt(r.metrics['final_excess'])}" for r in results]
    return (
        f"In a valley {fmt(kappa)} times steeper along w2 than along w1, after {steps} steps "
        f"the loss is above its minimum by: {and_list(parts)}."
    )
