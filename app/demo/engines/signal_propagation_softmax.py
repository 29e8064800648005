"""Softmax-temperature engine: attention entropy as the attention logits grow.

Random tokens X (n x d) and random query and key weights W_Q, W_K (variance 1/d) give logits
s (X W_Q)(X W_K)^T / sqrt(d): s is the logit scale, the square of how much both weight
matrices have grown (training grows them; Zhai et al., 2023). Plain attention takes the
softmax of those logits; sigma-reparam first divides each weight matrix by its spectral
norm (W / ||W||_2, the paper's fix), so growing the weights leaves its logits unchanged.
"""

from __future__ import annotations

import math

import torch

from app.demo.engines.common import fmt, num
from app.demo.engines.signal_propagation_common import DTYPE, generator, log_series
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.signal_propagation import SoftmaxParams
from app.demo.result import Chart, Number, Series, VariantResult

SCALES = 16  # logit scales on the sweep, geometric from MIN_SCALE to max_scale
MIN_SCALE = 0.5


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """(n, n) logits -> (n,) entropy of each query's attention, in nats."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def run(experiment: Experiment, params: SoftmaxParams, ctx: RunContext) -> EngineOutput:
    """Mean attention entropy of each variant at every logit scale of the sweep."""
    dev = torch.device(ctx.device)
    g = generator(params.seed)
    n, d = params.tokens, params.head_dim
    x = torch.randn(n, d, generator=g, dtype=DTYPE)
    wq, wk = (torch.randn(d, d, generator=g, dtype=DTYPE) / math.sqrt(d) for _ in range(2))
    x, wq, wk = x.to(dev), wq.to(dev), wk.to(dev)
    base = {  # logits at scale 1, (n, n)
        "attention": (x @ wq) @ (x @ wk).T / math.sqrt(d),
        "sigma-reparam": (x @ (wq / torch.linalg.matrix_norm(wq, ord=2)))
        @ (x @ (wk / torch.linalg.matrix_norm(wk, ord=2))).T
        / math.sqrt(d),
    }
    ratio = (params.max_scale / MIN_SCALE) ** (1 / (SCALES - 1))
    scales = [MIN_SCALE * ratio**i for i in range(SCALES)] + [1.0]  # scale 1 measured too
    curves: dict[str, list[tuple[float, Number]]] = {v.name: [] for v in experiment.variants}
    at: dict[str, dict[float, torch.Tensor]] = {v.name: {} for v in experiment.variants}
    for i, s in enumerate(scales):
        ctx.check(i, len(scales))
        for v in experiment.variants:
            # sigma-reparam: the grown weights are renormalized, so its logits do not grow
            logits = base[v.name] * (s if v.name == "attention" else 1.0)
            at[v.name][s] = logits
            if i < SCALES:
                curves[v.name].append((s, num(entropy(logits).mean().item())))
        if ctx.wants_progress and i % 5 == 4:
            ctx.progress(i + 1, len(scales), [entropy_chart(experiment, curves, n)])

    top = scales[SCALES - 1]
    results = [
        VariantResult(
            name=v.name,
            label=v.label,
            metrics={
                "entropy_at_unit_scale": num(entropy(at[v.name][1.0]).mean().item()),
                "entropy_at_max_scale": num(entropy(at[v.name][top]).mean().item()),
                "top_weight_at_max_scale": num(
                    torch.softmax(at[v.name][top], dim=-1).amax(dim=-1).mean().item()
                ),
            },
        )
        for v in experiment.variants
    ]
    by = {r.name: r.metrics for r in results}
    return EngineOutput(
        variants=results,
        charts=[
            entropy_chart(experiment, curves, n),
            weights_chart(at["attention"], [scales[0], 1.0, top]),
        ],
        summary=(
            f"As the logit scale grows from {MIN_SCALE:g} to {params.max_scale:g}, the mean "
            f"attention entropy over {n} tokens falls from {fmt(curves['attention'][0][1])} to "
            f"{fmt(by['attention']['entropy_at_max_scale'])} nats (uniform attention: "
            f"{fmt(math.log(n))}); with sigma-reparam it stays "
            f"{fmt(by['sigma-reparam']['entropy_at_max_scale'])}."
        ),
        run_metrics={"max_entropy": math.log(n)},
    )


def entropy_chart(
    experiment: Experiment, curves: dict[str, list[tuple[float, Number]]], n: int
) -> Chart:
    series = [
        Series(label=v.label, variant=v.name, points=curves[v.name]) for v in experiment.variants
    ]
    xs = [x for x, _ in curves["attention"]]
    series.append(
        Series(label="uniform, ln n", points=[(x, math.log(n)) for x in xs], style="dashed")
    )
    last = curves["attention"][-1] if curves["attention"] else (0.0, None)
    return Chart(
        id="entropy",
        kind="line",
        title="Mean attention entropy by logit scale (log x)",
        x_label="logit scale (weights grown by its square root)",
        y_label="entropy (nats)",
        x_log=True,
        series=series,
        finding=(
            f"At scale {fmt(last[0])} plain attention's entropy is {fmt(last[1])} nats, "
            f"against {fmt(math.log(n))} for uniform attention over {n} tokens."
        ),
    )


def weights_chart(logits: dict[float, torch.Tensor], scales: list[float]) -> Chart:
    """One query's attention weights, sorted, at a small, the unit and the largest scale."""
    rows = {
        s: torch.sort(torch.softmax(logits[s][0], dim=-1), descending=True).values for s in scales
    }
    return Chart(
        id="weights",
        kind="line",
        title="One query's attention weights, largest first (log y)",
        x_label="rank of the key",
        y_label="attention weight",
        y_log=True,
        series=[log_series(f"scale {fmt(s)}", None, rows[s].tolist(), x0=1) for s in scales],
        finding=(
            f"The largest weight is {fmt(rows[scales[0]][0].item())} at scale "
            f"{fmt(scales[0])} and {fmt(rows[scales[-1]][0].item())} at scale "
            f"{fmt(scales[-1])}."
        ),
    )
