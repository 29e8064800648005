"""Learning-rate schedules engine: constant, step decay and cosine on the same SGD problem.

A linear regression (16 features with variances from 1 down to 1/20, noisy targets) trained
by minibatch SGD from w = 0. The schedules share the peak rate, the data and the order of
the minibatches (shuffled epochs), so they differ only in their rate at each step. The loss
is measured on the whole training set after every step, as its excess over the least-squares
minimum (computed in closed form), so the noise floor SGD settles into is visible on a log
scale (in float64: the problem is tiny). With batch_size = the training set, every step is
full-batch gradient descent.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from app.demo.engines.common import and_list, curve, fmt, loss_chart, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.optimization_params import SchedulesParams
from app.demo.result import Chart, Number, VariantResult

N_TRAIN = 256  # training examples (as many held out)
D = 16  # features
FEATURE_KAPPA = 20.0  # largest over smallest feature variance
LABEL_NOISE = 0.5  # std of the target noise
PROGRESS_EVERY = 5
F64 = torch.float64  # excess losses of 1e-7 on a loss of 0.1 are below float32's resolution

Schedule = Callable[[float], float]  # fraction of training done, in [0, 1) -> factor of the peak


def constant(frac: float) -> float:
    return 1.0


def step_decay(frac: float) -> float:
    """Divide by 10 at half and again at three quarters of training (as ResNet's recipe)."""
    return 0.1 ** ((frac >= 0.5) + (frac >= 0.75))


def cosine(frac: float) -> float:
    """Half a cosine from the peak to 0 (SGDR's annealing, without restarts)."""
    return 0.5 * (1.0 + math.cos(math.pi * frac))


SCHEDULES: dict[str, Schedule] = {"constant": constant, "step": step_decay, "cosine": cosine}


def make_data(seed: int) -> tuple[torch.Tensor, ...]:
    """x_train (N, D), y_train (N,), x_val, y_val from the run's own generator."""
    g = torch.Generator().manual_seed(seed + 1)
    std = torch.logspace(0.0, -0.5 * math.log10(FEATURE_KAPPA), D, dtype=F64)  # variances 1 .. 1/20
    x = torch.randn(2 * N_TRAIN, D, generator=g, dtype=F64) * std
    y = x @ torch.randn(D, generator=g, dtype=F64) + LABEL_NOISE * torch.randn(
        2 * N_TRAIN, generator=g, dtype=F64
    )
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def minibatches(seed: int, steps: int, batch: int) -> torch.Tensor:
    """Indices of each step's minibatch, (steps, B): a fresh shuffle every epoch."""
    g = torch.Generator().manual_seed(seed + 2)
    per_epoch = N_TRAIN // batch
    epochs = -(-steps // per_epoch)
    perms = torch.stack([torch.randperm(N_TRAIN, generator=g) for _ in range(epochs)])
    return perms[:, : per_epoch * batch].reshape(-1, batch)[:steps]


def half_mse(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Loss mean (x . w - y)^2 / 2 of each weight vector: w (K, D) -> (K,)."""
    return 0.5 * (w @ x.T - y).square().mean(dim=1)


def run(experiment: Experiment, p: SchedulesParams, ctx: RunContext) -> EngineOutput:
    """Train one weight vector per schedule; excess training loss and rate at every step."""
    x, y, xv, yv = make_data(p.seed)
    w_opt = torch.linalg.lstsq(x, y[:, None]).solution[:, 0]
    min_loss = float(half_mse(w_opt[None], x, y))
    names = [v.name for v in experiment.variants]
    batches = minibatches(p.seed, p.steps, p.batch_size)
    w = torch.zeros(len(names), D, dtype=F64)  # (K, D), every schedule starts at 0
    rates: list[list[float]] = []
    excess: list[torch.Tensor] = [half_mse(w, x, y) - min_loss]
    every = max(1, p.steps // PROGRESS_EVERY)
    for step in range(p.steps):
        ctx.check(step, p.steps)
        lr = [p.lr * SCHEDULES[n](step / p.steps) for n in names]
        rates.append(lr)
        xb, yb = x[batches[step]], y[batches[step]]
        grad = (w @ xb.T - yb) @ xb / p.batch_size  # (K, D)
        w = w - torch.tensor(lr, dtype=F64)[:, None] * grad
        excess.append(half_mse(w, x, y) - min_loss)
        if ctx.wants_progress and (step + 1) % every == 0 and step + 1 < p.steps:
            ctx.progress(step + 1, p.steps, _charts(experiment, rates, excess))
    ex = torch.stack(excess, dim=1)  # (K, steps + 1)
    val = half_mse(w, xv, yv)
    quarter = max(1, p.steps // 4)
    results = []
    for k, v in enumerate(experiment.variants):
        e = ex[k]
        results.append(
            VariantResult(
                name=v.name,
                label=v.label,
                metrics={
                    "final_loss": num(float(e[-1]) + min_loss),
                    "final_train_loss": num(float(e[-1]) + min_loss),
                    "final_val_loss": num(float(val[k])),
                    "final_excess": num(float(e[-1])),
                    "excess_last_quarter": num(float(e[-quarter:].mean())),
                    "excess_second_quarter": num(float(e[quarter : 2 * quarter + 1].mean())),
                },
            )
        )
    m = {r.name: r.metrics for r in results}
    run_metrics: dict[str, Number] = {
        "worse_decay_over_constant_excess": _ratio(
            _max(m["step"]["final_excess"], m["cosine"]["final_excess"]),
            m["constant"]["final_excess"],
        ),
        "constant_late_over_early": _ratio(
            m["constant"]["excess_last_quarter"], m["constant"]["excess_second_quarter"]
        ),
    }
    return EngineOutput(
        variants=results,
        charts=_charts(experiment, rates, excess),
        summary=_summary(results, p),
        run_metrics=run_metrics,
    )


def _ratio(a: Number, b: Number) -> Number:
    return None if a is None or b is None or b == 0 else a / b


def _max(a: Number, b: Number) -> Number:
    return None if a is None or b is None else max(a, b)


def _charts(
    experiment: Experiment, rates: list[list[float]], excess: list[torch.Tensor]
) -> list[Chart]:
    ex = torch.stack(excess, dim=1).tolist()  # (K, steps + 1)
    lr_series = [
        curve(v.label, [r[k] for r in rates], v.name) for k, v in enumerate(experiment.variants)
    ]
    loss_series = [
        curve(v.label, [num(e) for e in ex[k]], v.name) for k, v in enumerate(experiment.variants)
    ]
    finals = [f"{fmt(ex[k][-1])} ({v.label})" for k, v in enumerate(experiment.variants)]
    peak = max(max(r) for r in rates)
    last = {v.name: rates[-1][k] for k, v in enumerate(experiment.variants)}
    return [
        Chart(
            id="lr",
            kind="line",
            title="Learning rate by step",
            x_label="step",
            y_label="learning rate",
            series=lr_series,
            finding=f"Every schedule starts at the peak rate {fmt(peak)}; the decaying ones "
            f"end at {fmt(last['step'])} (step) and {fmt(last['cosine'])} (cosine).",
        ),
        loss_chart(
            "loss",
            "Training loss above the least-squares minimum by step (log scale)",
            loss_series,
            finding=f"After {len(ex[0]) - 1} steps the loss is above its minimum by "
            f"{and_list(finals)}.",
            y_log=True,
        ),
    ]


def _summary(results: list[VariantResult], p: SchedulesParams) -> str:
    by = {r.name: r.metrics for r in results}
    return (
        f"With minibatches of {p.batch_size} and a peak rate of {fmt(p.lr)}, after {p.steps} "
        f"steps the training loss is above its minimum by {fmt(by['constant']['final_excess'])} "
        f"with a constant rate, {fmt(by['step']['final_excess'])} with step decay and "
        f"{fmt(by['cosine']['final_excess'])} with cosine decay."
    )
