"""The demo's catalog, parameters and validation (no torch needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.demo.catalog import (
    DEFAULT_EXPERIMENT,
    EXPERIMENTS,
    catalog,
    defaults,
    get_experiment,
    resolve,
)
from app.demo.errors import DemoInputError
from app.demo.families import gradient_flow
from app.demo.families.gradient_flow_params import GradientFlowParams, ResidualParams
from app.demo.params import BUDGET_S, MAX_RAW_LENGTH

ROOT = Path(__file__).resolve().parents[2]
GRADIENT_FLOW = [
    "residual-vs-plain",
    "vanishing-gradient",
    "normalization",
    "layernorm-placement",
    "activation-functions",
    "initialization",
]


def test_the_gradient_flow_family_and_its_contract_variant_names() -> None:
    assert [e.name for e in gradient_flow.EXPERIMENTS] == GRADIENT_FLOW
    assert set(GRADIENT_FLOW) <= set(EXPERIMENTS)
    names = {n: [v.name for v in EXPERIMENTS[n].variants] for n in GRADIENT_FLOW}
    assert names["residual-vs-plain"] == ["plain", "residual"]
    assert names["layernorm-placement"] == ["post-ln", "pre-ln", "no-residual"]
    for name in GRADIENT_FLOW:
        assert len(names[name]) >= 2, name  # each is a comparison
    for experiment in EXPERIMENTS.values():
        variants = [v.name for v in experiment.variants]
        assert variants and len(set(variants)) == len(variants), experiment.name
        assert experiment.citation and experiment.description and experiment.terms


def test_catalog_is_json_and_lists_params_defaults_and_bounds() -> None:
    entries = catalog()
    json.dumps(entries, allow_nan=False)
    assert entries[0]["name"] == DEFAULT_EXPERIMENT
    assert [e["name"] for e in entries if e["default"]] == [DEFAULT_EXPERIMENT]
    assert sorted(e["name"] for e in entries) == sorted(EXPERIMENTS)
    for entry in entries:
        assert entry["params"], entry["name"]
        assert [p["name"] for p in entry["params"]][-1] == "seed"
        for param in entry["params"]:
            assert param["help"], (entry["name"], param["name"])
            assert param["name"] in entry["defaults"]
            assert entry["defaults"][param["name"]] == param["default"]
            if param["kind"] == "choice":
                assert param["default"] in param["choices"]
            elif param["kind"] == "text":
                assert isinstance(param["max_length"], int), (entry["name"], param)
                assert len(param["default"]) <= param["max_length"], (entry["name"], param)
            else:
                assert param["kind"] in ("int", "float")
                assert param["min"] <= param["default"] <= param["max"]
        claims = [c["id"] for c in entry["claims"]]
        assert claims and claims[0] == EXPERIMENTS[entry["name"]].claims[0].id
    for name in GRADIENT_FLOW:
        entry = next(e for e in entries if e["name"] == name)
        depth = next(p for p in entry["params"] if p["name"] == "depth")
        assert depth["max"] >= 64


def test_a_param_the_variants_vary_is_not_listed() -> None:
    params = {n: set(EXPERIMENTS[n].params.model_fields) for n in GRADIENT_FLOW}
    assert "activation" not in params["activation-functions"]
    assert "activation" not in params["vanishing-gradient"]
    assert "init" not in params["initialization"]
    assert "norm" not in params["normalization"]
    assert "activation" in params["residual-vs-plain"]


def test_defaults_resolve_to_a_complete_canonical_config() -> None:
    experiment, params = resolve(None, {})
    assert experiment.name == DEFAULT_EXPERIMENT
    config = experiment.config(params)
    assert config["preset"] == DEFAULT_EXPERIMENT and config["depth"] == 32
    assert list(config)[-1] == "seed"
    json.dumps(config, allow_nan=False)
    for name, e in EXPERIMENTS.items():
        _, p = resolve(name, {})
        assert p == defaults(name)
        assert set(e.config(p)) == {"preset"} | {q["name"] for q in e.catalog_entry()["params"]}


def test_cache_key_is_canonical() -> None:
    e, a = resolve("residual-vs-plain", {"lr": "0.05", "depth": "16"})
    _, b = resolve("residual-vs-plain", {"depth": "+16", "lr": "5e-2", "activation": "TANH"})
    _, c = resolve("residual-vs-plain", {"depth": "17", "lr": "0.05"})
    assert a == b and e.cache_key(a) == e.cache_key(b)
    assert e.cache_key(a) != e.cache_key(c)
    default, p = resolve(None, {})
    named, q = resolve(DEFAULT_EXPERIMENT, {})
    assert default.cache_key(p) == named.cache_key(q)
    other, r = resolve("vanishing-gradient", {"depth": "16"})
    assert other.cache_key(r) != e.cache_key(a)  # the experiment is part of the key


def test_values_are_parsed() -> None:
    _, p = resolve(
        "normalization",
        {
            "depth": " 8 ",
            "width": "32",
            "activation": " ReLU ",
            "task": "spirals",
            "lr": ".1",
            "seed": "7",
        },
    )
    got = p.model_dump(include={"depth", "width", "activation", "task", "lr", "seed"})
    assert got == {
        "depth": 8,
        "width": 32,
        "activation": "relu",
        "task": "spirals",
        "lr": 0.1,
        "seed": 7,
    }


def _error(name: str | None, **params: str) -> DemoInputError:
    with pytest.raises(DemoInputError) as info:
        resolve(name, params)
    return info.value


@pytest.mark.parametrize(
    ("name", "params", "param", "fragment"),
    [
        ("nope", {}, "preset", "preset must be one of residual-vs-plain, vanishing-gradient"),
        (
            None,
            {"activation": "swish"},
            "activation",
            "one of relu, tanh, sigmoid, gelu, got 'swish'",
        ),
        (None, {"init": "orthogonal"}, "init", "one of default, xavier, kaiming"),
        (None, {"task": "mnist"}, "task", "one of teacher, spirals"),
        (None, {"branch_scale": "2"}, "branch_scale", "one of 1/sqrt(depth), 1"),
        (None, {"depth": "65"}, "depth", "depth must be an integer from 2 to 64, got '65'"),
        (None, {"depth": "1"}, "depth", "from 2 to 64"),
        (None, {"depth": "abc"}, "depth", "depth must be an integer from 2 to 64, got 'abc'"),
        (None, {"depth": "3.5"}, "depth", "an integer"),
        (None, {"depth": ""}, "depth", "an integer"),
        (None, {"steps": "-1"}, "steps", "steps must be an integer from 0 to 2000"),
        (None, {"width": "1e3"}, "width", "an integer from 8 to 256"),
        ("layernorm-placement", {"width": "256"}, "width", "an integer from 8 to 128"),
        (None, {"lr": "2"}, "lr", "lr must be a number from 1e-05 to 1, got '2'"),
        (None, {"lr": "nan"}, "lr", "lr must be a number from 1e-05 to 1, got 'nan'"),
        (None, {"lr": "inf"}, "lr", "lr must be a number from 1e-05 to 1, got 'inf'"),
        (None, {"lr": "-inf"}, "lr", "a number"),
        (None, {"lr": "0x1p-3"}, "lr", "a number"),
        (None, {"seed": "99999999999999"}, "seed", "from 0 to 2147483647"),
        ("activation-functions", {"activation": "relu"}, "activation", "does not apply"),
        (
            "layernorm-placement",
            {"init": "xavier"},
            "init",
            "does not apply to experiment 'layernorm-placement'",
        ),
        (None, {"colour": "red"}, "colour", "the parameters that apply are: depth, width"),
        (
            None,
            {"depth": "1" * (MAX_RAW_LENGTH + 1)},
            "depth",
            f"longer than {MAX_RAW_LENGTH} characters",
        ),
    ],
)
def test_bad_input_names_the_parameter_and_its_range(
    name: str | None, params: dict[str, str], param: str, fragment: str
) -> None:
    err = _error(name, **params)
    assert err.param == param
    assert fragment in err.message, err.message
    assert err.errors[0] == {"param": param, "message": err.message}


def test_all_problems_are_collected() -> None:
    err = _error(None, depth="0", activation="swish", lr="x")
    assert sorted(e["param"] for e in err.errors) == ["activation", "depth", "lr"]
    assert err.param == err.errors[0]["param"]
    assert all(e["param"] in e["message"] for e in err.errors)


def test_a_run_over_the_compute_budget_is_refused_naming_steps_and_the_limit() -> None:
    size = {"depth": 64, "width": 256, "batch_size": 512}
    limit = ResidualParams(**size, steps=0).max_steps()
    assert 0 < limit < 500
    err = _error(None, **{k: str(v) for k, v in size.items()}, steps="500")
    assert err.param == "steps"
    assert (
        f"steps must be at most {limit} for depth=64, width=256 and batch_size=512" in err.message
    )
    assert "got 500" in err.message and f"{BUDGET_S:g} s" in err.message
    # the limit itself is accepted and within the budget; one more step is not
    _, p = resolve(None, {k: str(v) for k, v in size.items()} | {"steps": str(limit)})
    assert p.estimate_seconds() <= BUDGET_S
    assert (
        _error(None, **{k: str(v) for k, v in size.items()}, steps=str(limit + 1)).param == "steps"
    )


def test_a_size_too_big_even_without_training_names_a_size_parameter() -> None:
    err = _error("layernorm-placement", depth="64", width="128", batch_size="512", steps="0")
    assert err.param == "batch_size"
    assert "too large" in err.message and "even with steps=0" in err.message


@pytest.mark.parametrize("name", GRADIENT_FLOW)
def test_defaults_and_depth_64_fit_the_budget(name: str) -> None:
    params = defaults(name)
    assert isinstance(params, GradientFlowParams)
    assert params.estimate_seconds() <= BUDGET_S / 2
    _, deep = resolve(name, {"depth": "64", "steps": "10"})
    assert deep.estimate_seconds() <= BUDGET_S


def test_unknown_experiment_lookup_names_preset() -> None:
    with pytest.raises(DemoInputError) as info:
        get_experiment("  residual-vs-plains ")
    assert info.value.param == "preset"
    assert get_experiment(" residual-vs-plain ").name == "residual-vs-plain"


@pytest.mark.parametrize(
    "modules",
    [
        "app.demo.catalog, app.demo.params, app.demo.runner, app.demo.errors, app.demo.result",
        "app.routes.demo",
    ],
)
def test_importing_the_demo_does_not_import_torch(modules: str) -> None:
    code = f"import sys, {modules}; assert 'torch' not in sys.modules, 'torch was imported'"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture(autouse=True)
def reference_budget() -> Iterator[None]:
    """Every test here sees the reference budget (the scale is process-wide: a runner with
    live workers elsewhere in the session sets it from their measured speed)."""
    from app.demo.params import set_budget_scale

    set_budget_scale(1.0)
    yield
    set_budget_scale(1.0)


@pytest.fixture
def faster_workers() -> Callable[[float], None]:
    """Set the deployment's budget scale as workers report their speed (reset after)."""
    from app.demo.params import set_budget_scale

    return set_budget_scale


def test_faster_workers_admit_larger_runs_and_the_catalog_says_so(
    faster_workers: Callable[[float], None],
) -> None:
    """A run over the reference budget is refused at speed 1 and admitted on workers four
    times faster; the presets' limits grow with it; slower workers never shrink it."""
    from app.demo.catalog import EXPERIMENTS, catalog
    from app.demo.params import budget_s

    experiment = EXPERIMENTS["residual-vs-plain"]
    limit = next(e["limits"] for e in catalog() if e["name"] == experiment.name)
    assert limit["budget_s"] == BUDGET_S and limit["param"] == "steps"
    too_many = limit["largest"] + 1
    with pytest.raises(DemoInputError):
        resolve(experiment.name, {"steps": str(too_many)})
    faster_workers(4.0)
    assert budget_s() == 4 * BUDGET_S
    assert resolve(experiment.name, {"steps": str(too_many)})[1].steps == too_many  # type: ignore[attr-defined]
    wider = next(e["limits"] for e in catalog() if e["name"] == experiment.name)
    assert wider["budget_s"] == 4 * BUDGET_S and wider["largest"] > too_many
    faster_workers(0.5)  # a slow or busy machine keeps the reference budget
    assert budget_s() == BUDGET_S
    faster_workers(1.3)  # and so does noise around the reference speed
    assert budget_s() == BUDGET_S


def test_the_runner_budgets_for_its_slowest_live_worker(
    faster_workers: Callable[[float], None],
) -> None:
    import asyncio

    from app.demo.executor import WorkerInfo
    from app.demo.params import budget_s
    from app.demo.runner import DemoRunner

    class TwoSpeeds:
        """Reports two live workers, a GPU and a CPU one (nothing runs on it)."""

        def __init__(self) -> None:
            self.on_change: Callable[[], None] = lambda: None

        def start(self, on_change: Callable[[], None]) -> None:
            self.on_change = on_change

        def free_slots(self) -> int:
            return 0

        def workers(self) -> list[WorkerInfo]:
            return [
                WorkerInfo(id="gpu", device="cuda", speed=12.0, ready=True),
                WorkerInfo(id="cpu", device="cpu", speed=3.0, ready=True),
            ]

        def model_progress(self) -> None:
            return None

        def shutdown(self) -> None:
            pass

    async def scenario() -> float:
        executor = TwoSpeeds()
        runner = DemoRunner(executor)  # type: ignore[arg-type]
        await runner.start()
        executor.on_change()
        await asyncio.sleep(0)  # the change is handled on the loop
        runner.shutdown()
        return budget_s()

    assert asyncio.run(scenario()) == 3.0 * BUDGET_S
