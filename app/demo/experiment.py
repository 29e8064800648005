"""An experiment as data, and how any experiment is run (no torch at import time).

An Experiment names its family, the terms it illustrates, its variants, its parameter
model, the charts it draws, its claims and its counterfactual (parameters at which the main
claim is expected NOT to hold). Its engine, a function in app/demo/engines/, trains and
measures; execute() times it, checks the claims on its metrics and builds the DemoResult.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.demo.claims import RUN, Claim
from app.demo.errors import RunCancelled
from app.demo.params import ExperimentParams, ParamValue, describe_all
from app.demo.result import (
    Chart,
    DemoResult,
    ModelRef,
    Number,
    Progress,
    TextSample,
    VariantResult,
)


@dataclass(frozen=True)
class VariantSpec:
    """One arm of a comparison."""

    name: str
    label: str
    description: str


@dataclass(frozen=True)
class ChartSpec:
    """A chart the experiment draws (the engine fills in its series)."""

    id: str
    kind: str  # line | contour | bar
    title: str


@dataclass(frozen=True)
class Experiment:
    """Everything the catalog, the validator and the page know about one experiment."""

    name: str
    title: str
    family: str
    description: str  # what it shows and the expected effect, in plain words
    citation: str
    terms: tuple[str, ...]  # glossary slugs it illustrates
    variants: tuple[VariantSpec, ...]
    params: type[ExperimentParams]
    charts: tuple[ChartSpec, ...]
    claims: tuple[Claim, ...]  # the first is the main claim
    counterfactual: Mapping[str, ParamValue]  # the main claim should fail here
    engine: str  # "module:function" under app.demo.engines, imported by the worker
    fixed: Mapping[str, object] = field(default_factory=dict)  # settings held fixed, shown
    needs_model: bool = False  # runs on the server's trained language model (app/demo/lm)

    def config(self, params: ExperimentParams) -> dict[str, Any]:
        """The canonical JSON config: the experiment's name and every parameter."""
        return {"preset": self.name} | params.canonical()

    def cache_key(self, params: ExperimentParams) -> str:
        return json.dumps(self.config(params), sort_keys=True, separators=(",", ":"))

    def catalog_entry(self) -> dict[str, Any]:
        """The experiment for GET /api/demo/presets."""
        defaults = self.params()
        return {
            "name": self.name,
            "title": self.title,
            "family": self.family,
            "description": self.description,
            "citation": self.citation,
            "terms": list(self.terms),
            "variants": [
                {"name": v.name, "label": v.label, "description": v.description}
                for v in self.variants
            ],
            "params": describe_all(self.params),
            "defaults": defaults.canonical(),
            "fixed": dict(self.fixed),
            "charts": [{"id": c.id, "kind": c.kind, "title": c.title} for c in self.charts],
            "claims": [{"id": c.id, "statement": c.statement} for c in self.claims],
            "counterfactual": dict(self.counterfactual),
            "needs_model": self.needs_model,
        }


@dataclass
class EngineOutput:
    """What an engine measured: variants with metrics, charts, run-level metrics, a summary."""

    variants: list[VariantResult]
    charts: list[Chart]
    summary: str
    run_metrics: dict[str, Number] = field(default_factory=dict)
    samples: list[TextSample] = field(default_factory=list)


class RunContext:
    """What an engine gets besides its parameters: the device, progress and cancellation."""

    def __init__(
        self,
        device: str,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        lm: Any = None,
    ) -> None:
        self.device = device
        self.lm = lm  # the TrainedLM for experiments that need_model, else None
        self._on_progress = on_progress
        self._should_stop = should_stop

    def check(self, step: int, total: int) -> None:
        """Call before every step: raises RunCancelled when the run must stop."""
        if self._should_stop is not None and self._should_stop():
            raise RunCancelled(f"run stopped at step {step} of {total}")

    def progress(self, step: int, total: int, charts: list[Chart] | None = None) -> None:
        if self._on_progress is not None:
            self._on_progress(Progress(step=step, total_steps=total, charts=charts or []))

    @property
    def wants_progress(self) -> bool:
        return self._on_progress is not None


class EngineFn(Protocol):
    def __call__(self, experiment: Any, params: Any, ctx: RunContext) -> EngineOutput: ...


def load_engine(experiment: Experiment) -> EngineFn:
    """Import the experiment's engine (this imports torch)."""
    module, _, name = experiment.engine.partition(":")
    fn: EngineFn = getattr(importlib.import_module(module), name)
    return fn


def execute(
    experiment: Experiment,
    params: ExperimentParams,
    device: str = "cpu",
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    threads: int | None = None,
    lm: Any = None,
) -> DemoResult:
    """Run one experiment and check its claims on the run's own numbers."""
    from app.demo.engines import common  # imports torch

    t0 = time.perf_counter()
    if device == "cpu":
        common.configure_cpu(threads)
    try:
        ctx = RunContext(device, on_progress, should_stop, lm)
        out = load_engine(experiment)(experiment, params, ctx)
    finally:
        if device == "cpu":
            common.release_cpu()
    metrics: dict[str, Mapping[str, Number]] = {v.name: v.metrics for v in out.variants}
    metrics[RUN] = out.run_metrics
    return DemoResult(
        experiment=experiment.name,
        family=experiment.family,
        config=experiment.config(params),
        device=device,
        torch_version=common.torch_version(),
        elapsed_ms=round((time.perf_counter() - t0) * 1000, 1),
        summary=out.summary,
        samples=out.samples,
        variants=out.variants,
        charts=out.charts,
        claims=[c.check(metrics, experiment.citation) for c in experiment.claims],
        citation=experiment.citation,
        model=None if lm is None else model_ref(lm),
    )


def model_ref(lm: Any) -> ModelRef:
    """Which trained language model a result came from."""
    return ModelRef(
        name=lm.spec.name,
        weights_hash=lm.weights_hash,
        parameters=lm.model.num_params(),
        steps=len(lm.log.train_loss),
        final_val_loss=lm.log.val_loss[-1][1] if lm.log.val_loss else None,
        training_seconds=round(lm.log.seconds, 2),
    )
