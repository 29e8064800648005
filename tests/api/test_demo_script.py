"""GET /api/demo/script: every experiment that does not need the language model, as a
standalone script, reproduces the API's numbers (those on the model: test_demo_script_lm.py).

Each script is downloaded through the API, checked to import nothing of this project (only
the standard library and torch), and run by this venv's Python in isolated mode (-I) from
an empty folder, where `app` cannot be imported. Its printed variants must equal, number for
number, the `variants` GET /api/demo returns for the same parameters (the real engine, on a
thread of this process, as tests/api/test_demo_api.py runs it): the same structure and types,
floats to 1e-9 relative (RELATIVE: most are bitwise equal; MKL's LAPACK is not, even on the
server), except the attention kernels' wall-clock timings (TIMINGS). The scripts run two at a
time (this machine's cores), at small parameters, so the whole file stays near a minute.
"""

from __future__ import annotations

import ast
import json
import re
import runpy
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from fastapi.testclient import TestClient

from app.demo.catalog import EXPERIMENTS
from app.demo.experiment import execute
from app.main import create_app
from tests.conftest import ROOT, make_settings
from tests.demo_fixtures import runner_in, thread_runner

SCRIPTABLE = [name for name, e in EXPERIMENTS.items() if not e.needs_model]
# Cheap parameters (any preset not named here runs at its defaults, which fit in ~1 s).
SMALL: dict[str, dict[str, str]] = {
    "residual-vs-plain": {"steps": "10", "depth": "8"},
    "vanishing-gradient": {"steps": "10"},
    "normalization": {"steps": "10", "depth": "8"},
    "layernorm-placement": {"steps": "4", "depth": "4"},
    "activation-functions": {"steps": "10"},
    "initialization": {"steps": "10"},
    "shattered-gradients": {"depth": "10"},
    "dynamical-isometry": {"depth": "8"},
    "rmsnorm-vs-layernorm": {"steps": "20"},
    "softmax-temperature": {"max_scale": "8", "tokens": "16"},
    "optimizers": {"steps": "20"},
    "learning-rate-sweep": {"steps": "20", "points": "3"},
    "edge-of-stability": {"steps": "40"},
    "gradient-clipping": {"steps": "20"},
    "learning-rate-schedules": {"steps": "20"},
    "learning-rate-warmup": {"steps": "10", "warmup_steps": "3"},
    "gradient-noise-scale": {"steps": "20"},
    "overfitting": {"steps": "20"},
    "dropout": {"steps": "20"},
    "weight-decay": {"steps": "20"},
    "data-augmentation": {"steps": "20"},
    "early-stopping": {"steps": "20"},
    "double-descent": {"max_features": "400"},
    "loss-functions": {"steps": "20"},
    "rnn-vs-lstm": {"seq_len": "10", "batch_size": "32"},
    "cnn-vs-mlp": {"steps": "10"},
    "byte-pair-encoding": {"merges": "20"},
    "positional-encoding": {"steps": "5"},
    "attention-kernels": {"max_length": "64", "repeats": "1"},
}
# Wall-clock measurements differ from run to run: everything else must be equal.
TIMINGS: dict[str, set[str]] = {"attention-kernels": {"ms", "time_slope"}}
# MKL's LAPACK (lstsq, svd, qr, cholesky) rounds by the memory alignment of its inputs, so
# the server's own numbers for one config move by an ulp with what its process ran before
# (learning-rate-schedules' final_excess: ...5395 fresh, ...53952 after residual-vs-plain).
RELATIVE = 1e-9
ALLOWED_IMPORTS = set(sys.stdlib_module_names) | {"torch"}
SCRIPT_TIMEOUT_S = 120


class Downloaded(NamedTuple):
    status: int
    headers: dict[str, str]
    text: str
    stdout: str
    stderr: str
    returncode: int | None


@pytest.fixture(scope="module")
def script_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from tests.factories import write_corpus

    root = tmp_path_factory.mktemp("script-app")
    app = create_app(make_settings(root, write_corpus(root / "data")))
    with TestClient(app) as client, runner_in(app, thread_runner(execute)):
        yield client


@pytest.fixture(scope="module")
def downloads(
    request: pytest.FixtureRequest,
    script_client: TestClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Downloaded]:
    """The script of every preset this session's tests ask for, downloaded, then run two at
    a time (all at once, so both cores are busy: each run mostly imports torch)."""
    return download_and_run(request, script_client, SMALL, tmp_path_factory.mktemp("scripts"))


def download_and_run(
    request: pytest.FixtureRequest,
    client: TestClient,
    small: dict[str, dict[str, str]],
    folder: Path,
) -> dict[str, Downloaded]:
    """The script of each preset the selected tests of the requesting file compare, at its
    `small` parameters, downloaded from `client` and run from `folder` (where `app` is not)."""
    wanted = [
        name
        for item in request.session.items
        if item.path == request.path and (name := preset_of(item)) is not None
    ]
    answers = {
        name: client.get("/api/demo/script", params={"preset": name, **small.get(name, {})})
        for name in wanted
    }
    return run_scripts(answers, folder)


def run_scripts(answers: dict[str, Any], folder: Path) -> dict[str, Downloaded]:
    """Each downloaded script (an httpx response) run by this venv's Python in isolated mode
    from `folder`, two at a time (all at once, so both cores are busy)."""

    def run(name: str) -> Downloaded:
        answer = answers[name]
        if answer.status_code != 200:
            return Downloaded(answer.status_code, dict(answer.headers), answer.text, "", "", None)
        path = folder / f"{name}.py"
        path.write_text(answer.text, encoding="utf-8")
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-I", str(path)],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            env={"PATH": "/usr/bin:/bin", "HOME": str(folder)},
        )
        return Downloaded(
            200, dict(answer.headers), answer.text, done.stdout, done.stderr, done.returncode
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(answers, pool.map(run, answers), strict=True))


def preset_of(item: pytest.Item) -> str | None:
    """The preset a selected test of this file compares (None: not one of those)."""
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("name")


def imported_modules(source: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def first_difference(mine: Any, theirs: Any, path: str = "variants") -> str | None:
    """Where two JSON values differ (None: nowhere): the same structure, keys and types (1,
    1.0 and True are three different answers), floats equal to RELATIVE (see the module's
    docstring)."""
    if type(mine) is not type(theirs):
        return f"{path}: {mine!r} != {theirs!r}"
    if isinstance(mine, dict):
        if mine.keys() != theirs.keys():
            return f"{path}: keys {sorted(mine)} != {sorted(theirs)}"
        found = (first_difference(mine[k], theirs[k], f"{path}.{k}") for k in mine)
        return next((d for d in found if d), None)
    if isinstance(mine, list):
        if len(mine) != len(theirs):
            return f"{path}: {len(mine)} items != {len(theirs)}"
        found = (
            first_difference(a, b, f"{path}[{i}]")
            for i, (a, b) in enumerate(zip(mine, theirs, strict=True))
        )
        return next((d for d in found if d), None)
    if isinstance(mine, float) and abs(mine - theirs) <= RELATIVE * max(abs(mine), abs(theirs)):
        return None
    return None if mine == theirs else f"{path}: {mine!r} != {theirs!r}"


def without(variants: list[dict[str, Any]], keys: set[str]) -> list[dict[str, Any]]:
    return [
        v | {"metrics": {k: x for k, x in v["metrics"].items() if k not in keys}} for v in variants
    ]


def test_every_experiment_without_the_language_model_is_scriptable() -> None:
    assert len(SCRIPTABLE) >= 30 and "residual-vs-plain" in SCRIPTABLE
    assert set(SMALL) <= set(SCRIPTABLE), "SMALL names a preset that is not scriptable"


@pytest.mark.parametrize("name", SCRIPTABLE)
def test_the_script_reproduces_the_api(
    name: str, script_client: TestClient, downloads: dict[str, Downloaded]
) -> None:
    got = downloads[name]
    assert got.status == 200, got.text
    assert got.headers["content-type"].startswith("text/x-python")
    assert got.headers["content-disposition"] == f'attachment; filename="{name}.py"'
    assert got.headers["x-content-type-options"] == "nosniff"  # the site's headers, and
    assert "frame-ancestors 'none'" in got.headers["content-security-policy"]
    assert "access-control-allow-origin" not in got.headers  # no CORS
    assert not re.search(r"^\s*(from|import)\s+app\b", got.text, re.MULTILINE)
    assert imported_modules(got.text) <= ALLOWED_IMPORTS
    assert got.returncode == 0, got.stderr[-3000:]

    api = script_client.get("/api/demo", params={"preset": name, **SMALL.get(name, {})})
    assert api.status_code == 200, api.text
    result = api.json()
    printed = json.loads(got.stdout)
    timings = TIMINGS.get(name, set())
    mismatch = first_difference(without(printed, timings), without(result["variants"], timings))
    assert mismatch is None, mismatch
    for variant in printed:  # the timings are there, only not compared
        assert timings <= set(variant["metrics"])

    # the parameters are baked in, as an editable dict, and are the run's canonical config
    tree = ast.parse(got.text)
    params = next(
        n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PARAMS"
    )
    assert {"preset": name} | ast.literal_eval(params) == result["config"]


def test_bad_parameters_are_refused_as_the_demo_refuses_them(script_client: TestClient) -> None:
    for params, parameter in (
        ({"preset": "residual-vs-plain", "depth": "999"}, "depth"),
        ({"preset": "residual-vs-plain", "steps": "many"}, "steps"),
        ({"preset": "no-such-experiment"}, "preset"),
    ):
        response = script_client.get("/api/demo/script", params=params)
        demo = script_client.get("/api/demo", params=params)
        assert response.status_code == demo.status_code == 422, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json() == demo.json()
        assert response.json()["details"]["parameter"] == parameter


def test_an_experiment_on_the_language_model_is_a_conflict_without_one(
    script_client: TestClient,
) -> None:
    """This server runs no language model (lm_start is false): nothing says which model a
    script would train (test_demo_script_lm.py: a server that runs one)."""
    lm = [name for name, e in EXPERIMENTS.items() if e.needs_model]
    assert lm
    for name in lm[:3]:
        response = script_client.get("/api/demo/script", params={"preset": name})
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["status"] == 409 and body["details"] == {"preset": name}
        assert "language model" in body["message"]


def test_the_script_route_is_in_openapi(script_client: TestClient) -> None:
    operation = script_client.get("/openapi.json").json()["paths"]["/api/demo/script"]["get"]
    assert "text/x-python" in operation["responses"]["200"]["content"]
    for status in ("409", "422"):
        assert "application/json" in operation["responses"][status]["content"]


def test_building_a_script_does_not_import_torch() -> None:
    """The web process builds scripts from the modules' text: torch stays out of it."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from app.demo.catalog import resolve\n"
        "from app.demo.script import script_for\n"
        "for name in ('residual-vs-plain', 'byte-pair-encoding', 'attention-kernels'):\n"
        "    assert 'def main' in script_for(*resolve(name, {}))\n"
        "from app.demo.script_lm import ServerModel\n"
        "model = ServerModel('tiny', Path('data'))\n"
        "assert 'def main' in script_for(*resolve('lora', {}), model=model)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_the_scripts_records_dump_as_the_servers_models(
    script_client: TestClient, tmp_path: Path
) -> None:
    """The script's stand-ins for the pydantic result models give the API's JSON: a float
    field turns ints and bools into floats, tuples become lists, defaults are filled in."""
    from app.demo import result

    text = script_client.get("/api/demo/script", params={"preset": "residual-vs-plain"}).text
    path = tmp_path / "residual-vs-plain.py"
    path.write_text(text, encoding="utf-8")
    script = runpy.run_path(str(path), run_name="script")  # not __main__: main() does not run
    samples: dict[str, dict[str, Any]] = {
        "VariantResult": {
            "name": "a",
            "label": "A",
            "metrics": {"int": 3, "bool": True, "float": 0.1, "none": None},
            "loss": [1, 2.5, None],
            "layers": [result.LayerNorms(index=1, weight_grad_norm=2, activation_grad_norm=None)],
        },
        "Series": {"label": "s", "points": [(0, 1), (1.5, None)]},
        "LayerNorms": {"index": 2, "weight_grad_norm": False, "activation_grad_norm": 7},
    }
    for name, values in samples.items():
        server = getattr(result, name)(**values).model_dump(mode="json")
        mine = {
            k: ([script["LayerNorms"](**x.model_dump()) for x in v] if k == "layers" else v)
            for k, v in values.items()
        }
        local = script[name](**mine).model_dump()
        assert json.dumps(local, sort_keys=True) == json.dumps(server, sort_keys=True), name


def test_a_name_two_modules_define_is_renamed_in_the_later_one() -> None:
    """No experiment's own modules clash today; two engines in one bundle do (both define
    `run`, and more): the later module's names get its name as a suffix, everywhere."""
    from app.demo.script_bundle import bundle

    rank, isometry = (
        "app.demo.engines.signal_propagation_rank",
        "app.demo.engines.signal_propagation_isometry",
    )
    flat = bundle([(rank, "run"), (isometry, "run")], ())
    assert flat.names[(rank, "run")] == "run"
    assert flat.names[(isometry, "run")] == "run_signal_propagation_isometry"
    texts = {module: "\n".join(texts) for module, _, texts in flat.sections}
    tree = ast.parse(texts[isometry])
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    assert "run_signal_propagation_isometry" in defined and "run" not in defined
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert "_metrics_signal_propagation_isometry" in used and "_metrics" not in used
    called = {n.id for n in ast.walk(ast.parse(texts[rank])) if isinstance(n, ast.Name)}
    assert "run_signal_propagation_isometry" not in called  # the earlier module keeps its own
