"""Dynamical-isometry engine: the input-output Jacobian of a deep tanh network under Gaussian
and orthogonal weights at the same gain (Saxe et al., 2014; Pennington et al., 2017).

Both variants use the same draws: the orthogonal matrices are the Q factors of the Gaussian
ones (signs fixed so Q is uniformly distributed), and the same input vector goes in. The
Jacobian J = D_L W_L ... D_1 W_1 (D_l = diag(tanh'), at the input's activations) is built
layer by layer, exactly, and its singular values are measured along the way.
"""

from __future__ import annotations

import math

import torch

from app.demo.engines.common import fmt, num
from app.demo.engines.signal_propagation_common import DTYPE, generator, log_series
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.signal_propagation import IsometryParams
from app.demo.result import Chart, Number, Series, VariantResult

CHECKPOINTS = 16  # layers at which the spread is measured (fewer when depth < 16)


def weights(
    params: IsometryParams, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian (L, N, N) of variance gain^2/N, its Q factors times gain, an input (N,)."""
    g = generator(params.seed)
    n = params.width
    raw = torch.randn(params.depth, n, n, generator=g, dtype=DTYPE)
    q, r = torch.linalg.qr(raw)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)  # Haar, not QR's bias
    x = torch.randn(n, generator=g, dtype=DTYPE)  # unit variance per unit
    gaussian = raw * (params.gain / math.sqrt(n))
    return gaussian.to(dev), (q * params.gain).to(dev), x.to(dev)


def spread(s: torch.Tensor) -> float:
    """Largest over median singular value: 1 for an isometry. (The smallest singular value of
    a square random matrix is erratic, so the condition number would mostly measure that.)"""
    return float((s[0] / s.median()).item())


def run(experiment: Experiment, params: IsometryParams, ctx: RunContext) -> EngineOutput:
    """Build each variant's Jacobian layer by layer; its spectrum at the end."""
    dev = torch.device(ctx.device)
    gaussian, orthogonal, x = weights(params, dev)
    every = max(1, params.depth // CHECKPOINTS)
    check_at = {layer for layer in range(1, params.depth + 1) if layer % every == 0} | {
        params.depth
    }
    stacks = {"gaussian": gaussian, "orthogonal": orthogonal}

    spreads: dict[str, list[tuple[float, Number]]] = {v.name: [] for v in experiment.variants}
    spectra: dict[str, torch.Tensor] = {}
    total = 2 * params.depth
    for k, v in enumerate(experiment.variants):
        ws = stacks[v.name]
        h, jac = x, torch.eye(params.width, dtype=DTYPE, device=dev)
        for layer in range(1, params.depth + 1):
            ctx.check(k * params.depth + layer - 1, total)
            h = torch.tanh(ws[layer - 1] @ h)  # (N,)
            jac = (1 - h * h)[:, None] * (ws[layer - 1] @ jac)  # D_l W_l J: (N, N)
            if layer in check_at:
                s = torch.linalg.svdvals(jac)  # descending
                spreads[v.name].append((float(layer), num(spread(s))))
                spectra[v.name] = s
        if ctx.wants_progress:
            ctx.progress((k + 1) * params.depth, total, [spread_chart(experiment, spreads, params)])

    results = [
        VariantResult(name=v.name, label=v.label, metrics=_metrics(spectra[v.name]))
        for v in experiment.variants
    ]
    by = {r.name: r.metrics for r in results}
    return EngineOutput(
        variants=results,
        charts=[spectrum_chart(experiment, spectra), spread_chart(experiment, spreads, params)],
        summary=_summary(params, by),
    )


def _metrics(s: torch.Tensor) -> dict[str, Number]:
    return {
        "spread": num(spread(s)),
        "largest_singular_value": num(s[0].item()),
        "median_singular_value": num(s.median().item()),
        "mean_squared_singular_value": num((s * s).mean().item()),
    }


def spectrum_chart(experiment: Experiment, spectra: dict[str, torch.Tensor]) -> Chart:
    spans = [
        f"{fmt(spectra[v.name][0].item())} down to {fmt(spectra[v.name].median().item())} at the "
        f"median with {v.name} weights"
        for v in experiment.variants
    ]
    return Chart(
        id="spectrum",
        kind="line",
        title="Singular values of the input-output Jacobian (log scale)",
        x_label="index (largest first)",
        y_label="singular value",
        y_log=True,
        series=[
            log_series(v.label, v.name, spectra[v.name].tolist(), x0=1) for v in experiment.variants
        ],
        finding="The singular values run from " + "; from ".join(spans) + ".",
    )


def spread_chart(
    experiment: Experiment, spreads: dict[str, list[tuple[float, Number]]], params: IsometryParams
) -> Chart:
    last = {name: pts[-1][1] if pts else None for name, pts in spreads.items()}
    return Chart(
        id="spread",
        kind="line",
        title="Spread of the Jacobian's singular values by depth (log scale)",
        x_label="layer",
        y_label="largest / median singular value",
        y_log=True,
        series=[
            Series(label=v.label, variant=v.name, points=spreads[v.name])
            for v in experiment.variants
        ],
        finding=(
            f"At layer {params.depth} the largest singular value is {fmt(last['gaussian'])} "
            f"times the median with Gaussian weights and {fmt(last['orthogonal'])} times with "
            "orthogonal ones."
        ),
    )


def _summary(p: IsometryParams, by: dict[str, dict[str, Number]]) -> str:
    return (
        f"In a {p.depth}-layer tanh network at gain {p.gain:g}, the Jacobian's largest singular "
        f"value is {fmt(by['gaussian']['spread'])} times its median with Gaussian weights and "
        f"{fmt(by['orthogonal']['spread'])} times with orthogonal weights; the mean squared "
        f"singular value is {fmt(by['gaussian']['mean_squared_singular_value'])} and "
        f"{fmt(by['orthogonal']['mean_squared_singular_value'])}."
    )
