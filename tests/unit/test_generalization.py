"""The generalization family: its engines against plain references, and its effects elsewhere.

The stacked train-vs-validation engine must reproduce an ordinary nn.Sequential trained by
torch.optim.AdamW; the double-descent engine must agree with a closed form; and the effects
must hold at a second setting and fail where theory says they must.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from app.demo.catalog import EXPERIMENTS, resolve
from app.demo.engines import generalization_curves as curves
from app.demo.engines import generalization_double_descent as double_descent
from app.demo.engines import generalization_loss as loss_functions
from app.demo.experiment import RunContext, execute
from app.demo.families.generalization import CurvesParams, WeightDecayParams
from app.demo.result import DemoResult


def run(name: str, **params: object) -> DemoResult:
    experiment, p = resolve(name, {k: str(v) for k, v in params.items()})
    return execute(experiment, p)


def claims(result: DemoResult) -> dict[str, bool]:
    return {c.id: c.holds for c in result.claims}


def metrics(result: DemoResult) -> dict[str, dict[str, float | None]]:
    return {v.name: v.metrics for v in result.variants}


# ----------------------------------------------------------------------------- reference


def reference_curves(params: CurvesParams, weight_decay: float) -> tuple[list[float], list[float]]:
    """Train and validation loss at every step of an nn.Sequential trained by AdamW, from
    the engine's initial weights, on the engine's data (no dropout, no rotations)."""
    torch.set_num_threads(1)
    train, val, _ = curves.make_data(params)
    start = curves.StackedMLP(
        1, params.width, params.depth, curves.generator(params.seed, curves.INIT)
    )
    sizes = [2] + [params.width] * params.depth + [1]
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for i, lin in enumerate(linears):
            lin.weight.copy_(start.params[2 * i][0].t())
            lin.bias.copy_(start.params[2 * i + 1][0, 0])
    opt = torch.optim.AdamW(
        [
            {"params": [m.weight for m in linears], "weight_decay": weight_decay},
            {"params": [m.bias for m in linears], "weight_decay": 0.0},
        ],
        lr=params.lr,
    )
    loss_fn = nn.BCEWithLogitsLoss()
    tr, va = [], []
    for step in range(params.steps + 1):
        with torch.no_grad():
            tr.append(float(loss_fn(model(train.x), train.y)))
            va.append(float(loss_fn(model(val.x), val.y)))
        if step == params.steps:
            break
        opt.zero_grad()
        loss_fn(model(train.x), train.y).backward()
        opt.step()
    return tr, va


def test_the_stacked_engine_matches_adamw_on_an_nn_module() -> None:
    """Both variants of weight-decay (stacked, K = 2) train exactly as separate networks."""
    experiment = EXPERIMENTS["weight-decay"]
    p = WeightDecayParams(steps=40, width=16, seed=3)
    t = curves.run_training(experiment, p, RunContext("cpu"), lambda *_: None)
    assert p.steps <= curves.CURVE_POINTS  # evaluated at every step
    for k, wd in ((0, 0.0), (1, p.weight_decay)):
        slot = t.slots[t.slot_of[k]]
        want_train, want_val = reference_curves(p, wd)
        assert slot.steps == list(range(p.steps + 1))
        assert slot.train == pytest.approx(want_train, rel=1e-4, abs=1e-6)
        assert slot.val == pytest.approx(want_val, rel=1e-4, abs=1e-6)


def test_the_early_stopped_model_is_the_best_validation_step() -> None:
    """The weights kept are those of the lowest validation loss recorded while training."""
    m = metrics(run("early-stopping", seed=1))
    stopped, final = m["stopped"], m["final"]
    assert stopped["final_val_loss"] == pytest.approx(stopped["best_val_loss"], rel=1e-5)
    assert stopped["best_val_loss"] == final["best_val_loss"]
    assert stopped["final_val_loss"] is not None and final["final_val_loss"] is not None
    assert stopped["final_val_loss"] <= final["final_val_loss"]


def test_rotations_keep_the_labels() -> None:
    """Rotation is a true invariance of the task: a rotated point keeps its class."""
    g = torch.Generator().manual_seed(0)
    split = curves.make_split(500, 0.0, g)
    turned = curves.rotate(split.x, torch.rand(500, 1, generator=g) * 2 * math.pi)
    inside = (turned.norm(dim=1) < curves.RADIUS).float()
    assert torch.equal(inside, split.y[:, 0])


# ----------------------------------------------------------------------------- effects


@pytest.mark.parametrize(
    ("name", "regularizer"),
    [("dropout", "dropout"), ("weight-decay", "weight_decay"), ("data-augmentation", "rotation")],
)
def test_without_the_regularizer_both_variants_are_the_same_run(
    name: str, regularizer: str
) -> None:
    """Same data, seed and initialization: at strength 0 the idea is all that differed."""
    result = run(name, **{regularizer: 0})
    a, b = (v.metrics for v in result.variants)
    assert a == b
    assert not result.claims[0].holds


@pytest.mark.slow
def test_overfitting_also_shows_with_more_label_noise_and_a_deeper_model() -> None:
    result = run("overfitting", label_noise=0.2, depth=3, seed=4)
    assert all(claims(result).values()), result.claims


@pytest.mark.slow
def test_a_regularizer_helps_little_without_label_noise_and_with_plenty_of_data() -> None:
    """Regularization fights memorized noise: with clean labels and many examples the
    plain network no longer overfits, and weight decay no longer lowers its loss much."""
    result = run("weight-decay", label_noise=0.0, n_train=500)
    m = metrics(result)
    assert m["none"]["val_rise"] is not None and m["none"]["val_rise"] < 2
    assert not claims(result)["decay-lower-val"]


# ----------------------------------------------------------------------------- double descent


@pytest.mark.parametrize("shape", [(30, 12), (30, 30), (30, 90)])
def test_the_fit_is_the_pseudo_inverse_or_the_ridge_solution(shape: tuple[int, int]) -> None:
    n, p = shape
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, p, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    assert torch.allclose(double_descent.fit(a, y, 0.0), torch.linalg.pinv(a) @ y, atol=1e-8)
    ridge = 0.05
    want = torch.linalg.solve(a.T @ a + n * ridge * torch.eye(p, dtype=a.dtype), a.T @ y)
    assert torch.allclose(double_descent.fit(a, y, ridge), want, atol=1e-10)
    if p >= n:  # minimum-norm least squares interpolates once there are enough features
        assert float((a @ double_descent.fit(a, y, 0.0) - y).abs().max()) < 1e-8


def test_the_peak_follows_the_number_of_training_points() -> None:
    """The interpolation threshold is p = n whatever n is."""
    result = run("double-descent", n_train=150, seed=5)
    assert all(claims(result).values()), result.claims
    assert metrics(result)["least-squares"]["peak_features_over_n"] == 1.0


# ----------------------------------------------------------------------------- loss functions


def test_the_logit_gradients_are_the_textbook_ones() -> None:
    """dL/dz is 2 (p - y) p (1 - p) for squared error and p - y for cross-entropy."""
    z = torch.linspace(-6, 6, 13).view(-1, 1).repeat(1, 2).requires_grad_()
    y = (torch.arange(13) % 2).float()
    mse, ce = loss_functions.losses(z, y)
    (mse[0] + ce[1]).backward()
    assert z.grad is not None
    p, n = torch.sigmoid(z.detach()), 13
    assert torch.allclose(z.grad[:, 0] * n, 2 * (p[:, 0] - y) * p[:, 0] * (1 - p[:, 0]), atol=1e-6)
    assert torch.allclose(z.grad[:, 1] * n, p[:, 1] - y, atol=1e-6)


def test_from_a_zero_start_the_squared_error_gradient_is_exactly_half() -> None:
    """At z = 0, p (1 - p) = 1/4: 2 (p - y) p (1 - p) is half of p - y for every point."""
    m = metrics(run("loss-functions", init_logit=0))
    mse, ce = m["mse"]["initial_grad"], m["cross-entropy"]["initial_grad"]
    assert mse is not None and ce is not None
    assert mse == pytest.approx(0.5 * ce, rel=1e-5)


def test_cross_entropy_recovers_faster_at_another_setting() -> None:
    result = run("loss-functions", init_logit=6, lr=0.5, n_train=200, steps=600, seed=7)
    assert all(claims(result).values()), result.claims
