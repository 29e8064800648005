"""Every experiment in the catalog: its claims hold at its defaults for three seeds (a
language-model experiment on the server's FULL model), its main claim fails at its
counterfactual, and its result is complete and consistent."""

from __future__ import annotations

import math

import pytest

from app.demo.catalog import EXPERIMENTS, resolve
from app.demo.experiment import Experiment, execute
from app.demo.result import DemoResult
from tests.lm_fixtures import full_lm, tiny_lm

NAMES = sorted(EXPERIMENTS)
SEEDS = (0, 1, 2)


def run(experiment: Experiment, *, full: bool = False, **params: object) -> DemoResult:
    """One run; a language-model experiment on the tiny model, or on the server's own FULL
    model when full=True (the published claims are checked on what visitors see)."""
    _, p = resolve(experiment.name, {k: str(v) for k, v in params.items()})
    lm = (full_lm() if full else tiny_lm()) if experiment.needs_model else None
    return execute(experiment, p, lm=lm)


def failed(result: DemoResult) -> list[str]:
    return [
        f"{c.id}: measured {c.measured}, expected {c.expected}"
        for c in result.claims
        if not c.holds
    ]


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", NAMES)
def test_every_claim_holds_at_the_defaults(name: str, seed: int) -> None:
    experiment = EXPERIMENTS[name]
    result = run(experiment, full=True, seed=seed)
    assert result.claims, f"{name} checks no claim"
    assert not failed(result), f"{name} seed {seed}: {failed(result)}; {result.summary}"


@pytest.mark.parametrize("name", NAMES)
def test_the_main_claim_fails_at_the_counterfactual(name: str) -> None:
    experiment = EXPERIMENTS[name]
    assert experiment.counterfactual, f"{name} declares no counterfactual"
    result = run(experiment, **experiment.counterfactual)
    main = result.claims[0]
    assert main.id == experiment.claims[0].id
    assert not main.holds, f"{name}: {main.id} still holds at {experiment.counterfactual}: {main}"


@pytest.mark.parametrize("name", NAMES)
def test_the_result_is_complete(name: str) -> None:
    """Claims in the declared order, every variant measured, every chart declared and drawn."""
    experiment = EXPERIMENTS[name]
    result = run(experiment, **experiment.counterfactual)
    assert [c.id for c in result.claims] == [c.id for c in experiment.claims]
    assert [v.name for v in result.variants] == [v.name for v in experiment.variants]
    for variant in result.variants:
        assert variant.metrics, f"{name}/{variant.name} has no metrics"
    trained = any("final_loss" in v.metrics for v in result.variants)
    if trained:
        assert all("final_loss" in v.metrics for v in result.variants)
    assert [c.id for c in result.charts] == [c.id for c in experiment.charts]
    for chart in result.charts:
        assert chart.series, f"{name}/{chart.id} draws nothing"
        points = [y for s in chart.series for _, y in s.points]
        assert points and any(y is not None and math.isfinite(y) for y in points), chart.id
    assert result.summary and result.config["preset"] == name
    DemoResult.model_validate_json(result.model_dump_json())  # round-trips as JSON


def test_terms_and_claims_are_declared() -> None:
    for experiment in EXPERIMENTS.values():
        assert experiment.terms, experiment.name
        assert experiment.claims, experiment.name
        assert len({c.id for c in experiment.claims}) == len(experiment.claims), experiment.name
