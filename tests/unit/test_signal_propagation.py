"""The signal-propagation engines against plain references (torch's own modules, autograd,
closed forms), and the published effects at settings test_experiments.py does not run."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from app.demo.catalog import EXPERIMENTS, resolve
from app.demo.engines.signal_propagation_isometry import weights
from app.demo.engines.signal_propagation_rank import attention, make_layer, residual
from app.demo.engines.signal_propagation_shattered import autocorrelation
from app.demo.engines.signal_propagation_softmax import entropy
from app.demo.errors import DemoInputError, RunCancelled
from app.demo.experiment import execute
from app.demo.families.signal_propagation import FAMILY, IsometryParams
from app.demo.params import BUDGET_S
from app.demo.result import DemoResult, Progress

NAMES = [name for name, e in EXPERIMENTS.items() if e.family == FAMILY]


def run(name: str, **params: object) -> DemoResult:
    experiment, p = resolve(name, {k: str(v) for k, v in params.items()})
    return execute(experiment, p)


def holds(result: DemoResult) -> dict[str, bool]:
    return {c.id: c.holds for c in result.claims}


def value(result: DemoResult, variant: str, key: str) -> float:
    """One variant's metric, which must be a number."""
    x = next(v.metrics for v in result.variants if v.name == variant)[key]
    assert x is not None, f"{variant}.{key} is undefined"
    return x


# ----------------------------------------------------------------------------- references


def test_attention_matches_torch_multihead_attention() -> None:
    g = torch.Generator().manual_seed(0)
    heads, d, n = 4, 32, 10
    layer = make_layer(g, d, torch.device("cpu"))
    x = torch.randn(2, n, d, generator=g, dtype=torch.float64)
    ref = nn.MultiheadAttention(d, heads, bias=False, batch_first=True, dtype=torch.float64)
    with torch.no_grad():  # torch computes x @ W.T
        ref.in_proj_weight.copy_(torch.cat([layer.wq.T, layer.wk.T, layer.wv.T]))
        ref.out_proj.weight.copy_(layer.wo.T)
        want, _ = ref(x, x, x, need_weights=False)
    torch.testing.assert_close(attention(x, layer, heads), want)


def test_residual_is_the_distance_to_the_best_matrix_with_equal_rows() -> None:
    x = torch.randn(1, 7, 5, dtype=torch.float64)
    best = x[0].mean(dim=0)
    for trial in (best, best + 0.1, torch.zeros(5, dtype=torch.float64)):
        dist = (x[0] - trial).norm() / x[0].norm()
        assert residual(x)[0] <= dist + 1e-12
    rank_one = torch.ones(1, 7, 1, dtype=torch.float64) * torch.randn(1, 1, 5, dtype=torch.float64)
    assert residual(rank_one)[0] < 1e-14


def test_autocorrelation_of_a_sine_and_of_white_noise() -> None:
    t = torch.arange(4096, dtype=torch.float64)
    acf = autocorrelation(torch.sin(0.05 * t), 3)
    for lag in range(4):
        assert acf[lag] == pytest.approx(math.cos(0.05 * lag), abs=2e-3)
    noise = torch.randn(4096, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(autocorrelation(noise, 1)[1]) < 4 / math.sqrt(4096)


def test_isometry_spectrum_matches_the_autograd_jacobian() -> None:
    result = run("dynamical-isometry", depth=6, width=12, seed=3)
    gaussian, orthogonal, x = weights(
        IsometryParams(depth=6, width=12, seed=3), torch.device("cpu")
    )
    spectrum = next(c for c in result.charts if c.id == "spectrum")
    for ws, series in zip((gaussian, orthogonal), spectrum.series, strict=True):

        def net(v: torch.Tensor, ws: torch.Tensor = ws) -> torch.Tensor:
            for w in ws:
                v = torch.tanh(w @ v)
            return v

        want = torch.linalg.svdvals(torch.autograd.functional.jacobian(net, x))
        got = torch.tensor([y for _, y in series.points], dtype=torch.float64)
        torch.testing.assert_close(got, want)


def test_orthogonal_weights_are_orthogonal() -> None:
    _, orthogonal, _ = weights(IsometryParams(depth=3, width=16, gain=1.0), torch.device("cpu"))
    eye = torch.eye(16, dtype=torch.float64)
    torch.testing.assert_close(orthogonal @ orthogonal.transpose(1, 2), eye.expand(3, 16, 16))


def test_entropy_of_uniform_and_of_one_hot_attention() -> None:
    n = 16
    flat = torch.zeros(3, n, dtype=torch.float64)
    torch.testing.assert_close(entropy(flat), torch.full((3,), math.log(n), dtype=torch.float64))
    spike = torch.zeros(1, n, dtype=torch.float64)
    spike[0, 3] = 100.0
    assert entropy(spike)[0] < 1e-30
    two = torch.tensor([[0.0, 0.0, -1e9]], dtype=torch.float64)
    assert entropy(two)[0] == pytest.approx(math.log(2))


# ----------------------------------------------------------------------------- effects


def test_rank_collapse_without_layernorm_too() -> None:
    """Dong et al. analyse attention without LayerNorm: it collapses the same way."""
    result = run("rank-collapse", layernorm="none")
    assert all(holds(result).values()), result.claims


def test_skips_keep_rank_far_deeper() -> None:
    result = run("rank-collapse", depth=64)
    assert value(result, "attention", "final_residual") < 1e-12
    assert value(result, "attention-skip", "final_residual") > 0.05
    assert value(result, "transformer", "final_residual") > 0.1


def test_gradients_shatter_by_depth_20() -> None:
    result = run("shattered-gradients", depth=20)
    assert all(holds(result).values()), result.claims


def test_orthogonal_weights_lose_isometry_in_the_chaotic_phase() -> None:
    """Isometry needs criticality (Pennington et al., 2017): at gain 2 tanh saturates."""
    result = run("dynamical-isometry", gain=2)
    assert not holds(result)["orthogonal-isometric"]
    assert holds(result)["gaussian-spreads"]


def test_only_layernorm_ignores_a_shift_and_rmsnorm_falls_behind_as_offset_grows() -> None:
    ratios: list[float] = []
    for offset in (0, 10, 30):
        result = run("rmsnorm-vs-layernorm", offset=offset)
        assert value(result, "layernorm", "shift_change") < 1e-4
        for name in ("layernorm", "rmsnorm"):
            assert value(result, name, "scale_change") < 1e-4
        claim = next(c for c in result.claims if c.id == "rmsnorm-trains-as-well")
        assert claim.measured is not None
        ratios.append(claim.measured)
    assert ratios[0] < ratios[1] < ratios[2], ratios


def test_rmsnorm_trains_as_well_at_another_width() -> None:
    result = run("rmsnorm-vs-layernorm", width=64)
    assert all(holds(result).values()), result.claims


def test_sigma_reparam_entropy_does_not_depend_on_the_weight_scale() -> None:
    result = run("softmax-temperature", max_scale=1000)
    curve = next(s for s in result.charts[0].series if s.variant == "sigma-reparam")
    ys = [y for _, y in curve.points]
    assert ys[0] is not None and all(y == pytest.approx(ys[0]) for y in ys)
    assert value(result, "attention", "entropy_at_max_scale") < 0.01


def test_entropy_collapses_over_a_thousand_keys_too() -> None:
    """Uniform attention over 1,024 keys has 6.9 nats; scale 40 still takes it below 1."""
    result = run("softmax-temperature", tokens=1024)
    assert all(c.holds for c in result.claims), result.claims


# ----------------------------------------------------------------------------- the run


@pytest.mark.parametrize("name", NAMES)
def test_progress_and_cancellation(name: str) -> None:
    experiment, p = resolve(name, {})
    events: list[Progress] = []
    execute(experiment, p, on_progress=events.append)
    assert events and all(e.charts for e in events)
    assert events[-1].step <= events[-1].total_steps
    with pytest.raises(RunCancelled):
        execute(experiment, p, should_stop=lambda: True)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_fit_the_budget_and_the_largest_runs_are_refused_or_fit(name: str) -> None:
    experiment = EXPERIMENTS[name]
    assert experiment.params().estimate_seconds() <= 1.0
    fields = experiment.params.model_fields
    biggest = {
        n: next(m.le for m in f.metadata if hasattr(m, "le"))
        for n, f in fields.items()
        if n != "seed" and f.annotation in (int, float)
    }
    raw = {n: str(v) for n, v in biggest.items()}
    if experiment.params.model_construct(**biggest).estimate_seconds() > BUDGET_S:
        with pytest.raises(DemoInputError, match="compute budget") as info:
            resolve(name, raw)
        assert info.value.param in fields
    else:
        resolve(name, raw)
