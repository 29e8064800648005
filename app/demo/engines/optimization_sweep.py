"""Learning-rate sweep engine: the same MLP trained at log-spaced learning rates.

Every copy starts from the same weights and takes full-batch gradient-descent steps on the
same training set; only its learning rate differs. A copy has diverged when its final
training loss is not finite or above its initial loss. The variants reported are the
smallest learning rate, the best (lowest validation loss) and the largest.
"""

from __future__ import annotations

import math

import torch

from app.demo.engines.common import and_list, curve, fmt, loss_chart, num
from app.demo.engines.optimization_mlp import StackedMLP, make_regression
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.optimization_params import SweepParams
from app.demo.result import Chart, Number, Series, VariantResult

N_TRAIN = 128  # training examples (as many held out)
LABEL_NOISE = 0.1  # std of the label noise, in units of the targets' std
PROGRESS_EVERY = 5


def learning_rates(p: SweepParams) -> torch.Tensor:
    """p.points rates, evenly spaced on a log scale from the smaller bound to the larger."""
    lo, hi = sorted((p.lr_min, p.lr_max))
    return torch.logspace(math.log10(lo), math.log10(hi), p.points, dtype=torch.float64).float()


def _inf_if_diverged(final: float, initial: float) -> float:
    return final if math.isfinite(final) and final <= initial else math.inf


def run(experiment: Experiment, p: SweepParams, ctx: RunContext) -> EngineOutput:
    """Train every learning rate of the sweep; pick the smallest, the best and the largest."""
    data = make_regression(p.seed, N_TRAIN, LABEL_NOISE)
    lrs = learning_rates(p)  # (K,)
    model = StackedMLP(p.points, p.hidden, p.seed)
    history: list[torch.Tensor] = []  # training loss before each step, (K,) each
    every = max(1, p.steps // PROGRESS_EVERY)
    for step in range(p.steps):
        ctx.check(step, p.steps)
        history.append(model.sgd_step(data.x_train, data.y_train, lrs))
        if ctx.wants_progress and (step + 1) % every == 0 and step + 1 < p.steps:
            ctx.progress(step + 1, p.steps, [_curves_chart(lrs, torch.stack(history, 1))])
    train = model.evaluate(data.x_train, data.y_train)
    history.append(train)
    val = model.evaluate(data.x_val, data.y_val)
    losses = torch.stack(history, dim=1)  # (K, steps + 1)
    initial = losses[:, 0].tolist()
    # a diverged copy counts as infinitely bad, whatever finite value it happened to reach
    tr = [_inf_if_diverged(f, i) for f, i in zip(train.tolist(), initial, strict=True)]
    va = [v if t < math.inf else math.inf for v, t in zip(val.tolist(), tr, strict=True)]
    best = min(range(p.points), key=lambda k: (va[k], k))
    picks = {"smallest": 0, "best": best, "largest": p.points - 1}
    results = [
        VariantResult(
            name=v.name,
            label=f"{v.label}: lr {fmt(float(lrs[picks[v.name]]))}",
            metrics={
                "lr": float(lrs[picks[v.name]]),
                "initial_loss": num(initial[picks[v.name]]),
                "final_loss": num(tr[picks[v.name]]),
                "final_train_loss": num(tr[picks[v.name]]),
                "final_val_loss": num(va[picks[v.name]]),
                "diverged": float(tr[picks[v.name]] == math.inf),
            },
            loss=[num(x) for x in losses[picks[v.name]].tolist()],
        )
        for v in experiment.variants
    ]
    s, b, big = (tr[0], va[0]), (tr[best], va[best]), (tr[-1], va[-1])
    run_metrics: dict[str, Number] = {
        "ends_over_best_val": num(min(s[1], big[1]) / b[1]),  # inf / finite stays inf -> None
        "smallest_over_best_train": num(s[0] / b[0]),
        "best_over_largest_train": num(b[0] / big[0]),  # 0 when the largest diverged
        "best_lr": float(lrs[best]),
        "diverged_count": float(sum(t == math.inf for t in tr)),
    }
    return EngineOutput(
        variants=results,
        charts=[_sweep_chart(lrs, tr, va), _curves_chart(lrs, losses)],
        summary=_summary(lrs, tr, va, best, p.steps),
        run_metrics=run_metrics,
    )


def _sweep_chart(lrs: torch.Tensor, tr: list[float], va: list[float]) -> Chart:
    """Final training and validation loss against the learning rate (diverged: no point)."""
    xs = lrs.tolist()
    diverged = [fmt(x) for x, t in zip(xs, tr, strict=True) if t == math.inf]
    best = min(range(len(xs)), key=lambda k: (va[k], k))
    tail = f"; lr {and_list(diverged)} diverged" if diverged else "; none diverged"
    return Chart(
        id="sweep",
        kind="line",
        title="Final loss against the learning rate",
        x_label="learning rate",
        y_label="final loss",
        x_log=True,
        y_log=True,
        series=[
            Series(label="training", points=[(x, num(t)) for x, t in zip(xs, tr, strict=True)]),
            Series(
                label="validation",
                points=[(x, num(v)) for x, v in zip(xs, va, strict=True)],
                style="dashed",
            ),
        ],
        finding=f"The validation loss is lowest, {fmt(va[best])}, at lr {fmt(xs[best])}{tail}.",
    )


def _curves_chart(lrs: torch.Tensor, losses: torch.Tensor) -> Chart:
    """Training loss by step at every learning rate."""
    series = [
        curve(f"lr {fmt(float(lr))}", [num(x) for x in row.tolist()])
        for lr, row in zip(lrs, losses, strict=True)
    ]
    last = [row[-1] for row in losses.tolist()]
    fastest = min(range(len(last)), key=lambda k: last[k] if math.isfinite(last[k]) else math.inf)
    return loss_chart(
        "loss",
        "Training loss by step at each learning rate (log scale)",
        series,
        finding=f"After {losses.shape[1] - 1} steps the lowest training loss, "
        f"{fmt(last[fastest])}, is at lr {fmt(float(lrs[fastest]))}.",
        y_log=True,
    )


def _summary(lrs: torch.Tensor, tr: list[float], va: list[float], best: int, steps: int) -> str:
    n_div = sum(t == math.inf for t in tr)
    div = f"{n_div} of the {len(tr)} rates diverged" if n_div else "none of the rates diverged"
    return (
        f"After {steps} full-batch steps the best learning rate, {fmt(float(lrs[best]))}, "
        f"reaches a validation loss of {fmt(va[best])}, against {fmt(va[0])} at the smallest "
        f"({fmt(float(lrs[0]))}); {div}."
    )
