"""Edge-of-stability engine: full-batch GD's sharpness, measured as it trains.

A tanh MLP (8 -> width -> width -> 1) fits random targets with mean squared error by full-
batch gradient descent. Memorizing random targets keeps the loss from collapsing early, so
the sharpness (the Hessian's top eigenvalue) has time to grow, as Cohen et al. found with
real data. Every MEASURE_EVERY steps it is estimated by power iteration on Hessian-vector
products (double backward), warm-started from the previous eigenvector. The parameters are
one flat vector, so a Hessian-vector product is one autograd call.
"""

from __future__ import annotations

import math

import torch

from app.demo.engines.common import curve, fmt, loss_chart, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.optimization_params import EdgeParams
from app.demo.result import Chart, Number, Series, VariantResult

D_IN = 8  # input features
MEASURE_EVERY = 10  # steps between sharpness measurements
POWER_ITERS = 4  # Hessian-vector products per measurement (warm-started; the estimate
# is a Rayleigh quotient, so a few per cent low at worst, checked in the tests)
FIRST_ITERS = 20  # at initialization, from a random vector
PROGRESS_EVERY = 5


class FlatMLP:
    """x (N, D) -> tanh(x W1 + b1) -> tanh(. W2 + b2) -> . W3 + b3, weights in one vector."""

    def __init__(self, width: int) -> None:
        self.shapes = [(D_IN, width), (width,), (width, width), (width,), (width, 1), (1,)]
        self.size = sum(math.prod(s) for s in self.shapes)

    def init(self, g: torch.Generator) -> torch.Tensor:
        """LeCun-uniform weights (variance 1/fan_in), zero biases: (P,)."""
        parts = []
        for s in self.shapes:
            if len(s) == 2:
                bound = math.sqrt(3.0 / s[0])
                parts.append((torch.rand(math.prod(s), generator=g) * 2 - 1) * bound)
            else:
                parts.append(torch.zeros(s[0]))
        return torch.cat(parts)

    def __call__(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Predictions (N, 1)."""
        w1, b1, w2, b2, w3, b3 = (
            t.view(s)
            for t, s in zip(
                theta.split([math.prod(s) for s in self.shapes]), self.shapes, strict=True
            )
        )
        h = torch.tanh(x @ w1 + b1)
        h = torch.tanh(h @ w2 + b2)
        return h @ w3 + b3


def top_eigenvalue(
    grad: torch.Tensor, theta: torch.Tensor, v: torch.Tensor, iters: int
) -> tuple[float, torch.Tensor]:
    """Power iteration with Hessian-vector products: (Rayleigh quotient, unit eigenvector).

    grad must have been computed with create_graph=True so it can be differentiated again."""
    lam = 0.0
    for _ in range(iters):
        (hv,) = torch.autograd.grad(grad, theta, v, retain_graph=True)  # H v, (P,)
        lam = float(hv @ v)
        v = hv / hv.norm()
    return lam, v


def run(experiment: Experiment, p: EdgeParams, ctx: RunContext) -> EngineOutput:
    """Train by full-batch GD; sharpness every MEASURE_EVERY steps, loss at every step."""
    g = torch.Generator().manual_seed(p.seed + 1)
    x = torch.randn(p.examples, D_IN, generator=g)
    y = torch.randn(p.examples, 1, generator=g)  # random targets to memorize
    net = FlatMLP(p.width)
    gi = torch.Generator().manual_seed(p.seed)
    theta = net.init(gi).requires_grad_()
    v = torch.randn(net.size, generator=gi)
    v = v / v.norm()
    losses: list[float] = []
    sharpness: list[tuple[int, float]] = []
    every = max(1, p.steps // PROGRESS_EVERY)
    for step in range(p.steps + 1):
        ctx.check(step, p.steps)
        measure = step % MEASURE_EVERY == 0 or step == p.steps
        loss = 0.5 * (net(theta, x) - y).square().mean()
        (grad,) = torch.autograd.grad(loss, theta, create_graph=measure)
        losses.append(float(loss.detach()))
        if measure:
            lam, v = top_eigenvalue(grad, theta, v, FIRST_ITERS if step == 0 else POWER_ITERS)
            sharpness.append((step, lam))
        if step < p.steps:
            with torch.no_grad():
                theta -= p.lr * grad.detach()
        if ctx.wants_progress and step % every == 0 and 0 < step < p.steps:
            ctx.progress(step, p.steps, _charts(p, sharpness, losses))
    edge = 2.0 / p.lr
    values = [s for _, s in sharpness]
    late = [s for t, s in sharpness if t >= 0.75 * p.steps]
    rises = sum(b > a for a, b in zip(losses, losses[1:], strict=False))
    metrics: dict[str, Number] = {
        "final_loss": num(losses[-1]),
        "initial_loss": num(losses[0]),
        "initial_sharpness": num(values[0]),
        "max_sharpness": num(max(values)),
        "final_sharpness": num(values[-1]),
        "late_sharpness": num(sum(late) / len(late)),
        "loss_rise_fraction": rises / max(1, p.steps),
    }
    run_metrics: dict[str, Number] = {
        "late_sharpness_over_edge": _over(metrics["late_sharpness"], edge),
        "initial_sharpness_over_edge": _over(metrics["initial_sharpness"], edge),
        "late_over_initial_sharpness": _ratio(
            metrics["late_sharpness"], metrics["initial_sharpness"]
        ),
        "max_sharpness_over_edge": _over(metrics["max_sharpness"], edge),
        "loss_rise_fraction": metrics["loss_rise_fraction"],
        "final_over_initial_loss": _over(metrics["final_loss"], losses[0]),
    }
    v0 = experiment.variants[0]
    return EngineOutput(
        variants=[
            VariantResult(
                name=v0.name, label=v0.label, metrics=metrics, loss=[num(x) for x in losses]
            )
        ],
        charts=_charts(p, sharpness, losses),
        summary=(
            f"At lr {fmt(p.lr)} the sharpness rises from {fmt(values[0])} to a peak of "
            f"{fmt(max(values))} and averages {fmt(metrics['late_sharpness'])} over the last "
            f"quarter of the {p.steps} steps, against 2/lr = {fmt(edge)}; the loss falls from "
            f"{fmt(losses[0])} to {fmt(losses[-1])}, going up on {rises} steps."
        ),
        run_metrics=run_metrics,
    )


def _over(a: Number, b: float) -> Number:
    return None if a is None or b == 0 else a / b


def _ratio(a: Number, b: Number) -> Number:
    return None if a is None or b is None or b == 0 else a / b


def _charts(p: EdgeParams, sharpness: list[tuple[int, float]], losses: list[float]) -> list[Chart]:
    edge = 2.0 / p.lr
    last = sharpness[-1][1]
    rises = sum(b > a for a, b in zip(losses, losses[1:], strict=False))
    return [
        Chart(
            id="sharpness",
            kind="line",
            title="Sharpness (top Hessian eigenvalue) by step, and 2/lr",
            x_label="step",
            y_label="sharpness",
            series=[
                Series(
                    label="sharpness",
                    variant="gd",
                    points=[(float(t), num(s)) for t, s in sharpness],
                ),
                Series(
                    label="2 / lr", points=[(0.0, edge), (float(p.steps), edge)], style="dashed"
                ),
            ],
            finding=f"The sharpness climbs from {fmt(sharpness[0][1])} to at most "
            f"{fmt(max(s for _, s in sharpness))} and is {fmt(last)} at step {sharpness[-1][0]}; "
            f"2/lr is {fmt(edge)}.",
        ),
        loss_chart(
            "loss",
            "Training loss by step (log scale)",
            [curve("training loss", [num(x) for x in losses], "gd")],
            finding=f"The loss goes from {fmt(losses[0])} to {fmt(losses[-1])}, rising on {rises} "
            f"of {len(losses) - 1} steps.",
            y_log=True,
        ),
    ]
