"""Gradient-clipping engine: a recurrent net whose gradients explode, with and without clipping.

A tanh RNN, h_t = tanh(h_{t-1} W + x_t U), reads a sequence of scalars; a fixed random readout
h_T . V predicts a target made by a random teacher RNN. Only W and U train, so every gradient
flows back through time. With recurrent gain above 1 the backward pass multiplies by
Jacobians that stretch, so the gradient grows toward early time steps and its norm is large
at initialization. Both variants are the same weights (stacked, K = 2) on the same full batch;
the clipped one rescales its gradient, per variant, to global norm at most max_norm.
"""

from __future__ import annotations

import math

import torch

from app.demo.engines.common import curve, fmt, loss_chart, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.optimization_params import ClippingParams
from app.demo.result import Chart, Number, Series, VariantResult

N_SEQ = 32  # sequences in the (full) batch
HIDDEN = 32  # recurrent units
TEACHER_GAIN = 0.9  # the teacher RNN's recurrent gain (stable)
PROGRESS_EVERY = 5


def make_data(seed: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, T, 1) standard normal; y (N, 1) the teacher's standardized output."""
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(N_SEQ, seq_len, 1, generator=g)
    w = torch.randn(HIDDEN, HIDDEN, generator=g) * TEACHER_GAIN / math.sqrt(HIDDEN)
    u = torch.randn(1, HIDDEN, generator=g)
    v = torch.randn(HIDDEN, 1, generator=g) / math.sqrt(HIDDEN)
    h = torch.zeros(N_SEQ, HIDDEN)
    for t in range(seq_len):
        h = torch.tanh(h @ w + x[:, t] @ u)
    y = h @ v
    return x, (y - y.mean()) / y.std()


def forward(
    w: torch.Tensor, u: torch.Tensor, v: torch.Tensor, x: torch.Tensor, keep: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """K stacked RNNs: w (K, H, H), u (K, 1, H), v (K, H, 1), x (N, T, 1) -> out (K, N, 1)
    and every hidden state h_t (K, N, H); with keep, each retains its gradient."""
    k, n = w.shape[0], x.shape[0]
    h = torch.zeros(k, n, w.shape[1])
    drive = x[None] * u[:, None]  # x_t U for every t at once: (K, N, T, H)
    states = []
    for t in range(x.shape[1]):
        h = torch.tanh(torch.baddbmm(drive[:, :, t], h, w))
        if keep:
            h.retain_grad()
        states.append(h)
    return h @ v, states


def run(experiment: Experiment, p: ClippingParams, ctx: RunContext) -> EngineOutput:
    """Train both variants; loss and global gradient norm (before clipping) at every step."""
    x, y = make_data(p.seed, p.seq_len)
    g = torch.Generator().manual_seed(p.seed)
    w0 = torch.randn(HIDDEN, HIDDEN, generator=g) * p.recurrent_gain / math.sqrt(HIDDEN)
    u0 = torch.randn(1, HIDDEN, generator=g)
    v0 = torch.randn(HIDDEN, 1, generator=g) / math.sqrt(HIDDEN)  # fixed readout
    names = [v.name for v in experiment.variants]
    k = len(names)
    w = w0.expand(k, -1, -1).clone().requires_grad_()
    u = u0.expand(k, -1, -1).clone().requires_grad_()
    v = v0.expand(k, -1, -1).clone()
    max_norm = torch.tensor([math.inf if n == "unclipped" else p.max_norm for n in names])
    losses: list[torch.Tensor] = []
    norms: list[torch.Tensor] = []
    through_time: list[float] = []
    saturated: list[float] = []
    every = max(1, p.steps // PROGRESS_EVERY)
    for step in range(p.steps + 1):
        ctx.check(step, p.steps)
        out, states = forward(w, u, v, x, keep=step == 0)
        loss = (out - y).square().mean(dim=(1, 2))  # (K,)
        loss.sum().backward()  # the variants are independent: each gets its own gradient
        gnorm = torch.sqrt(w.grad.flatten(1).square().sum(1) + u.grad.flatten(1).square().sum(1))
        losses.append(loss.detach())
        norms.append(gnorm)
        if step == 0:  # the gradient reaching each time step, at initialization (variant 0)
            through_time = [float(h.grad[0].norm()) for h in states]
        if step == p.steps:  # per variant: the fraction of hidden states in tanh's flat tails
            saturated = (
                (torch.stack(states).detach().abs() > 0.99).float().mean(dim=(0, 2, 3)).tolist()
            )
        if step < p.steps:
            with torch.no_grad():
                # rescale to norm max_norm when above it (clip_grad_norm_, per variant)
                scale = torch.clamp(max_norm / (gnorm + 1e-6), max=1.0).view(k, 1, 1)
                w -= p.lr * scale * w.grad
                u -= p.lr * scale * u.grad
        w.grad = u.grad = None
        if ctx.wants_progress and step % every == 0 and 0 < step < p.steps:
            ctx.progress(step, p.steps, _charts(experiment, p, losses, norms, through_time))
    return _output(experiment, p, losses, norms, through_time, saturated)


def _output(
    experiment: Experiment,
    p: ClippingParams,
    losses: list[torch.Tensor],
    norms: list[torch.Tensor],
    through_time: list[float],
    saturated: list[float],
) -> EngineOutput:
    loss_t, norm_t = torch.stack(losses, 1), torch.stack(norms, 1)  # (K, steps + 1)
    results = []
    for i, v in enumerate(experiment.variants):
        row, nrow = loss_t[i].tolist(), norm_t[i].tolist()
        results.append(
            VariantResult(
                name=v.name,
                label=v.label,
                metrics={
                    "final_loss": num(row[-1]),
                    "initial_loss": num(row[0]),
                    "initial_grad_norm": num(nrow[0]),
                    "max_grad_norm": num(max(nrow)) if all(map(math.isfinite, nrow)) else None,
                    "saturated_fraction": num(saturated[i]),
                    "clipped_fraction": sum(n > p.max_norm for n in nrow[:-1]) / max(1, p.steps)
                    if v.name == "clipped"
                    else 0.0,
                },
                loss=[num(x) for x in row],
            )
        )
    m = {r.name: r.metrics for r in results}
    unclipped = float(loss_t[names_index(experiment, "unclipped"), -1])
    clipped = float(loss_t[names_index(experiment, "clipped"), -1])
    # a non-finite unclipped loss is infinitely worse: the ratio is then 0
    ratio = (
        clipped / unclipped
        if math.isfinite(unclipped) and unclipped > 0
        else (0.0 if math.isfinite(clipped) else None)
    )
    run_metrics: dict[str, Number] = {
        "clipped_over_unclipped_loss": num(ratio) if ratio is not None else None,
        "first_over_last_step_gradient": num(through_time[0] / through_time[-1])
        if through_time[-1] > 0
        else None,
        "clipped_final_over_initial": _ratio(
            m["clipped"]["final_loss"], m["clipped"]["initial_loss"]
        ),
    }
    return EngineOutput(
        variants=results,
        charts=_charts(experiment, p, losses, norms, through_time),
        summary=(
            f"With recurrent gain {fmt(p.recurrent_gain)} the gradient at the first of "
            f"{p.seq_len} time steps is {fmt(run_metrics['first_over_last_step_gradient'])} "
            f"times the one at the last, and its norm starts at "
            f"{fmt(m['unclipped']['initial_grad_norm'])}; "
            f"after {p.steps} steps at lr {fmt(p.lr)} the loss is {_loss(unclipped)} without "
            f"clipping and {_loss(clipped)} with clipping at norm {fmt(p.max_norm)}."
        ),
        run_metrics=run_metrics,
    )


def names_index(experiment: Experiment, name: str) -> int:
    return [v.name for v in experiment.variants].index(name)


def _loss(x: float) -> str:
    return fmt(x) if math.isfinite(x) else "non-finite"


def _ratio(a: Number, b: Number) -> Number:
    return None if a is None or b is None or b == 0 else a / b


def _charts(
    experiment: Experiment,
    p: ClippingParams,
    losses: list[torch.Tensor],
    norms: list[torch.Tensor],
    through_time: list[float],
) -> list[Chart]:
    loss_t, norm_t = torch.stack(losses, 1).tolist(), torch.stack(norms, 1).tolist()
    variants = experiment.variants
    finals = [f"{_loss(loss_t[i][-1])} ({v.label.lower()})" for i, v in enumerate(variants)]
    peaks = [f"{fmt(max(norm_t[i]))} ({v.label.lower()})" for i, v in enumerate(variants)]
    steps = len(loss_t[0]) - 1
    return [
        loss_chart(
            "loss",
            "Training loss by step (log scale)",
            [curve(v.label, [num(x) for x in loss_t[i]], v.name) for i, v in enumerate(variants)],
            finding=f"After {steps} steps the loss is " + " and ".join(finals) + ".",
            y_log=True,
        ),
        Chart(
            id="grad_norm",
            kind="line",
            title="Global gradient norm by step, before clipping (log scale)",
            x_label="step",
            y_label="gradient norm",
            y_log=True,
            series=[
                curve(v.label, [num(x) for x in norm_t[i]], v.name) for i, v in enumerate(variants)
            ]
            + [
                Series(
                    label="max_norm",
                    points=[(0.0, p.max_norm), (float(steps), p.max_norm)],
                    style="dashed",
                )
            ],
            finding="The largest gradient norm is "
            + " and ".join(peaks)
            + f"; clipping caps it at {fmt(p.max_norm)}.",
        ),
        Chart(
            id="through_time",
            kind="line",
            title="Gradient reaching each time step at initialization (log scale)",
            x_label="time step",
            y_label="gradient norm w.r.t. h_t",
            y_log=True,
            series=[
                Series(
                    label="dL/dh_t",
                    points=[(float(t + 1), num(x)) for t, x in enumerate(through_time)],
                )
            ],
            finding=f"Going back from step {len(through_time)} to step 1 the gradient changes by "
            f"a factor of {fmt(_ratio(through_time[0], through_time[-1]))}.",
        ),
    ]
