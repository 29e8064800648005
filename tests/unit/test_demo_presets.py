"""Presets, parameters and validation of the live demo (no torch needed)."""

import json
import subprocess
import sys

import pytest

from app.demo.presets import (
    BUDGET_S,
    DEFAULT_PRESET,
    PRESETS,
    DemoInputError,
    estimate_seconds,
    max_steps_for,
    presets_catalog,
    resolve_config,
)

NAMES = [
    "residual-vs-plain",
    "vanishing-gradient",
    "normalization",
    "layernorm-placement",
    "activation-functions",
    "initialization",
]


def test_exactly_the_six_presets_with_the_contract_variant_names() -> None:
    assert list(PRESETS) == NAMES
    assert DEFAULT_PRESET == "residual-vs-plain"
    names = {p: [v.name for v in PRESETS[p].variants] for p in NAMES}
    assert names["residual-vs-plain"] == ["plain", "residual"]
    assert names["layernorm-placement"] == ["post-ln", "pre-ln", "no-residual"]
    for p in NAMES:
        assert len(set(names[p])) == len(names[p]) >= 2
        assert PRESETS[p].citation and PRESETS[p].description


def test_catalog_is_json_and_lists_params_defaults_and_bounds() -> None:
    catalog = presets_catalog()
    json.dumps(catalog, allow_nan=False)
    assert [c["name"] for c in catalog] == NAMES
    assert [c["name"] for c in catalog if c["default"]] == [DEFAULT_PRESET]
    for entry in catalog:
        for param in entry["params"]:
            assert param["help"]
            assert param["name"] in entry["defaults"]
            if param["kind"] == "choice":
                assert param["default"] in param["choices"]
            else:
                assert param["min"] <= param["default"] <= param["max"]
        depth = next(p for p in entry["params"] if p["name"] == "depth")
        assert depth["max"] >= 64


def test_a_param_the_variants_vary_is_not_listed() -> None:
    params = {p: {s.name for s in PRESETS[p].params} for p in NAMES}
    assert "activation" not in params["activation-functions"]
    assert "activation" not in params["vanishing-gradient"]
    assert "init" not in params["initialization"]
    assert "norm" not in params["normalization"]
    assert "activation" in params["residual-vs-plain"]


def test_defaults_resolve_to_a_complete_canonical_config() -> None:
    config = resolve_config(None, {})
    assert config.preset == DEFAULT_PRESET
    d = config.as_dict()
    assert d == {"preset": DEFAULT_PRESET} | PRESETS[DEFAULT_PRESET].defaults
    json.dumps(d, allow_nan=False)
    for name in NAMES:
        cfg = resolve_config(name, {})
        assert set(cfg.as_dict()) == {"preset"} | {p.name for p in PRESETS[name].params}


def test_cache_key_is_canonical() -> None:
    a = resolve_config("residual-vs-plain", {"lr": "0.05", "depth": "16"})
    b = resolve_config("residual-vs-plain", {"depth": "+16", "lr": "5e-2", "whatever": "x"})
    c = resolve_config("residual-vs-plain", {"depth": "17", "lr": "0.05"})
    assert a == b and a.cache_key() == b.cache_key()
    assert a.cache_key() != c.cache_key()
    assert resolve_config(None, {}).cache_key() == resolve_config(DEFAULT_PRESET, {}).cache_key()


def test_values_are_parsed() -> None:
    cfg = resolve_config(
        "normalization",
        {
            "depth": "8",
            "width": "32",
            "activation": " ReLU ",
            "task": "spirals",
            "lr": ".1",
            "seed": "7",
        },
    )
    assert (cfg.depth, cfg.width, cfg.activation, cfg.task, cfg.lr, cfg.seed) == (
        8,
        32,
        "relu",
        "spirals",
        0.1,
        7,
    )


def _error(preset: str | None, **params: str) -> DemoInputError:
    with pytest.raises(DemoInputError) as info:
        resolve_config(preset, params)
    return info.value


@pytest.mark.parametrize(
    ("preset", "params", "param", "fragment"),
    [
        ("nope", {}, "preset", "preset must be one of residual-vs-plain"),
        (None, {"activation": "swish"}, "activation", "one of relu, tanh, sigmoid, gelu"),
        (None, {"init": "orthogonal"}, "init", "one of default, xavier, kaiming"),
        (None, {"task": "mnist"}, "task", "one of teacher, spirals"),
        (None, {"depth": "65"}, "depth", "depth must be an integer from 2 to 64, got '65'"),
        (None, {"depth": "1"}, "depth", "from 2 to 64"),
        (None, {"depth": "abc"}, "depth", "depth must be an integer from 2 to 64, got 'abc'"),
        (None, {"depth": "3.5"}, "depth", "an integer"),
        (None, {"depth": ""}, "depth", "an integer"),
        (None, {"steps": "-1"}, "steps", "from 0 to"),
        (None, {"width": "1e3"}, "width", "an integer from 8 to 256"),
        (None, {"lr": "2"}, "lr", "lr must be a number from 1e-05 to 1"),
        (None, {"lr": "nan"}, "lr", "a number"),
        (None, {"lr": "inf"}, "lr", "a number"),
        (None, {"lr": "0x1p-3"}, "lr", "a number"),
        (None, {"seed": "99999999999999"}, "seed", "from 0 to 2147483647"),
        ("activation-functions", {"activation": "relu"}, "activation", "does not apply"),
        ("layernorm-placement", {"init": "xavier"}, "init", "does not apply"),
    ],
)
def test_bad_input_names_the_parameter_and_its_range(
    preset: str | None, params: dict[str, str], param: str, fragment: str
) -> None:
    err = _error(preset, **params)
    assert err.param == param
    assert fragment in str(err), str(err)
    assert err.errors[0] == {"param": param, "message": str(err)}


def test_all_problems_are_collected() -> None:
    err = _error(None, depth="0", activation="swish", lr="x", unknown="ignored")
    assert [e["param"] for e in err.errors] == ["depth", "activation", "lr"]
    assert err.param == "depth"


def test_a_run_over_the_compute_budget_is_refused_naming_steps_and_the_limit() -> None:
    err = _error(None, depth="64", width="256", batch_size="512", steps="500")
    preset = PRESETS[DEFAULT_PRESET]
    limit = max_steps_for(preset, 64, 256, 512)
    assert err.param == "steps"
    assert f"steps must be at most {limit} for depth=64, width=256 and batch_size=512" in str(err)
    assert 0 < limit < 500
    # the limit itself is accepted and within the budget
    cfg = resolve_config(
        None, {"depth": "64", "width": "256", "batch_size": "512", "steps": str(limit)}
    )
    assert estimate_seconds(preset, 64, 256, 512, cfg.steps) <= BUDGET_S


def test_a_size_too_big_even_without_training_names_a_size_parameter() -> None:
    err = _error("layernorm-placement", depth="64", width="128", batch_size="512", steps="0")
    assert err.param == "batch_size"
    assert "too large" in str(err)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_and_depth_64_fit_the_budget(name: str) -> None:
    preset = PRESETS[name]
    d = preset.defaults
    assert (
        estimate_seconds(
            preset, int(d["depth"]), int(d["width"]), int(d["batch_size"]), int(d["steps"])
        )
        <= BUDGET_S / 2
    )
    resolve_config(name, {"depth": "64", "steps": "10"})


def test_importing_presets_and_runner_does_not_import_torch() -> None:
    code = (
        "import sys, app.demo.presets, app.demo.runner, app.demo.errors; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
