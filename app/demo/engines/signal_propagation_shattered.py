"""Shattered-gradients engine: dy/dx along a 1-D input sweep for a shallow, a deep plain and a
deep residual network (Balduzzi et al., 2017, Figure 1).

Scalar inputs x on a grid go through one random network per variant; the weights are the
same draws (the shallow network uses the first layers of the deep plain one). Batch
normalization uses the statistics of the sweep, held fixed (detached), so every point's
output depends on its own input only and dy/dx is an ordinary derivative.
"""

from __future__ import annotations

import math

import torch

from app.demo.engines.common import and_list, fmt, nums
from app.demo.engines.signal_propagation_common import generator
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.signal_propagation import DepthVariant, ShatteredParams
from app.demo.result import Chart, Number, Series, VariantResult

X_RANGE = 2.0  # the sweep covers [-2, 2], as in the paper
MAX_LAG = 20  # the autocorrelation chart's last lag


def batch_norm(z: torch.Tensor) -> torch.Tensor:
    """(points, w): normalize each unit with the sweep's mean and std, held fixed."""
    mean, std = z.mean(dim=0).detach(), z.std(dim=0).detach()
    return (z - mean) / (std + 1e-5)


def autocorrelation(g: torch.Tensor, max_lag: int) -> list[float]:
    """(points,) -> the sample autocorrelation at lags 0..max_lag."""
    g = g - g.mean()
    var = (g * g).sum()
    return [1.0] + [((g[lag:] * g[:-lag]).sum() / var).item() for lag in range(1, max_lag + 1)]


def run(experiment: Experiment, params: ShatteredParams, ctx: RunContext) -> EngineOutput:
    """dy/dx of every variant on the same sweep, from the same weights."""
    variants = tuple(v for v in experiment.variants if isinstance(v, DepthVariant))
    dev = torch.device(ctx.device)
    g = generator(params.seed)
    w = params.width
    x = torch.linspace(-X_RANGE, X_RANGE, params.points)  # (points,)
    a, b = torch.randn(w, generator=g), torch.randn(w, generator=g)  # input layer x*a + b
    ws = torch.randn(params.depth, w, w, generator=g) * math.sqrt(2.0 / w)  # He: ReLU
    readout = torch.randn(w, generator=g) / math.sqrt(w)  # (w,) -> scalar y
    x, a, b, ws, readout = (t.to(dev) for t in (x, a, b, ws, readout))

    total = sum(v.depth or params.depth for v in variants)
    done = 0
    grads: list[torch.Tensor] = []  # per variant, dy/dx at every point (points,)
    for v in variants:
        xs = x.clone().requires_grad_(True)
        h = xs[:, None] * a + b  # (points, w)
        for layer in range(v.depth or params.depth):
            ctx.check(done, total)
            done += 1
            if v.residual:
                h = h + torch.relu(batch_norm(h)) @ ws[layer]  # h + W ReLU(BN(h))
            else:
                h = torch.relu(batch_norm(h @ ws[layer]))  # ReLU(BN(W h))
        (dydx,) = torch.autograd.grad((h @ readout).sum(), xs)  # points are independent
        grads.append(dydx.detach())
        if ctx.wants_progress:
            ctx.progress(done, total, [gradient_chart(variants[: len(grads)], x, grads)])

    acfs = [autocorrelation(gr, min(MAX_LAG, params.points - 2)) for gr in grads]
    results = [
        VariantResult(name=v.name, label=v.label, metrics={"lag1_autocorrelation": acfs[k][1]})
        for k, v in enumerate(variants)
    ]
    by = {r.name: r.metrics for r in results}
    return EngineOutput(
        variants=results,
        charts=[gradient_chart(variants, x, grads), autocorrelation_chart(variants, acfs)],
        summary=_summary(params, results),
        run_metrics={
            "resnet_minus_plain": _minus(
                by["resnet"]["lag1_autocorrelation"], by["plain"]["lag1_autocorrelation"]
            )
        },
    )


def _minus(a: Number, b: Number) -> Number:
    return None if a is None or b is None else a - b


def gradient_chart(
    variants: tuple[DepthVariant, ...], x: torch.Tensor, grads: list[torch.Tensor]
) -> Chart:
    """dy/dx against x, each divided by its standard deviation so the shapes compare."""
    xs = x.tolist()
    series = [
        Series(
            label=v.label, variant=v.name, points=list(zip(xs, nums(gr / gr.std()), strict=True))
        )
        for v, gr in zip(variants, grads, strict=False)
    ]
    flips = [
        f"{(torch.diff(torch.sign(gr)) != 0).sum().item()} ({v.label})"
        for v, gr in zip(variants, grads, strict=False)
    ]
    return Chart(
        id="gradient",
        kind="line",
        title="dy/dx along the input, over its standard deviation",
        x_label="input x",
        y_label="dy/dx / std",
        series=series,
        finding=f"Across {len(xs)} points dy/dx changes sign " + and_list(flips) + " times.",
    )


def autocorrelation_chart(variants: tuple[DepthVariant, ...], acfs: list[list[float]]) -> Chart:
    lag1 = [f"{fmt(acf[1])} ({v.label})" for v, acf in zip(variants, acfs, strict=True)]
    return Chart(
        id="autocorrelation",
        kind="line",
        title="Autocorrelation of dy/dx between neighbouring inputs, by lag",
        x_label="lag (grid points)",
        y_label="autocorrelation",
        series=[
            Series(
                label=v.label,
                variant=v.name,
                points=[(float(i), c) for i, c in enumerate(nums(acf))],
            )
            for v, acf in zip(variants, acfs, strict=True)
        ],
        finding="The lag-1 autocorrelation is " + and_list(lag1) + "; white noise gives about 0.",
    )


def _summary(p: ShatteredParams, rs: list[VariantResult]) -> str:
    by = {r.name: r.metrics["lag1_autocorrelation"] for r in rs}
    return (
        f"The gradients at neighbouring inputs have autocorrelation {fmt(by['plain'])} in the "
        f"{p.depth}-layer plain network, {fmt(by['resnet'])} in the {p.depth}-layer ResNet "
        f"and {fmt(by['shallow'])} in the shallow one (white noise gives about 0)."
    )
