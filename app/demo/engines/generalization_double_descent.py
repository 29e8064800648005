"""Double-descent engine: random ReLU features fitted by (ridge) least squares, p swept.

Data: x ~ N(0, I_d), y = <u, x> + noise with |u| = 1; n training and N_TEST test points.
Features: phi_j(x) = relu(<w_j, x> / sqrt(d)) / sqrt(p), w_j ~ N(0, I_d), the first p of one
draw of max_features, so every model of the sweep shares its features with the smaller ones.
Each variant fits beta minimizing |Phi beta - y|^2 / n + ridge |beta|^2 through one SVD
(ridge 0: the minimum-norm solution, which interpolates once p >= n), for every p.
"""

from __future__ import annotations

import math

import torch

from app.demo.engines.common import fmt, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.generalization_double_descent import DoubleDescentParams
from app.demo.result import Chart, Number, Series, VariantResult

N_TEST = 1000
SWEEP = 30  # log-spaced feature counts, plus a few around p = n
NEAR = (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25)  # multiples of n added to the sweep
PROGRESS_EVENTS = 6
DTYPE = torch.float64  # at p = n the smallest singular value is tiny; float32 would blur it


def feature_counts(n: int, max_features: int) -> list[int]:
    """About SWEEP log-spaced p from 1 to max_features, with n and its neighbours."""
    logs = torch.linspace(0, math.log(max_features), SWEEP).exp().round().int().tolist()
    near = [round(n * f) for f in NEAR]
    return sorted({p for p in [*logs, *near] if 1 <= p <= max_features})


def make_data(params: DoubleDescentParams) -> tuple[torch.Tensor, ...]:
    """Training and test inputs, targets, and the max_features random feature directions."""
    g = torch.Generator().manual_seed(params.seed)
    d = params.input_dim
    u = torch.randn(d, generator=g, dtype=DTYPE)
    u = u / u.norm()  # signal variance 1, so the noise-free error scale is 1

    def sample(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(m, d, generator=g, dtype=DTYPE)  # (m, d)
        return x, x @ u + params.noise * torch.randn(m, generator=g, dtype=DTYPE)

    x, y = sample(params.n_train)
    xt, yt = sample(N_TEST)
    w = torch.randn(params.max_features, d, generator=g, dtype=DTYPE)  # (P, d)
    return x, y, xt, yt, w


def fit(a: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
    """beta = argmin |a beta - y|^2 / n + ridge |beta|^2 (minimum norm when ridge = 0)."""
    u, s, vh = torch.linalg.svd(a, full_matrices=False)  # a (n, p) = u diag(s) vh
    if ridge == 0:  # pseudo-inverse, dropping singular values at rounding level
        cutoff = s.max() * max(a.shape) * torch.finfo(a.dtype).eps
        inv = torch.where(s > cutoff, 1 / s, torch.zeros_like(s))
    else:
        inv = s / (s**2 + a.shape[0] * ridge)
    return vh.T @ (inv * (u.T @ y))  # (p,)


def run(experiment: Experiment, params: DoubleDescentParams, ctx: RunContext) -> EngineOutput:
    """Train and test error and coefficient norm against p, for each variant's ridge."""
    x, y, xt, yt, w = make_data(params)
    phi = torch.relu(x @ w.T / math.sqrt(params.input_dim))  # (n, P)
    phi_t = torch.relu(xt @ w.T / math.sqrt(params.input_dim))  # (N_TEST, P)
    ps = feature_counts(params.n_train, params.max_features)
    ridges = [params.ridge, params.ridge_comparison]
    rows: list[list[tuple[int, float, float, float]]] = [[] for _ in ridges]  # p, train, test, |b|
    every = max(1, len(ps) // PROGRESS_EVENTS)
    for i, p in enumerate(ps):
        ctx.check(i, len(ps))
        a, at = phi[:, :p] / math.sqrt(p), phi_t[:, :p] / math.sqrt(p)
        for k, ridge in enumerate(ridges):
            beta = fit(a, y, ridge)
            train = float(((a @ beta - y) ** 2).mean())
            test = float(((at @ beta - yt) ** 2).mean())
            rows[k].append((p, train, test, float(beta.norm())))
        if ctx.wants_progress and (i % every == 0 or i == len(ps) - 1):
            ctx.progress(i + 1, len(ps), [_error_chart(experiment, params, rows, ridges)])
    results = [
        VariantResult(
            name=v.name, label=_label(ridges[k]), metrics=_metrics(rows[k], params.n_train)
        )
        for k, v in enumerate(experiment.variants)
    ]
    main = results[0].metrics
    return EngineOutput(
        variants=results,
        charts=[
            _error_chart(experiment, params, rows, ridges),
            _norm_chart(experiment, params, rows, ridges),
        ],
        summary=(
            f"With {params.n_train} training points and {_label(ridges[0]).lower()}, test "
            f"error is {fmt(main['best_under'])} at best with p < n, "
            f"{fmt(main['test_at_threshold'])} at p = n and {fmt(main['test_at_max'])} at "
            f"p = {params.max_features}; with {_label(ridges[1]).lower()} it is "
            f"{fmt(results[1].metrics['test_at_threshold'])} at p = n."
        ),
    )


def _label(ridge: float) -> str:
    return "Minimum-norm least squares" if ridge == 0 else f"Ridge {ridge:g}"


def _metrics(rows: list[tuple[int, float, float, float]], n: int) -> dict[str, Number]:
    """The claims' numbers: error at p = n, at the largest p, best on either side, the peak."""
    test = {p: t for p, _, t, _ in rows}
    under = min(t for p, t in test.items() if p < n)
    over = min(t for p, t in test.items() if p > n)
    peak = max(test, key=test.__getitem__)
    at_n, last = test[n], rows[-1][2]
    return {
        "final_loss": num(rows[-1][1]),  # at the largest p
        "final_train_loss": num(rows[-1][1]),
        "final_val_loss": num(last),  # on the test set
        "test_at_threshold": num(at_n),
        "test_at_max": num(last),
        "best_under": num(under),
        "best_over": num(over),
        "peak_features_over_n": peak / n,
        "threshold_over_max": num(at_n / last),
        "threshold_over_under": num(at_n / under),
        "max_over_under": num(last / under),
    }


def _error_chart(
    experiment: Experiment,
    params: DoubleDescentParams,
    rows: list[list[tuple[int, float, float, float]]],
    ridges: list[float],
) -> Chart:
    series: list[Series] = []
    for k, v in enumerate(experiment.variants):
        label = _label(ridges[k])
        series.append(
            Series(
                label=f"{label}, test",
                variant=v.name,
                points=[(p, num(t)) for p, _, t, _ in rows[k]],
            )
        )
        # exact zeros (an interpolating fit) cannot sit on a log axis: left out
        train = [(float(p), num(tr) if tr > 1e-12 else None) for p, tr, _, _ in rows[k]]
        series.append(Series(label=f"{label}, train", variant=v.name, points=train, style="dashed"))
    ys = [y for s in series for _, y in s.points if y is not None]
    if ys:
        n = float(params.n_train)
        series.append(
            Series(
                label="p = n (interpolation threshold)",
                points=[(n, min(ys)), (n, max(ys))],
                style="dashed",
            )
        )
    finding = ""
    if rows[0] and rows[0][-1][0] == params.max_features:
        m = _metrics(rows[0], params.n_train)
        finding = (
            f"{_label(ridges[0])}: test error {fmt(m['best_under'])} at best with p < n, "
            f"{fmt(m['test_at_threshold'])} at p = n, {fmt(m['test_at_max'])} at "
            f"p = {params.max_features}."
        )
    return Chart(
        id="error",
        kind="line",
        title="Test (solid) and training (dashed) error against the number of features",
        x_label="random features p",
        y_label="mean squared error",
        x_log=True,
        y_log=True,
        series=series,
        finding=finding,
    )


def _norm_chart(
    experiment: Experiment,
    params: DoubleDescentParams,
    rows: list[list[tuple[int, float, float, float]]],
    ridges: list[float],
) -> Chart:
    series = [
        Series(
            label=_label(ridges[k]), variant=v.name, points=[(p, num(b)) for p, _, _, b in rows[k]]
        )
        for k, v in enumerate(experiment.variants)
    ]
    peak = max(rows[0], key=lambda r: r[3])
    near = ", at the interpolation threshold" if 0.5 <= peak[0] / params.n_train <= 2 else ""
    return Chart(
        id="norm",
        kind="line",
        title="Norm of the fitted coefficients against the number of features",
        x_label="random features p",
        y_label="|beta|",
        x_log=True,
        y_log=True,
        series=series,
        finding=(
            f"{_label(ridges[0])}: the coefficients are largest, {fmt(peak[3])}, at "
            f"p = {peak[0]}{near}; at p = {rows[0][-1][0]} they are {fmt(rows[0][-1][3])}."
        ),
    )
