"""Loss-function engine: a sigmoid classifier started confidently wrong, MSE vs cross-entropy.

Data: two Gaussian blobs at +-SEPARATION along a random unit direction u (std BLOB_STD),
labels 0/1. Model: p = sigmoid(<w, x> + b). Both variants start from the same weights,
w = -u * init_logit / SEPARATION and b = 0, so every point sits on the wrong side with a
logit of about init_logit, and take plain gradient-descent steps of the same size (no
Adam: its normalized steps would hide the size of the gradient, the point of the lesson).
dL/dz is (p - y) for cross-entropy but 2 (p - y) p (1 - p) for squared error: when p is
saturated at the wrong end, p (1 - p) is tiny and squared error barely moves.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from app.demo.engines.common import curve, fmt, loss_chart, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.generalization_loss import LossFunctionParams
from app.demo.result import Chart, Number, Series, VariantResult

SEPARATION = 2.0  # blob centres at +-2 along u
BLOB_STD = 0.5
TARGET_ACC = 0.9  # "recovered": this fraction of training points on the right side
PROGRESS_EVENTS = 6
LOGITS = torch.linspace(-10, 10, 81)  # where dL/dz is drawn for a positive example


def make_data(params: LossFunctionParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs (n, 2), labels (n,) alternating 0/1, and the blobs' direction u (2,)."""
    g = torch.Generator().manual_seed(params.seed)
    u = torch.randn(2, generator=g)
    u = u / u.norm()
    y = (torch.arange(params.n_train) % 2).float()
    x = (2 * y - 1).view(-1, 1) * SEPARATION * u + BLOB_STD * torch.randn(
        params.n_train, 2, generator=g
    )
    return x, y, u


def losses(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared error of the probability and binary cross-entropy, per logit column: (K,)."""
    mse = ((torch.sigmoid(z) - y.view(-1, 1)) ** 2).mean(0)
    ce = F.binary_cross_entropy_with_logits(z, y.view(-1, 1).expand_as(z), reduction="none").mean(0)
    return mse, ce


def run(experiment: Experiment, params: LossFunctionParams, ctx: RunContext) -> EngineOutput:
    """Train both variants by gradient descent; accuracy, loss and gradient at every step."""
    x, y, u = make_data(params)
    k = len(experiment.variants)  # column 0: squared error, column 1: cross-entropy
    w = (-u * params.init_logit / SEPARATION).view(2, 1).repeat(1, k).requires_grad_()  # (2, K)
    b = torch.zeros(k, requires_grad=True)  # (K,)
    hist: list[torch.Tensor] = []  # (4, K) per step: own loss, accuracy, |grad|, mean |dL/dz|
    every = max(1, params.steps // PROGRESS_EVENTS)
    for step in range(params.steps + 1):
        ctx.check(step, params.steps)
        z = x @ w + b  # (n, K)
        z.retain_grad()
        mse, ce = losses(z, y)
        own = torch.stack([mse[0], ce[1]])  # each variant trains on its own loss
        own.sum().backward()
        assert w.grad is not None and b.grad is not None and z.grad is not None
        with torch.no_grad():
            grad = (w.grad.square().sum(0) + b.grad.square()).sqrt()  # (K,)
            acc = ((z > 0).float() == y.view(-1, 1)).float().mean(0)
            dz = z.grad.abs().mean(0) * params.n_train  # per example, undoing the mean
            hist.append(torch.stack([own.detach(), acc, grad, dz]))
            if step < params.steps:
                w -= params.lr * w.grad
                b -= params.lr * b.grad
        w.grad, b.grad = None, None
        if ctx.wants_progress and (step % every == 0 or step == params.steps):
            ctx.progress(
                step, params.steps, [_by_step(experiment, torch.stack(hist), 1, "accuracy")]
            )
    h = torch.stack(hist)  # (steps + 1, 4, K)
    results = [
        VariantResult(name=v.name, label=v.label, metrics=_metrics(h[:, :, i], params.steps))
        for i, v in enumerate(experiment.variants)
    ]
    m = {r.name: r.metrics for r in results}
    return EngineOutput(
        variants=results,
        charts=[
            _by_step(experiment, h, 1, "accuracy"),
            _by_step(experiment, h, 0, "loss"),
            _by_step(experiment, h, 2, "gradient"),
            _gradient_vs_logit(params),
        ],
        summary=(
            f"Started with logits of about {params.init_logit:g} on the wrong side, "
            f"cross-entropy put {TARGET_ACC:.0%} of the points right "
            f"{_when(m['cross-entropy'], params.steps)} and squared error "
            f"{_when(m['mse'], params.steps)}; at the start the squared-error gradient was "
            f"{fmt(m['mse']['initial_grad'])} against cross-entropy's "
            f"{fmt(m['cross-entropy']['initial_grad'])}."
        ),
    )


def _when(m: dict[str, Number], steps: int) -> str:
    """'after 12 steps', or 'not within 300 steps'."""
    if not m["reached_target"] or m["steps_to_target"] is None:
        return f"not within {steps} steps"
    return f"after {int(m['steps_to_target'])} steps"


def _metrics(h: torch.Tensor, steps: int) -> dict[str, Number]:
    """h (steps + 1, 4): own loss, accuracy, gradient norm, mean |dL/dz| by step."""
    reached = (h[:, 1] >= TARGET_ACC).nonzero()
    first = int(reached[0]) if len(reached) else steps  # censored: never within the run
    return {
        "final_loss": num(float(h[-1, 0])),
        "initial_loss": num(float(h[0, 0])),
        "final_acc": float(h[-1, 1]),
        "steps_to_target": float(max(1, first)),
        "reached_target": float(len(reached) > 0),
        "initial_grad": num(float(h[0, 2])),
        "initial_dlogit": num(float(h[0, 3])),
    }


_CHART = {
    "accuracy": ("Training accuracy by step", "fraction of points on the right side", False),
    "loss": ("Each variant's own training loss by step", "loss", True),
    "gradient": ("Gradient norm by step", "|gradient| of the weights", True),
}


def _by_step(experiment: Experiment, h: torch.Tensor, row: int, chart_id: str) -> Chart:
    title, y_label, y_log = _CHART[chart_id]
    series = [
        curve(v.label, [num(float(a)) for a in h[:, row, i]], v.name)
        for i, v in enumerate(experiment.variants)
    ]
    finals = " and ".join(
        f"{fmt(float(h[-1, row, i]))} ({v.label})" for i, v in enumerate(experiment.variants)
    )
    starts = " and ".join(f"{fmt(float(h[0, row, i]))}" for i in range(len(experiment.variants)))
    if chart_id == "loss":
        return loss_chart(
            "loss", title, series, f"From {starts} at the start to {finals}.", y_log=True
        )
    last = h.shape[0] - 1
    finding = f"From {starts} at the start to {finals} at step {last}."
    if chart_id == "accuracy":
        parts = [
            f"{v.label} puts {TARGET_ACC:.0%} of the points right "
            + _when(_metrics(h[:, :, i], last), last)
            for i, v in enumerate(experiment.variants)
        ]
        finding = "; ".join(parts) + "."
    return Chart(
        id=chart_id,
        kind="line",
        title=title,
        x_label="step",
        y_label=y_label,
        y_log=y_log,
        series=series,
        finding=finding,
    )


def _gradient_vs_logit(params: LossFunctionParams) -> Chart:
    """|dL/dz| against the logit z for a positive example (y = 1), both losses."""
    p = torch.sigmoid(LOGITS)
    grads = {
        "mse": 2 * (1 - p) * p * (1 - p),  # d/dz (p - 1)^2
        "cross-entropy": 1 - p,  # d/dz -log p
    }
    labels = {"mse": "Squared error", "cross-entropy": "Cross-entropy"}
    series = [
        Series(
            label=labels[name],
            variant=name,
            points=[(float(z), num(float(d))) for z, d in zip(LOGITS, g, strict=True)],
        )
        for name, g in grads.items()
    ]
    z0 = -params.init_logit
    p0 = 1 / (1 + math.exp(-z0))
    at = {"mse": 2 * (1 - p0) * p0 * (1 - p0), "cross-entropy": 1 - p0}
    return Chart(
        id="gradient_vs_logit",
        kind="line",
        title="|dL/dz| for a positive example (y = 1) against its logit z",
        x_label="logit z",
        y_label="|dL/dz|",
        y_log=True,
        series=series,
        finding=(
            f"At z = {z0:g}, a confidently wrong prediction, the cross-entropy gradient is "
            f"{fmt(at['cross-entropy'])} and the squared-error gradient {fmt(at['mse'])}."
        ),
    )
