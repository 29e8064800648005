"""The optimization family against plain references: torch.optim, nn.RNN with
clip_grad_norm_, torch's schedulers, an exact Hessian and per-example gradients by hand; plus
the effects theory says must fail."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from app.demo.catalog import EXPERIMENTS, resolve
from app.demo.engines import optimization_clip as clip
from app.demo.engines import optimization_eos as eos
from app.demo.engines import optimization_noise as noise
from app.demo.engines import optimization_schedules as schedules
from app.demo.engines import optimization_warmup as warmup
from app.demo.engines.optimization import START, make_problem
from app.demo.engines.optimization_mlp import StackedMLP, make_regression
from app.demo.engines.optimization_sweep import LABEL_NOISE, N_TRAIN, learning_rates
from app.demo.errors import DemoInputError
from app.demo.experiment import execute
from app.demo.families.optimization import EXPERIMENTS as FAMILY_EXPERIMENTS
from app.demo.families.optimization_params import SweepParams
from app.demo.result import Chart, DemoResult, Progress
from app.demo.transformer import BatchedTransformer, TransformerConfig

F64 = torch.float64


def run(name: str, **params: object) -> DemoResult:
    experiment, p = resolve(name, {k: str(v) for k, v in params.items()})
    return execute(experiment, p)


def chart(result: DemoResult, chart_id: str) -> Chart:
    return next(c for c in result.charts if c.id == chart_id)


def claim(result: DemoResult, claim_id: str) -> bool:
    return next(c.holds for c in result.claims if c.id == claim_id)


def variant(result: DemoResult, name: str) -> dict[str, float | None]:
    return next(v.metrics for v in result.variants if v.name == name)


def test_the_family_is_in_the_catalog_and_its_defaults_fit_the_budget() -> None:
    for experiment in FAMILY_EXPERIMENTS:
        assert EXPERIMENTS[experiment.name] is experiment
        assert experiment.params().estimate_seconds() <= 1.0, experiment.name


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("edge-of-stability", {"steps": 4000, "width": 128}),
        ("learning-rate-sweep", {"steps": 2000, "points": 16}),
        ("gradient-clipping", {"steps": 2000, "seq_len": 100}),
    ],
)
def test_runs_far_beyond_the_defaults_are_refused(name: str, params: dict[str, int]) -> None:
    with pytest.raises(DemoInputError, match="compute budget"):
        resolve(name, {k: str(v) for k, v in params.items()})


# ----------------------------------------------------------------------------- optimizers


def test_optimizer_paths_match_torch_optim() -> None:
    """GD, momentum and Adam follow exactly the paths torch.optim's SGD and Adam take."""
    steps, kappa, seed = 40, 50.0, 1
    result = run("optimizers", steps=steps, condition_number=kappa, seed=seed)
    paths = {s.variant: s.points for s in chart(result, "paths").series}
    prob = make_problem(kappa, seed)
    makers: dict[str, Callable[[torch.Tensor], Any]] = {
        "gd": lambda w: torch.optim.SGD([w], lr=1.5),
        "momentum": lambda w: torch.optim.SGD([w], lr=1.5, momentum=0.9),
        "adam": lambda w: torch.optim.Adam([w], lr=0.3),
    }
    for name, make in makers.items():
        w = torch.tensor(START, dtype=F64, requires_grad=True)
        opt = make(w)
        want = [tuple(w.tolist())]
        for _ in range(steps):
            opt.zero_grad()
            (0.5 * (prob.x @ w - prob.y).square().mean()).backward()
            opt.step()
            want.append(tuple(w.tolist()))
        got = paths[name]
        assert len(got) == len(want)
        for (gx, gy), (wx, wy) in zip(got, want, strict=True):
            assert gx == pytest.approx(wx, rel=1e-9, abs=1e-12), name
            assert gy == pytest.approx(wy, rel=1e-9, abs=1e-12), name
        final = 0.5 * float((prob.x @ w.detach() - prob.y).square().mean())
        assert variant(result, name)["final_loss"] == pytest.approx(final, rel=1e-9)


def test_gradient_descent_matches_the_closed_form() -> None:
    """On a quadratic with Hessian diag(h), GD's excess loss after t steps is
    sum_i h_i (1 - lr h_i)^(2t) d_i^2 / 2 exactly."""
    steps, kappa, lr = 60, 20.0, 0.7
    result = run("optimizers", steps=steps, condition_number=kappa, lr=lr)
    h = torch.tensor([1 / kappa, 1.0], dtype=F64)
    d0 = torch.tensor(START, dtype=F64)
    want = float((0.5 * h * (1 - lr * h) ** (2 * steps) * d0.square()).sum())
    assert variant(result, "gd")["final_excess"] == pytest.approx(want, rel=1e-9)


def test_gradient_descent_stops_descending_above_two_over_the_curvature() -> None:
    """Theory: GD is stable only for lr < 2 / (largest curvature), here 2."""
    result = run("optimizers", lr=2.1)
    assert not claim(result, "gd-descends")
    gd = variant(result, "gd")
    assert gd["final_excess"] is not None and gd["initial_excess"] is not None
    assert gd["final_excess"] > gd["initial_excess"]


def test_momentum_helps_more_the_worse_the_conditioning() -> None:
    """Heavy ball's rate depends on sqrt(kappa) where GD's depends on kappa."""
    ratios = [run("optimizers", condition_number=k).claims[0].measured for k in (10.0, 50.0, 200.0)]
    assert all(r is not None for r in ratios)
    assert ratios[0] > ratios[1] > ratios[2]  # type: ignore[operator]


# ----------------------------------------------------------------------------- sweep


def test_sweep_rates_are_log_spaced_whichever_bound_is_larger() -> None:
    a = learning_rates(SweepParams(lr_min=1e-3, lr_max=1.0, points=4))
    b = learning_rates(SweepParams(lr_min=1.0, lr_max=1e-3, points=4))
    assert torch.equal(a, b)
    assert a.tolist() == pytest.approx([1e-3, 1e-2, 1e-1, 1.0], rel=1e-5)


def test_sweep_matches_a_plain_module_trained_with_torch_sgd() -> None:
    """The best rate's loss curve is what nn.Sequential + torch.optim.SGD give from the
    same initial weights."""
    steps, hidden, seed = 30, 16, 2
    result = run("learning-rate-sweep", steps=steps, hidden=hidden, seed=seed)
    best = next(v for v in result.variants if v.name == "best")
    lr = best.metrics["lr"]
    assert lr is not None and best.loss is not None
    data = make_regression(seed, N_TRAIN, LABEL_NOISE)
    init = StackedMLP(1, hidden, seed)
    net = nn.Sequential(nn.Linear(8, hidden), nn.Tanh(), nn.Linear(hidden, 1))
    with torch.no_grad():
        net[0].weight.copy_(init.w1[0].T)
        net[0].bias.copy_(init.b1[0, 0])
        net[2].weight.copy_(init.w2[0].T)
        net[2].bias.copy_(init.b2[0, 0])
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    want = []
    for _ in range(steps):
        loss = F.mse_loss(net(data.x_train), data.y_train)
        want.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    want.append(float(F.mse_loss(net(data.x_train), data.y_train).detach()))
    assert best.loss == pytest.approx(want, rel=1e-4)


# ----------------------------------------------------------------------------- edge of stability


def test_power_iteration_finds_the_exact_top_hessian_eigenvalue() -> None:
    """Against torch.autograd.functional.hessian + eigvalsh on a small network."""
    net = eos.FlatMLP(6)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, eos.D_IN, generator=g), torch.randn(12, 1, generator=g)
    theta = net.init(g)

    def loss_fn(t: torch.Tensor) -> torch.Tensor:
        return 0.5 * (net(t, x) - y).square().mean()

    exact = float(torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_fn, theta))[-1])
    t = theta.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss_fn(t), t, create_graph=True)
    v = torch.randn(net.size, generator=g)
    lam, _ = eos.top_eigenvalue(grad, t, v / v.norm(), 300)
    assert lam == pytest.approx(exact, rel=1e-3)


def test_edge_of_stability_also_holds_at_another_learning_rate() -> None:
    """At lr 0.3 the edge is 6.7: the sharpness rises to that one instead and hovers there."""
    result = run("edge-of-stability", lr=0.3)
    assert claim(result, "hovers-at-edge"), result.summary


# ----------------------------------------------------------------------------- clipping


def _reference_rnn_losses(
    max_norm: float, lr: float, gain: float, steps: int, seed: int
) -> list[float]:
    """nn.RNN (tanh, no bias) with a fixed readout, clip_grad_norm_ and torch.optim.SGD."""
    seq_len, h = 20, clip.HIDDEN
    x, y = clip.make_data(seed, seq_len)
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(h, h, generator=g) * gain / math.sqrt(h)
    u0 = torch.randn(1, h, generator=g)
    v0 = torch.randn(h, 1, generator=g) / math.sqrt(h)
    rnn = nn.RNN(1, h, bias=False, batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(w0.T)  # h_t = tanh(x_t W_ih^T + h_{t-1} W_hh^T)
        rnn.weight_ih_l0.copy_(u0.T)
    opt = torch.optim.SGD(rnn.parameters(), lr=lr)
    losses = []
    for _ in range(steps + 1):
        out, _ = rnn(x)
        loss = (out[:, -1] @ v0 - y).square().mean()
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(rnn.parameters(), max_norm)
        opt.step()
    return losses[: steps + 1]


def test_clipping_matches_nn_rnn_with_clip_grad_norm() -> None:
    """At recurrent gain 0.9, where the RNN contracts. At gain 2 its forward pass is chaotic:
    a parameter change of float32 rounding grows about 10x a step through the loss, so no
    two implementations agree there beyond a few steps (nor would two devices)."""
    steps, seed, lr, gain, max_norm = 20, 1, 0.3, 0.9, 0.1
    result = run(
        "gradient-clipping", steps=steps, seed=seed, lr=lr, recurrent_gain=gain, max_norm=max_norm
    )
    by = {v.name: v.loss for v in result.variants}
    assert variant(result, "clipped")["clipped_fraction"] == 1.0  # the clip acts every step
    for name, threshold in (("clipped", max_norm), ("unclipped", 1e9)):
        want = _reference_rnn_losses(threshold, lr, gain, steps, seed)
        assert by[name] == pytest.approx(want, rel=1e-4), name


def test_a_threshold_never_reached_changes_nothing() -> None:
    """The variants differ only by the clip: above every gradient norm they coincide."""
    result = run("gradient-clipping", max_norm=1000, steps=40, lr=0.1)
    by = {v.name: v.loss for v in result.variants}
    assert by["clipped"] == by["unclipped"]
    assert variant(result, "clipped")["clipped_fraction"] == 0.0


# ----------------------------------------------------------------------------- schedules


def test_schedules_match_torch_schedulers() -> None:
    """Step decay is MultiStepLR at 50% and 75%; cosine is CosineAnnealingLR to 0."""
    steps, lr = 40, 0.5
    result = run("learning-rate-schedules", steps=steps, lr=lr)
    got = {s.variant: [y for _, y in s.points] for s in chart(result, "lr").series}
    w = nn.Parameter(torch.zeros(1))
    schedulers: dict[str, Callable[[Any], Any]] = {
        "step": lambda o: torch.optim.lr_scheduler.MultiStepLR(
            o, [steps // 2, 3 * steps // 4], 0.1
        ),
        "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=steps),
    }
    for name, make in schedulers.items():
        opt = torch.optim.SGD([w], lr=lr)
        sched = make(opt)
        want = []
        for _ in range(steps):
            want.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        assert got[name] == pytest.approx(want, rel=1e-9, abs=1e-15), name
    assert got["constant"] == [lr] * steps


def test_a_full_batch_is_every_example_each_step() -> None:
    batches = schedules.minibatches(seed=0, steps=5, batch=schedules.N_TRAIN)
    for row in batches:
        assert sorted(row.tolist()) == list(range(schedules.N_TRAIN))


# ----------------------------------------------------------------------------- noise scale


def test_noise_scale_matches_a_loop_over_examples_and_predicts_minibatch_noise() -> None:
    """vmap's per-example gradients equal one autograd call per example, and a batch of B
    examples drawn with replacement has gradient noise E|g_B - G|^2 = tr(Sigma) / B."""
    x, y = noise.make_data(seed=3, n=64)
    model = noise.make_model(16, seed=3)
    b_simple, trace, g2 = noise.noise_scale(model, x, y)
    grads = []
    for i in range(len(y)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    g = torch.stack(grads)
    mean = g.mean(0)
    assert g2 == pytest.approx(float(mean.square().sum()), rel=1e-4)
    assert trace == pytest.approx(float((g - mean).square().sum(1).mean()), rel=1e-4)
    assert b_simple == pytest.approx(trace / g2, rel=1e-9)
    batch = 8
    draws = torch.randint(0, len(y), (4000, batch), generator=torch.Generator().manual_seed(0))
    noise_b = (g[draws].mean(1) - mean).square().sum(1).mean()
    assert float(noise_b) == pytest.approx(trace / batch, rel=0.1)


# ----------------------------------------------------------------------------- warm-up


def test_stacked_adam_is_torch_adam_and_each_variant_keeps_its_own_rate() -> None:
    """At one rate for all it steps exactly as torch.optim.Adam (on the same gradients, drawn
    at random so none is degenerate); at rate 0 a variant stays put."""
    cfg = TransformerConfig(
        blocks=("post-ln", "post-ln", "pre-ln"), d_in=8, d_out=1, width=8, depth=2
    )
    ours, theirs = BatchedTransformer(cfg, 0), BatchedTransformer(cfg, 0)
    named = list(ours.named_parameters())
    adam = warmup.StackedAdam(named, 3)
    reference = torch.optim.Adam(theirs.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=g) for _, p in named]
        adam.step(grads, torch.full((3,), 0.01))
        for q, gr in zip(theirs.parameters(), grads, strict=True):
            q.grad = gr
        reference.step()
    for (name, a), b in zip(named, theirs.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), name
    before = {n: p.detach().clone() for n, p in named}
    adam.step([torch.ones_like(p) for _, p in named], torch.tensor([0.0, 0.01, 0.01]))
    assert torch.equal(ours.attn_w[:, 0], before["attn_w"][:, 0])  # (L, K, ...): variant 0
    assert torch.equal(ours.tok_w[0], before["tok_w"][0])  # (K, ...): variant 0
    assert not torch.equal(ours.attn_w[:, 1], before["attn_w"][:, 1])


@pytest.mark.parametrize("name", [e.name for e in FAMILY_EXPERIMENTS])
def test_runs_report_progress_a_few_times_with_drawable_charts(name: str) -> None:
    experiment, p = resolve(name, {})
    events: list[Progress] = []
    execute(experiment, p, on_progress=events.append)
    assert 3 <= len(events) <= 12, len(events)
    for event in events:
        assert 0 < event.step < event.total_steps
        assert event.charts and all(c.series for c in event.charts)
