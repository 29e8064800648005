"""Gradient-noise-scale engine: B_simple = tr(Sigma) / |G|^2 from per-example gradients.

A tanh MLP classifies points by the sign of a random teacher network, trained with minibatch
SGD. At a few steps, the gradient of every training example is computed at once with
torch.func (vmap over grad); G is their mean (the exact full-batch gradient of the training
set) and Sigma their covariance, the noise of a one-example gradient drawn from the training
set. B_simple is the batch size at which a minibatch gradient's noise equals |G|^2
(McCandlish et al., 2018): batches much smaller than it waste steps on noise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from app.demo.engines.common import curve, fmt, loss_chart, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.optimization_params import NoiseScaleParams
from app.demo.result import Chart, Number, Series, VariantResult

D_IN = 8  # input features
TEACHER_WIDTH = 16
MEASUREMENTS = 10  # noise-scale measurements after initialization, log-spaced in the step


def make_data(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, D) standard normal; y (N,) in {0, 1}: the sign of a random tanh teacher."""
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, D_IN, generator=g)
    w1 = torch.randn(D_IN, TEACHER_WIDTH, generator=g) / math.sqrt(D_IN)
    w2 = torch.randn(TEACHER_WIDTH, generator=g)
    score = torch.tanh(2.0 * x @ w1) @ w2
    return x, (score > score.median()).long()  # balanced classes


def measurement_steps(steps: int) -> list[int]:
    """0 and about MEASUREMENTS steps spaced evenly in log(1 + step), ending at `steps`: the
    loss changes fastest early on."""
    top = math.log1p(steps)
    return sorted(
        {0, steps} | {round(math.expm1(top * i / MEASUREMENTS)) for i in range(1, MEASUREMENTS)}
    )


def make_model(hidden: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # nn.Linear's own init, from the run's seed
    return torch.nn.Sequential(
        torch.nn.Linear(D_IN, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 2)
    )


def noise_scale(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[float, float, float]:
    """(B_simple, tr(Sigma), |G|^2) over the whole training set, from per-example gradients."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def example_loss(
        p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor
    ) -> torch.Tensor:
        logits = functional_call(model, p, (xi[None],))  # (1, 2)
        return F.cross_entropy(logits, yi[None])

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))(params, x, y)
    g = torch.cat([t.flatten(1) for t in per_example.values()], dim=1)  # (N, P)
    mean = g.mean(0)  # G, the full-batch gradient
    # the training set is the whole population SGD samples from: no small-sample correction
    trace = float((g - mean).square().sum(1).mean())
    g2 = float(mean.square().sum())
    return (trace / g2 if g2 > 0 else math.inf), trace, g2


def run(experiment: Experiment, p: NoiseScaleParams, ctx: RunContext) -> EngineOutput:
    """Train with SGD; noise scale and full-batch loss at the measured steps."""
    x, y = make_data(p.seed, p.examples)
    model = make_model(p.hidden, p.seed)
    opt = torch.optim.SGD(model.parameters(), lr=p.lr)
    g = torch.Generator().manual_seed(p.seed + 2)
    batches = torch.randint(0, p.examples, (p.steps, p.batch_size), generator=g)
    measure_at = measurement_steps(p.steps)
    rows: list[tuple[int, float, float, float, float]] = []  # step, B, tr, |G|^2, loss
    losses: list[float] = []  # minibatch loss at every step
    for step in range(p.steps + 1):
        ctx.check(step, p.steps)
        if step in measure_at:
            b, tr, g2 = noise_scale(model, x, y)
            with torch.no_grad():
                full = float(F.cross_entropy(model(x), y))
            rows.append((step, b, tr, g2, full))
            if ctx.wants_progress and 0 < step < p.steps:
                ctx.progress(step, p.steps, _charts(rows, losses))
        if step < p.steps:
            idx = batches[step]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    first, last = rows[0], rows[-1]
    metrics: dict[str, Number] = {
        "final_loss": num(last[4]),
        "initial_loss": num(first[4]),
        "initial_noise_scale": num(first[1]),
        "final_noise_scale": num(last[1]),
        "final_accuracy": accuracy,
    }
    logs = [
        (math.log(r[1]), math.log(r[4]))
        for r in rows
        if r[1] > 0 and r[4] > 0 and math.isfinite(r[1])
    ]
    run_metrics: dict[str, Number] = {
        "noise_scale_growth": _ratio(metrics["final_noise_scale"], metrics["initial_noise_scale"]),
        "log_noise_scale_vs_log_loss_correlation": _correlation(logs),
        "final_over_initial_loss": _ratio(metrics["final_loss"], metrics["initial_loss"]),
    }
    v0 = experiment.variants[0]
    return EngineOutput(
        variants=[VariantResult(name=v0.name, label=v0.label, metrics=metrics)],
        charts=_charts(rows, losses),
        summary=(
            f"As the training loss falls from {fmt(first[4])} to {fmt(last[4])} over {p.steps} "
            f"SGD steps, the gradient noise scale B_simple grows from {fmt(first[1])} to "
            f"{fmt(last[1])} examples (batches here: {p.batch_size})."
        ),
        run_metrics=run_metrics,
    )


def _ratio(a: Number, b: Number) -> Number:
    return None if a is None or b is None or b == 0 else a / b


def _correlation(pairs: list[tuple[float, float]]) -> Number:
    """Pearson correlation of the pairs, None with fewer than 3 or no spread."""
    if len(pairs) < 3:
        return None
    t = torch.tensor(pairs, dtype=torch.float64)
    c = torch.corrcoef(t.T)[0, 1]
    return num(float(c))


def _charts(rows: list[tuple[int, float, float, float, float]], losses: list[float]) -> list[Chart]:
    steps = [float(r[0]) for r in rows]
    return [
        Chart(
            id="noise_scale",
            kind="line",
            title="Gradient noise scale B_simple and its parts by step (log scale)",
            x_label="step",
            y_label="value",
            y_log=True,
            series=[
                Series(
                    label="B_simple = tr(Sigma) / |G|^2",
                    variant="sgd",
                    points=[(s, num(r[1])) for s, r in zip(steps, rows, strict=True)],
                ),
                Series(
                    label="tr(Sigma)",
                    points=[(s, num(r[2])) for s, r in zip(steps, rows, strict=True)],
                    style="dashed",
                ),
                Series(
                    label="|G|^2",
                    points=[(s, num(r[3])) for s, r in zip(steps, rows, strict=True)],
                    style="dashed",
                ),
            ],
            finding=f"B_simple goes from {fmt(rows[0][1])} at step 0 to {fmt(rows[-1][1])} at step "
            f"{rows[-1][0]}, while |G|^2 goes from {fmt(rows[0][3])} to {fmt(rows[-1][3])}.",
        ),
        Chart(
            id="noise_vs_loss",
            kind="line",
            title="Noise scale against the training loss (log-log)",
            x_label="full-batch training loss",
            y_label="B_simple",
            x_log=True,
            y_log=True,
            series=[
                Series(
                    label="B_simple",
                    variant="sgd",
                    points=[(r[4], num(r[1])) for r in rows],
                    style="points",
                )
            ],
            finding=f"At loss {fmt(rows[0][4])} B_simple is {fmt(rows[0][1])}; at loss "
            f"{fmt(rows[-1][4])} it is {fmt(rows[-1][1])}.",
        ),
        loss_chart(
            "loss",
            "Minibatch training loss by step (log scale)",
            [curve("minibatch loss", [num(v) for v in losses], "sgd")],
            finding=f"The full-batch loss falls from {fmt(rows[0][4])} to {fmt(rows[-1][4])}.",
            y_log=True,
        ),
    ]
