"""The gradient-flow engine: against the plain reference, its result, progress, cancellation,
claims, and the published effects at settings tests/unit/test_experiments.py does not run.

micrograd-style: the batched engine must reproduce tests/demo_reference.py, which builds each
variant as an ordinary nn.Module and trains it in its own loop.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import pytest
import torch

from app.demo.catalog import EXPERIMENTS, resolve
from app.demo.claims import Claim, metric
from app.demo.errors import RunCancelled
from app.demo.experiment import execute
from app.demo.families.gradient_flow import FAMILY
from app.demo.families.gradient_flow_params import GradientFlowParams
from app.demo.nets import BatchedMLP, MLPConfig, MLPVariant
from app.demo.result import DemoResult, Number, Progress, VariantResult
from tests.demo_reference import MLPSpec, RefMLP, recorded_steps, run_reference

GRADIENT_FLOW = [name for name, e in EXPERIMENTS.items() if e.family == FAMILY]


def run(name: str, **params: object) -> DemoResult:
    experiment, p = resolve(name, {k: str(v) for k, v in params.items()})
    return execute(experiment, p)


def by_name(result: DemoResult) -> dict[str, VariantResult]:
    return {v.name: v for v in result.variants}


def assert_close(got: Sequence[Number], want: Sequence[float], rtol: float, what: str) -> None:
    assert want, f"{what}: nothing to compare"
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g is not None and math.isfinite(g), f"{what}[{i}] = {g}"
        assert g == pytest.approx(w, rel=rtol, abs=1e-30), f"{what}[{i}]: {g} vs {w}"


# ----------------------------------------------------------------------------- reference


def test_every_gradient_flow_experiment_is_checked_against_the_reference() -> None:
    assert len(GRADIENT_FLOW) >= 6
    archs = {getattr(EXPERIMENTS[n].params, "arch", None) for n in GRADIENT_FLOW}
    assert archs == {"mlp", "transformer"}


@pytest.mark.parametrize("task", ["teacher", "spirals"])
@pytest.mark.parametrize("name", GRADIENT_FLOW)
def test_engine_matches_the_plain_reference(name: str, task: str) -> None:
    experiment = EXPERIMENTS[name]
    transformer = getattr(experiment.params, "arch", None) == "transformer"
    # Adam turns float32 rounding in near-zero gradients into different update signs, so
    # the transformer runs fewer steps before the two drift apart
    steps, rtol = (6, 1e-4) if transformer else (10, 1e-5)
    raw = {"depth": 4, "width": 16, "batch_size": 16, "steps": steps, "task": task, "seed": 3}
    _, params = resolve(name, {k: str(v) for k, v in raw.items()})
    assert isinstance(params, GradientFlowParams)
    result = execute(experiment, params)
    reference = run_reference(experiment, params)
    assert [v.name for v in result.variants] == [v["name"] for v in reference]
    for got, want in zip(result.variants, reference, strict=True):
        what = f"{name}/{got.name}"
        assert_close(got.loss or [], want["loss"], rtol, f"{what} loss")
        recorded = got.recorded_steps or []
        assert [s.step for s in recorded] == [s["step"] for s in want["recorded_steps"]]
        for gs, ws in zip(recorded, want["recorded_steps"], strict=True):
            assert_close(
                [lay.weight_grad_norm for lay in gs.layers],
                [lay["weight_grad_norm"] for lay in ws["layers"]],
                rtol,
                f"{what} step {gs.step} weight gradients",
            )
            assert_close(
                [lay.activation_grad_norm for lay in gs.layers],
                [lay["activation_grad_norm"] for lay in ws["layers"]],
                rtol,
                f"{what} step {gs.step} input gradients",
            )


@pytest.mark.parametrize("norm", ["layernorm", "batchnorm"])
def test_post_norm_mlp_matches_the_reference(norm: str) -> None:
    """Post-norm blocks (norm(h + s*f(h))) are in no experiment yet; check them directly."""
    residual = [False, True]
    x = torch.randn(16, 16, generator=torch.Generator().manual_seed(0))
    cfg = MLPConfig(
        variants=tuple(
            MLPVariant(
                residual=r, branch_scale=0.5, activation="tanh", norm=norm, norm_position="post"
            )
            for r in residual
        ),
        d_in=16,
        d_out=4,
        width=8,
        depth=3,
    )
    model = BatchedMLP(cfg, seed=5)
    out, inputs = model(x, keep_inputs=True)
    out.square().sum().backward()
    for k, r in enumerate(residual):
        spec = MLPSpec(
            width=8,
            depth=3,
            activation="tanh",
            residual=r,
            scale=0.5,
            norm=norm,
            norm_position="post",
        )
        ref = RefMLP(spec, 16, 4, seed=5)
        ref_out, ref_inputs = ref(x)
        ref_out.square().sum().backward()
        torch.testing.assert_close(out[k], ref_out, rtol=1e-5, atol=1e-6)
        for layer in range(3):
            torch.testing.assert_close(
                model.fc_w.grad[layer, k].T, ref.blocks[layer].fc.weight.grad, rtol=1e-4, atol=1e-6
            )
            torch.testing.assert_close(
                inputs[layer].grad[k], ref_inputs[layer].grad, rtol=1e-4, atol=1e-6
            )


# ----------------------------------------------------------------------------- the result


def test_result_follows_the_api_contract() -> None:
    experiment = EXPERIMENTS["normalization"]
    _, params = resolve(
        "normalization", {"depth": "5", "width": "16", "batch_size": "16", "steps": "12"}
    )
    result = execute(experiment, params)
    assert result.experiment == "normalization" and result.family == FAMILY
    assert result.config == {"preset": "normalization"} | params.canonical()
    assert result.config["depth"] == 5 and result.config["steps"] == 12
    assert result.device == "cpu" and result.torch_version == torch.__version__
    assert result.elapsed_ms > 0 and result.cached is False
    assert result.summary.endswith(".") and "after 12 steps" in result.summary
    json.dumps(result.model_dump(mode="json"), allow_nan=False)
    steps = recorded_steps(12)
    assert [(v.name, v.label) for v in result.variants] == [
        (s.name, s.label) for s in experiment.variants
    ]
    for v in result.variants:
        assert len(v.loss or []) == 13
        recorded = v.recorded_steps or []
        assert [s.step for s in recorded] == steps
        assert recorded[0].layers == v.layers
        layers = v.layers or []
        assert [lay.index for lay in layers] == [1, 2, 3, 4, 5]
        for lay in layers:
            assert lay.weight_grad_norm and lay.weight_grad_norm > 0
            assert lay.activation_grad_norm and lay.activation_grad_norm > 0
        assert v.metrics["final_loss"] == (v.loss or [])[-1]
        assert v.metrics["initial_loss"] == (v.loss or [])[0]
    assert [c.id for c in result.charts] == ["weight_gradients", "input_gradients", "loss"]
    loss_chart = result.charts[2]
    assert [s.variant for s in loss_chart.series] == [v.name for v in result.variants]
    assert [y for _, y in loss_chart.series[0].points] == result.variants[0].loss


def test_steps_zero_measures_initialization_only() -> None:
    result = run("residual-vs-plain", depth=4, width=8, steps=0)
    assert result.variants
    for v in result.variants:
        assert len(v.loss or []) == 1
        assert [s.step for s in v.recorded_steps or []] == [0]
    assert "after" not in result.summary


def test_runs_on_the_cpu_are_deterministic() -> None:
    for name in ("normalization", "layernorm-placement"):
        a = run(name, depth=3, width=16, batch_size=16, steps=8)
        b = run(name, depth=3, width=16, batch_size=16, steps=8)
        assert a.variants and a.variants[0].loss
        assert a.model_dump(exclude={"elapsed_ms"}) == b.model_dump(exclude={"elapsed_ms"})
        other_seed = run(name, depth=3, width=16, batch_size=16, steps=8, seed=1)
        assert other_seed.variants[0].loss != a.variants[0].loss  # the seed matters


def test_progress_at_initialization_and_each_recorded_step() -> None:
    events: list[Progress] = []
    experiment, params = resolve("residual-vs-plain", {"depth": "4", "width": "8", "steps": "20"})
    result = execute(experiment, params, on_progress=events.append)
    assert [e.step for e in events] == recorded_steps(20) == [0, 4, 8, 12, 16, 20]
    for e in events:
        assert e.total_steps == 20
        assert [c.id for c in e.charts] == ["weight_gradients", "input_gradients", "loss"]
        loss = e.charts[2]
        assert [s.variant for s in loss.series] == ["plain", "residual"]
        assert len(loss.series[0].points) == e.step + 1  # the loss so far
    final = by_name(result)
    assert [y for _, y in events[-1].charts[2].series[0].points] == final["plain"].loss
    first_layers = [y for _, y in events[0].charts[0].series[1].points]
    assert first_layers == [lay.weight_grad_norm for lay in final["residual"].layers or []]


def test_should_stop_cancels_before_the_next_step() -> None:
    calls = 0
    progress: list[int] = []

    def should_stop() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    experiment, params = resolve("residual-vs-plain", {"depth": "4", "width": "8", "steps": "1000"})
    with pytest.raises(RunCancelled, match="step 3 of 1000"):
        execute(
            experiment,
            params,
            should_stop=should_stop,
            on_progress=lambda p: progress.append(p.step),
        )
    assert calls == 4  # checked before every step: steps 0, 1, 2 ran, step 3 did not
    assert progress == [0]


def test_a_diverged_run_reports_nulls_not_nan() -> None:
    result = run("initialization", depth=8, width=64, steps=30, lr=1.0)
    kaiming = by_name(result)["kaiming"]
    assert kaiming.loss and kaiming.loss[0] is not None and math.isfinite(kaiming.loss[0])
    assert kaiming.loss[-1] is None and kaiming.metrics["final_loss"] is None
    text = result.model_dump_json()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["variants"][2]["loss"][-1] is None
    assert "diverged (kaiming)" in result.summary


# ----------------------------------------------------------------------------- claims


def test_claims_are_checked_on_the_runs_own_numbers() -> None:
    """The main claim of residual-vs-plain is measured from the plain network's gradients:
    it fails in a shallow network and holds in a deep one."""
    results = {
        d: run("residual-vs-plain", depth=d, width=16, batch_size=16, steps=0) for d in (2, 32)
    }
    for depth, result in results.items():
        main = result.claims[0]
        plain = by_name(result)["plain"].metrics["wg_first_over_last"]
        assert main.id == "plain-gradient-vanishes"
        assert main.expected.split()[0] == "below" and float(main.expected.split()[1]) == 1e-3
        assert main.measured == plain and plain is not None
        assert main.holds is (plain < 1e-3), f"depth {depth}: {main}"
    assert results[2].claims[0].holds is False
    assert results[32].claims[0].holds is True


@pytest.mark.parametrize(
    ("value", "holds", "measured"),
    [
        (0.5, True, 0.5),
        (2.0, False, 2.0),
        (None, False, None),
        (math.nan, False, None),
        (math.inf, False, None),
    ],
)
def test_a_claim_holds_only_for_a_finite_value_in_range(
    value: float | None, holds: bool, measured: float | None
) -> None:
    claim = Claim("c", "x is below 1", metric("v", "x"), "<", 1.0)
    result = claim.check({"v": {"x": value}}, "Someone, 2020")
    assert result.holds is holds and result.measured == measured
    assert result.citation == "Someone, 2020" and result.expected == "below 1"
    between = Claim("b", "x is within 2x", metric("v", "x"), "between", 0.5, 2.0)
    assert [between.check({"v": {"x": x}}, "").holds for x in (0.4, 0.5, 2.0, 2.1)] == [
        False,
        True,
        True,
        False,
    ]


# ----------------------------------------------------------------------------- science
# Effects at settings beyond the defaults test_experiments.py checks (the same seed).

AG = "activation_grad_norm"
WG = "weight_grad_norm"


def ratio(v: VariantResult, key: str = WG) -> float:
    layers = v.layers or []
    assert len(layers) >= 2, v.name
    first, last = getattr(layers[0], key), getattr(layers[-1], key)
    assert first is not None and last, f"{v.name}: undefined gradient ratio"
    return float(first / last)


@pytest.mark.slow
def test_residual_connections_keep_the_gradient_at_depth_64() -> None:
    """He et al. 2016, at twice the default depth: the plain net's first layer gets orders of
    magnitude less gradient than its last; the residual net's stays within 3x, and trains."""
    v = by_name(run("residual-vs-plain", depth=64))
    assert ratio(v["plain"]) < 1e-3 and ratio(v["plain"], AG) < 1e-3
    for key in (WG, AG):
        assert 1 / 3 < ratio(v["residual"], key) < 3
    plain_final, res_final = v["plain"].metrics["final_loss"], v["residual"].metrics["final_loss"]
    assert plain_final is not None and res_final is not None
    assert res_final < 0.5 * plain_final


def test_unit_branch_scale_makes_the_residual_gradient_grow_toward_the_input() -> None:
    """With s = 1 each branch adds to the gradient on its way back, so it grows toward the
    input instead of vanishing; s = 1/sqrt(depth) keeps the growth to a small factor."""
    grown = by_name(
        run("residual-vs-plain", depth=16, activation="relu", branch_scale="1", steps=0)
    )
    scaled = by_name(run("residual-vs-plain", depth=16, activation="relu", steps=0))
    assert ratio(grown["plain"], AG) < 1e-3
    assert ratio(grown["residual"], AG) > 3
    assert 1 / 3 < ratio(scaled["residual"], AG) < 3


def test_sigmoid_gradients_vanish_geometrically_at_depth_20() -> None:
    """Glorot & Bengio 2010: with sigmoid units the gradient shrinks by a near-constant
    factor at every layer (at most 1/4 from the slope, times the weights' gain)."""
    v = by_name(run("vanishing-gradient", depth=20, steps=0))
    ag = [lay.activation_grad_norm for lay in v["sigmoid"].layers or []]
    assert len(ag) == 20 and all(a for a in ag)
    per_layer = [ag[i] / ag[i + 1] for i in range(19)]  # type: ignore[operator]
    assert all(0.08 < r < 0.22 for r in per_layer), per_layer  # geometric: every layer alike
    f = {name: v[name].metrics["ag_per_layer"] for name in ("sigmoid", "tanh", "relu")}
    assert all(x is not None for x in f.values()), f
    assert f["sigmoid"] < 0.2  # type: ignore[operator]
    assert f["sigmoid"] < f["relu"] / 2 and f["sigmoid"] < f["tanh"] / 2  # type: ignore[operator]


@pytest.mark.slow
def test_normalization_keeps_the_gradient_scale_at_depth_16() -> None:
    v = by_name(run("normalization", depth=16))
    assert ratio(v["none"]) < 1e-2
    none_final = v["none"].metrics["final_loss"]
    assert none_final is not None
    for name in ("layernorm", "batchnorm"):
        for key in (WG, AG):
            assert 1 / 10 < ratio(v[name], key) < 10
        final = v[name].metrics["final_loss"]
        assert final is not None and final < 0.8 * none_final


def test_at_depth_32_relu_keeps_the_signal_and_sigmoid_loses_it() -> None:
    """He et al. 2015 init: ReLU keeps the backward signal; sigmoid loses the most."""
    v = by_name(run("activation-functions", depth=32, steps=0))
    r = {name: ratio(v[name], AG) for name in v}
    assert set(r) == {"relu", "tanh", "sigmoid", "gelu"}
    assert 0.2 < r["relu"] < 5
    assert r["sigmoid"] < 1e-6 and r["sigmoid"] < min(r[n] for n in ("relu", "tanh", "gelu"))


def test_at_depth_32_only_kaiming_init_preserves_relu_gradients() -> None:
    """He et al. 2015: Xavier halves the signal's variance per ReLU layer (1/sqrt(2) in
    norm), Kaiming keeps it; torch's default (variance 1/3n) loses even more."""
    v = by_name(run("initialization", depth=32, steps=0))
    r = {name: ratio(v[name], AG) for name in v}
    n = len(v["kaiming"].layers or []) - 1
    assert n == 31
    assert 0.2 < r["kaiming"] < 5
    assert 0.1 * 0.5 ** (n / 2) < r["xavier"] < 10 * 0.5 ** (n / 2)
    assert r["default"] < r["xavier"] / 100


def _ln_effects(v: dict[str, VariantResult]) -> tuple[float, float, float]:
    post = [lay.weight_grad_norm or math.nan for lay in v["post-ln"].layers or []]
    pre = [lay.weight_grad_norm or math.nan for lay in v["pre-ln"].layers or []]
    assert post and pre
    return post[-1] / pre[-1], max(pre) / min(pre), (post[-1] / post[0]) / (pre[-1] / pre[0])


def test_post_ln_gradients_are_large_near_the_output_at_depth_16() -> None:
    """Xiong et al. 2020 at initialization: the Post-LN gradients of the blocks near the
    output are large (here several times Pre-LN's) and grow with the block index relative
    to Pre-LN, whose gradients are about the same in every block."""
    near_output, pre_spread, post_growth = _ln_effects(
        by_name(run("layernorm-placement", depth=16, steps=0))
    )
    assert near_output > 1.5
    assert pre_spread < 2.5
    assert post_growth > 1.3


@pytest.mark.slow
def test_post_ln_effect_holds_for_most_seeds() -> None:
    """Not a lucky seed: over seven more initializations the effect holds in nearly all."""
    effects = [
        _ln_effects(by_name(run("layernorm-placement", steps=0, seed=s))) for s in range(3, 10)
    ]
    assert sum(e[0] > 1.2 for e in effects) >= 5
    assert sum(e[1] < 3.0 for e in effects) >= 6
    assert sum(e[2] > 1.2 for e in effects) >= 6
