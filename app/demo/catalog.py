"""Every experiment, by name: the catalog the pages, the API and the workers share (no torch).

A family module under app/demo/families/ lists its experiments in EXPERIMENTS; adding a
family means adding its module to FAMILIES below.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from app.demo.errors import DemoInputError
from app.demo.experiment import Experiment
from app.demo.families import (
    adaptation,
    architectures,
    efficiency_batching,
    efficiency_decoding,
    efficiency_inference,
    efficiency_training,
    generalization,
    gradient_flow,
    lm_decoding,
    lm_formats,
    lm_internals,
    optimization,
    signal_propagation,
)
from app.demo.params import BUDGET_S, ExperimentParams, budget_s, parse_params

DEFAULT_EXPERIMENT = "residual-vs-plain"
FAMILIES = (
    gradient_flow,
    signal_propagation,
    optimization,
    generalization,
    architectures,
    lm_formats,
    lm_decoding,
    lm_internals,
    efficiency_decoding,
    efficiency_batching,
    efficiency_inference,
    adaptation,
    efficiency_training,
)

EXPERIMENTS: dict[str, Experiment] = {e.name: e for f in FAMILIES for e in f.EXPERIMENTS}
assert len(EXPERIMENTS) == sum(len(f.EXPERIMENTS) for f in FAMILIES), "experiment names clash"


def get_experiment(name: str | None) -> Experiment:
    """The experiment called `name` (the default when None), or DemoInputError naming 'preset'."""
    key = (name or DEFAULT_EXPERIMENT).strip()
    if key not in EXPERIMENTS:
        raise DemoInputError(
            "preset", f"preset must be one of {', '.join(EXPERIMENTS)}, got {name!r}"
        )
    return EXPERIMENTS[key]


def resolve(name: str | None, raw: Mapping[str, str]) -> tuple[Experiment, ExperimentParams]:
    """Validate a request: the experiment and its parameters, or DemoInputError."""
    experiment = get_experiment(name)
    return experiment, parse_params(experiment.params, raw, experiment.name)


def defaults(name: str) -> ExperimentParams:
    return EXPERIMENTS[name].params()


def catalog() -> list[dict[str, Any]]:
    """GET /api/demo/presets: every experiment, the default first, with this deployment's
    limits (they grow with the workers' measured speed: app/demo/calibration.py)."""
    limits = _limits(budget_s())
    return [entry | {"limits": limits[entry["name"]]} for entry in _catalog_entries()]


@functools.cache
def _limits(budget: float) -> dict[str, dict[str, Any]]:
    """Per experiment: the budget, and the largest value of its budget parameter that fits
    at the other defaults (computed once per budget)."""
    return {
        e.name: {
            "budget_s": round(budget, 2),
            "reference_budget_s": BUDGET_S,
            "param": e.params.budget_param,
            "largest": largest_within_budget(e),
        }
        for e in EXPERIMENTS.values()
    }


def largest_within_budget(experiment: Experiment) -> int | float | None:
    """The largest allowed value of the experiment's budget parameter at its other defaults
    (None when that parameter is not a bounded number)."""
    from app.demo.params import describe_all

    spec = next(
        (p for p in describe_all(experiment.params) if p["name"] == experiment.params.budget_param),
        None,
    )
    if spec is None or spec["kind"] not in ("int", "float") or spec["max"] is None:
        return None

    def fits(value: float) -> bool:
        try:
            parse_params(experiment.params, {spec["name"]: str(value)}, experiment.name)
        except DemoInputError:
            return False
        return True

    low, high = spec["default"], spec["max"]
    if fits(high):
        return high  # type: ignore[no-any-return]
    if spec["kind"] == "int":
        while high - low > 1:  # fits(low), not fits(high)
            mid = (low + high) // 2
            low, high = (mid, high) if fits(mid) else (low, mid)
        return low  # type: ignore[no-any-return]
    for _ in range(30):
        mid = (low + high) / 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return round(low, 6)  # type: ignore[no-any-return]


@functools.cache
def _catalog_entries() -> tuple[dict[str, Any], ...]:
    """Built once: the experiments are fixed for the life of the process."""
    ordered = sorted(EXPERIMENTS.values(), key=lambda e: e.name != DEFAULT_EXPERIMENT)
    return tuple(e.catalog_entry() | {"default": e.name == DEFAULT_EXPERIMENT} for e in ordered)


def unknown_terms(slugs: set[str]) -> list[tuple[str, str]]:
    """(experiment, slug) for every term an experiment names that the glossary lacks."""
    return [(e.name, t) for e in EXPERIMENTS.values() for t in e.terms if t not in slugs]
