"""Generalization engine, train-vs-validation experiments: metrics, charts and summaries.

The training itself is in generalization_curves.py; this module turns what it measured into
each variant's metrics, the loss, probability-map and weight-norm charts, and a summary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

from app.demo.engines.common import fmt, loss_chart, num
from app.demo.engines.generalization_curves import (
    RADIUS,
    Trained,
    model_of,
    predict,
    run_training,
    variant_metrics,
)
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.generalization import CurvesParams
from app.demo.result import Chart, Grid, Number, Series, VariantResult

MAP = 41  # grid points per side of the probability maps
Style = Literal["line", "points", "dashed"]

Metrics = dict[str, dict[str, Number]]


def run_curves(experiment: Experiment, params: CurvesParams, ctx: RunContext) -> EngineOutput:
    """Train the experiment's variants; train, validation and test loss, fits, weight norms."""

    def report(step: int, total: int, t: Trained) -> None:
        if ctx.wants_progress:
            ctx.progress(step, total, [_loss_chart(t, final=False)])

    t = run_training(experiment, params, ctx, report)
    results = [
        VariantResult(name=v.name, label=v.label, metrics=variant_metrics(t, k))
        for k, v in enumerate(t.variants)
    ]
    by = {r.name: r.metrics for r in results}
    boundaries = {f"boundary-{v.name}": k for k, v in enumerate(t.variants)}

    def chart(chart_id: str) -> Chart:
        if chart_id == "loss":
            return _loss_chart(t, final=True)
        if chart_id == "weight_norm":
            return _norm_chart(t, by)
        return _boundary_chart(t, boundaries[chart_id], by)

    return EngineOutput(
        variants=results,
        charts=[chart(c.id) for c in experiment.charts],
        summary=SUMMARIES[experiment.name](params, by),
    )


# ----------------------------------------------------------------------------- charts


def _loss_chart(t: Trained, final: bool) -> Chart:
    """Train (solid) and validation (dashed) loss of each training run; the stopping point."""
    series: list[Series] = []
    drawn: set[int] = set()
    for k, v in enumerate(t.variants):
        i, s = t.slot_of[k], t.slots[t.slot_of[k]]
        if v.restore_best:  # an early-stopped variant is a point on its run's curve
            if final:
                b = s.best_index
                series.append(
                    _series(
                        f"{v.label} (best validation step)",
                        v.name,
                        [s.steps[b]],
                        [s.val[b]],
                        "points",
                    )
                )
            continue
        if i not in drawn:
            drawn.add(i)
            series.append(_series(f"{v.label}, training", v.name, s.steps, s.train, "line"))
            series.append(_series(f"{v.label}, validation", v.name, s.steps, s.val, "dashed"))
    return loss_chart(
        "loss",
        "Training (solid) and validation (dashed) loss by step",
        series,
        _loss_finding(t) if final else "",
        y_log=True,
    )


def _series(
    label: str, variant: str, xs: list[int], ys: list[float], style: Style = "line"
) -> Series:
    return Series(
        label=label,
        variant=variant,
        points=[(float(x), num(y)) for x, y in zip(xs, ys, strict=True)],
        style=style,
    )


def _loss_finding(t: Trained) -> str:
    parts = []
    for k, v in enumerate(t.variants):
        if v.restore_best:
            continue
        s = t.slots[t.slot_of[k]]
        b = s.best_index
        parts.append(
            f"{v.label}: validation loss lowest ({fmt(s.val[b])}) at step {s.steps[b]}, "
            f"{fmt(s.val[-1])} at the end, training loss {fmt(s.train[-1])}"
        )
    return "; ".join(parts) + "."


def _boundary_chart(t: Trained, k: int, by: Metrics) -> Chart:
    """Variant k's P(class 1) over the square around the disk, the training points on it."""
    v, train = t.variants[k], t.data[0]
    axis = torch.linspace(-1, 1, MAP)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")  # (MAP, MAP): row j is y = axis[j]
    with torch.no_grad():
        p = torch.sigmoid(predict(model_of(t, k), torch.stack([gx, gy], -1).view(-1, 2)))
    angle = torch.linspace(0, 2 * math.pi, 65)
    points = [
        Series(
            label=f"training points labelled {c}",
            points=[(float(a), float(b)) for a, b in train.x[train.y[:, 0] == c].tolist()],
            style="points",
        )
        for c in (1, 0)
    ]
    circle = Series(
        label="true boundary",
        points=[
            (float(a), float(b))
            for a, b in zip(RADIUS * angle.cos(), RADIUS * angle.sin(), strict=True)
        ],
        style="dashed",
    )
    m = by[v.name]
    return Chart(
        id=f"boundary-{v.name}",
        kind="contour",
        title=f"{v.label}: P(class 1)",
        x_label="x1",
        y_label="x2",
        series=[*points, circle],
        grid=Grid(x=axis.tolist(), y=axis.tolist(), z=p.view(MAP, MAP).tolist()),
        finding=(
            f"{v.label} classifies {_pct(m['final_train_acc'])} of the training points and "
            f"{_pct(m['final_val_acc'])} of the validation points correctly."
        ),
    )


def _pct(x: Number) -> str:
    return "undefined" if x is None else f"{100 * x:.0f}%"


def _norm_chart(t: Trained, by: Metrics) -> Chart:
    series = [
        _series(v.label, v.name, t.slots[t.slot_of[k]].steps, t.slots[t.slot_of[k]].norm, "line")
        for k, v in enumerate(t.variants)
    ]
    finding = " and ".join(f"{fmt(by[v.name]['weight_norm'])} ({v.label})" for v in t.variants)
    return Chart(
        id="weight_norm",
        kind="line",
        title="Weight norm by step",
        x_label="step",
        y_label="L2 norm of all weights",
        series=series,
        finding=f"The weights end with norm {finding}.",
    )


# ----------------------------------------------------------------------------- summaries


def _points(p: CurvesParams) -> str:
    return f"{p.n_train} training points ({p.label_noise:.0%} of labels flipped)"


def _int(x: Number) -> str:
    return "undefined" if x is None else str(round(x))


def _r(a: Number, b: Number) -> Number:
    return None if a is None or b is None or b == 0 else a / b


def _overfitting(p: CurvesParams, m: Metrics) -> str:
    lg, sm = m["large"], m["small"]
    return (
        f"On {_points(p)} the large model's training loss fell to "
        f"{fmt(lg['final_train_loss'])} while its validation loss rose from its best, "
        f"{fmt(lg['best_val_loss'])} at step {_int(lg['best_step'])}, to "
        f"{fmt(lg['final_val_loss'])} ({fmt(lg['val_rise'])}x); the small model ended at "
        f"{fmt(sm['final_val_loss'])}."
    )


def _with_without(
    idea: str, off: str, on: str, also: str | None = None
) -> Callable[[CurvesParams, Metrics], str]:
    """'... validation loss X without <idea> and Y with it ...' (and one more metric)."""

    def summary(p: CurvesParams, m: Metrics) -> str:
        a, b = m[off], m[on]
        more = ""
        if also is not None:
            more = f"; {also.replace('_', ' ')} {fmt(a[also])} without and {fmt(b[also])} with"
        return (
            f"On {_points(p)} the final validation loss is "
            f"{fmt(a['final_val_loss'])} without {idea} and {fmt(b['final_val_loss'])} with "
            f"it ({fmt(_r(b['final_val_loss'], a['final_val_loss']))}x); the gap between "
            f"validation and training loss is {fmt(a['gap'])} without and {fmt(b['gap'])} "
            f"with{more}."
        )

    return summary


def _early_stopping(p: CurvesParams, m: Metrics) -> str:
    s, f = m["stopped"], m["final"]
    return (
        f"Validation loss was lowest at step {_int(s['best_step'])} of {p.steps}; the model "
        f"kept from that step has test loss {fmt(s['final_test_loss'])}, the one trained to "
        f"the end {fmt(f['final_test_loss'])} "
        f"({fmt(_r(s['final_test_loss'], f['final_test_loss']))}x)."
    )


SUMMARIES: dict[str, Callable[[CurvesParams, Metrics], str]] = {
    "overfitting": _overfitting,
    "dropout": _with_without("dropout", "none", "dropout"),
    "weight-decay": _with_without("weight decay", "none", "decay", "weight_norm"),
    "data-augmentation": _with_without("augmentation", "none", "augmented", "rotation_variance"),
    "early-stopping": _early_stopping,
}
