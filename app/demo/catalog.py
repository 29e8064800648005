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
from app.demo.params import ExperimentParams, parse_params

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
    """GET /api/demo/presets: every experiment, the default first."""
    return list(_catalog_entries())


@functools.cache
def _catalog_entries() -> tuple[dict[str, Any], ...]:
    """Built once: the experiments are fixed for the life of the process."""
    ordered = sorted(EXPERIMENTS.values(), key=lambda e: e.name != DEFAULT_EXPERIMENT)
    return tuple(e.catalog_entry() | {"default": e.name == DEFAULT_EXPERIMENT} for e in ordered)


def unknown_terms(slugs: set[str]) -> list[tuple[str, str]]:
    """(experiment, slug) for every term an experiment names that the glossary lacks."""
    return [(e.name, t) for e in EXPERIMENTS.values() for t in e.terms if t not in slugs]
