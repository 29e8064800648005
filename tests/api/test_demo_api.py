"""The /api/demo contract over HTTP: the catalog, results and their claims, bad input, the
event stream, the gate, the time budget and a client that disconnects.

Results and the stream run the real engine on tiny networks. The gate, the budget and the
disconnect are driven by tests.demo_fixtures.ControlledEngine (its steps run when the test
allows them) in a runner that replaces the app's own once the lifespan has started."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.demo.families.gradient_flow_params import ResidualParams
from app.demo.runner import DemoRunner
from app.main import create_app
from tests.conftest import make_settings
from tests.demo_fixtures import ControlledEngine, FakeClock, eventually, runner_in
from tests.live import serving

SMALL = {
    "preset": "residual-vs-plain",
    "depth": "6",
    "width": "16",
    "steps": "10",
    "batch_size": "16",
}
GRADIENT_FLOW = {
    "residual-vs-plain",
    "vanishing-gradient",
    "normalization",
    "layernorm-placement",
    "activation-functions",
    "initialization",
}


def parse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """A text/event-stream body as (event, data) pairs; comments (keep-alive pings) dropped."""
    events = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = fields.get(key, "") + value.removeprefix(" ")
        if "data" in fields:
            events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


@pytest.fixture(scope="module")
def demo_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from tests.factories import write_corpus

    root = tmp_path_factory.mktemp("demo")
    app = create_app(make_settings(root, write_corpus(root / "data")))
    # the real engine, with a clock that stands still: a slow machine's run is not cut short
    real = DemoRunner(device="cpu", clock=FakeClock())
    with TestClient(app) as client, runner_in(app, real):
        yield client


def test_presets_catalog(demo_client: TestClient) -> None:
    response = demo_client.get("/api/demo/presets")
    assert response.status_code == 200, response.text
    presets = response.json()
    assert presets and presets[0]["name"] == "residual-vs-plain" and presets[0]["default"] is True
    assert GRADIENT_FLOW <= {p["name"] for p in presets}
    for preset in presets:
        assert preset["variants"] and preset["params"] and preset["claims"], preset["name"]
        assert preset["family"] and preset["citation"] and preset["terms"]
    for preset in (p for p in presets if p["name"] in GRADIENT_FLOW):
        depth = next(p for p in preset["params"] if p["name"] == "depth")
        assert depth["max"] >= 64 and depth["min"] == 2


def test_a_run_returns_its_numbers_and_the_second_is_cached(demo_client: TestClient) -> None:
    first = demo_client.get("/api/demo", params=SMALL)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["device"] == "cpu" and body["cached"] is False
    assert body["experiment"] == "residual-vs-plain" and body["family"] == "gradient-flow"
    assert body["config"]["depth"] == 6 and body["config"]["preset"] == "residual-vs-plain"
    assert [v["name"] for v in body["variants"]] == ["plain", "residual"]
    for variant in body["variants"]:
        assert [layer["index"] for layer in variant["layers"]] == list(range(1, 7))
        assert len(variant["loss"]) == 11
        assert variant["recorded_steps"][0]["step"] == 0
        assert variant["metrics"]["final_loss"] == variant["loss"][-1]
    assert [c["id"] for c in body["charts"]] == ["weight_gradients", "input_gradients", "loss"]
    assert [c["id"] for c in body["claims"]] == [
        "plain-gradient-vanishes",
        "residual-gradient-kept",
        "residual-trains-better",
    ]
    assert "plain" in body["summary"] and "residual" in body["summary"]
    again = demo_client.get("/api/demo", params=SMALL)
    assert again.status_code == 200 and again.json()["cached"] is True
    assert again.json()["variants"] == body["variants"]


@pytest.mark.parametrize(("depth", "holds"), [(2, False), (32, True)])
def test_the_main_claim_is_checked_on_the_run(
    demo_client: TestClient, depth: int, holds: bool
) -> None:
    """What the panel shows: the plain network's gradient vanishes in a deep net, not in a
    shallow one, and the claim says so from the run's own measure."""
    params = {"depth": str(depth), "width": "16", "batch_size": "16", "steps": "0"}
    response = demo_client.get("/api/demo", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    main = body["claims"][0]
    plain = next(v for v in body["variants"] if v["name"] == "plain")
    assert main["id"] == "plain-gradient-vanishes"
    relation, bound = main["expected"].split()
    assert relation == "below" and float(bound) == 1e-3
    assert main["measured"] == plain["metrics"]["wg_first_over_last"]
    assert main["holds"] is holds, main
    assert main["citation"] == "He et al., 2016"


BUDGET_LIMIT = ResidualParams(depth=64, width=256, batch_size=512, steps=0).max_steps()


@pytest.mark.parametrize(
    ("params", "parameter", "fragment"),
    [
        ({"preset": "nope"}, "preset", "preset must be one of residual-vs-plain"),
        (
            {"activation": "swish"},
            "activation",
            "activation must be one of relu, tanh, sigmoid, gelu",
        ),
        ({"depth": "abc"}, "depth", "depth must be an integer from 2 to 64, got 'abc'"),
        ({"depth": "3.5"}, "depth", "an integer from 2 to 64"),
        ({"depth": "65"}, "depth", "from 2 to 64, got '65'"),
        ({"steps": "-1"}, "steps", "steps must be an integer from 0 to 2000"),
        ({"lr": "nan"}, "lr", "lr must be a number from 1e-05 to 1, got 'nan'"),
        ({"lr": "inf"}, "lr", "lr must be a number from 1e-05 to 1, got 'inf'"),
        ({"width": ""}, "width", "width must be an integer from 8 to 256"),
        ({"colour": "red"}, "colour", "colour does not apply to experiment 'residual-vs-plain'"),
        ({"preset": "vanishing-gradient", "activation": "relu"}, "activation", "does not apply"),
        ({"seed": "9" * 101}, "seed", "seed is longer than 100 characters"),
        (
            {"depth": "64", "width": "256", "batch_size": "512", "steps": "2000"},
            "steps",
            f"steps must be at most {BUDGET_LIMIT} for depth=64, width=256 and batch_size=512",
        ),
    ],
)
def test_bad_input_is_422_naming_the_parameter(
    demo_client: TestClient, params: dict[str, str], parameter: str, fragment: str
) -> None:
    runner: DemoRunner = demo_client.app.state.demo_runner  # type: ignore[attr-defined]
    before = runner.status()["cache_entries"]
    response = demo_client.get("/api/demo", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["status"] == 422 and body["details"]["parameter"] == parameter
    assert fragment in body["message"], body["message"]
    assert body["details"]["errors"][0]["param"] == parameter
    stream = demo_client.get("/api/demo/stream", params=params)
    assert stream.status_code == 422, stream.text
    assert stream.json()["details"]["parameter"] == parameter
    assert runner.status()["cache_entries"] == before  # nothing ran


def test_event_stream_end_to_end(demo_client: TestClient) -> None:
    params = {**SMALL, "seed": "7"}
    response = demo_client.get("/api/demo/stream", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_events(response.text)
    kinds = [kind for kind, _ in events]
    assert len(kinds) >= 3 and kinds[-1] == "result" and set(kinds[:-1]) == {"progress"}, kinds
    progress = [data for kind, data in events if kind == "progress"]
    steps = [p["step"] for p in progress]
    assert steps == [0, 2, 4, 6, 8, 10]
    assert {p["total_steps"] for p in progress} == {10}
    last = progress[-1]
    assert [c["id"] for c in last["charts"]] == ["weight_gradients", "input_gradients", "loss"]
    result = events[-1][1]
    assert result["config"]["seed"] == 7 and result["cached"] is False
    plain_loss = next(s for s in last["charts"][2]["series"] if s["variant"] == "plain")
    assert [y for _, y in plain_loss["points"]] == result["variants"][0]["loss"]
    direct = demo_client.get("/api/demo", params=params).json()
    assert direct["cached"] is True and direct["variants"] == result["variants"]


# ----------------------------------------------------------------------------- controlled runs


def test_gate_answers_503_with_retry_after(
    tmp_path: Path, data_dir: Path, controlled_engine: ControlledEngine
) -> None:
    """One run at a time: while the engine holds a run, the next is refused with Retry-After,
    and pages are still served."""
    app = create_app(make_settings(tmp_path, data_dir))
    results: list[Any] = []  # the TestClient's responses (httpx2)
    with TestClient(app) as client:
        gated = DemoRunner(
            device="cpu", max_running=1, max_queued=0, engine=controlled_engine, clock=FakeClock()
        )
        with runner_in(app, gated):
            worker = threading.Thread(
                target=lambda: results.append(client.get("/api/demo", params=SMALL))
            )
            worker.start()
            try:
                assert controlled_engine.wait_started(1), "the first run never started"
                busy = client.get("/api/demo", params={**SMALL, "seed": "1"})
                busy_stream = client.get("/api/demo/stream", params={**SMALL, "seed": "1"})
                page = client.get("/terms/resnet")
                busy_status = gated.status()
            finally:
                controlled_engine.release()
                worker.join(timeout=30)
    assert busy.status_code == 503, busy.text
    retry = busy.headers["retry-after"]
    assert retry.isdigit() and int(retry) >= 1
    body = busy.json()
    assert body["status"] == 503 and body["details"]["retry_after_s"] == int(retry)
    assert f"try again in {retry} s" in body["message"]
    assert busy_stream.status_code == 503 and busy_stream.headers["retry-after"] == retry
    assert page.status_code == 200
    assert busy_status["running"] == 1
    assert [r.status_code for r in results] == [200]
    assert results[0].json()["summary"] == "A controlled run of 11 steps."


def test_a_run_over_its_time_budget_is_503(tmp_path: Path, data_dir: Path) -> None:
    clock = FakeClock()
    engine = ControlledEngine(clock=clock, tick_s=1.0)  # each step takes 1 s of fake time
    engine.release()
    app = create_app(make_settings(tmp_path, data_dir))
    with TestClient(app) as client:
        with runner_in(app, DemoRunner(device="cpu", engine=engine, clock=clock, time_budget_s=3)):
            response = client.get("/api/demo", params=SMALL)
            stream = client.get("/api/demo/stream", params={**SMALL, "seed": "1"})
    assert response.status_code == 503, response.text
    assert response.json()["details"] == {"reason": "time_budget"}
    assert "wall-clock budget of 3 s" in response.json()["message"]
    assert int(response.headers["retry-after"]) >= 1
    assert engine.runs and engine.runs[0].stopped_at == 4  # steps 0-3 started within 3 s
    assert stream.status_code == 200  # the stream had begun: the failure is its last event
    events = parse_events(stream.text)
    assert events and events[-1][0] == "error", events
    assert events[-1][1]["status"] == 503 and events[-1][1]["details"] == {"reason": "time_budget"}
    assert [kind for kind, _ in events[:-1]] == ["progress"] * 4


def test_client_disconnect_stops_the_run(
    tmp_path: Path, data_dir: Path, controlled_engine: ControlledEngine
) -> None:
    """Over real HTTP (uvicorn): the client reads the first progress event and hangs up; the
    run stops before its next step and the demo is free again."""
    app = create_app(make_settings(tmp_path, data_dir))
    controlled_engine.allow(1)  # step 0 runs; step 1 waits
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        with runner_in(app, DemoRunner(device="cpu", engine=controlled_engine, clock=FakeClock())):
            params = {**SMALL, "steps": "500"}
            with http.stream("GET", "/api/demo/stream", params=params) as stream:
                assert stream.status_code == 200
                lines = stream.iter_lines()
                assert any(line.startswith("event: progress") for line in lines)
                data = next(lines)
                assert data.startswith("data: ") and json.loads(data[6:])["step"] == 0
            # the connection is closed now
            assert controlled_engine.wait_started(1)
            run = controlled_engine.runs[0]
            assert run.done.wait(15), "the run kept going after the client left"
            assert run.steps == [0] and run.stopped_at == 1

            def idle() -> bool:
                return bool(http.get("/healthz").json()["demo"]["running"] == 0)

            assert eventually(idle)
            controlled_engine.release()
            follow_up = http.get("/api/demo", params=SMALL)
            assert follow_up.status_code == 200, follow_up.text
            assert follow_up.json()["cached"] is False


def test_pages_never_wait_for_torch(tmp_path: Path, data_dir: Path) -> None:
    """Start-up and pages do not import torch (it loads in the background, 2-3 s)."""
    script = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from app.main import create_app\n"
        "from tests.conftest import make_settings\n"
        "from pathlib import Path\n"
        f"app = create_app(make_settings(Path({str(tmp_path)!r}), Path({str(data_dir)!r})))\n"
        "with TestClient(app) as client:\n"
        "    assert client.get('/terms/resnet').status_code == 200\n"
        "    assert client.get('/api/demo/presets').status_code == 200\n"
        "    assert 'torch' not in sys.modules, 'torch was imported on the request path'\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_term_without_an_experiment_of_its_own_opens_on_residual_vs_plain(
    demo_client: TestClient,
) -> None:
    """Every page keeps the live residual-vs-plain demo the glossary was built around."""
    from tests.factories import default_terms

    without = [slug for slug, entry in default_terms().items() if "demo" not in entry]
    assert without, "every factory term names an experiment"
    for slug in without:
        term = demo_client.get(f"/api/terms/{slug}").json()
        assert term["experiment"]["name"] == "residual-vs-plain", slug
        assert term["experiment"]["claims"], slug
        assert 'data-preset="residual-vs-plain"' in demo_client.get(f"/terms/{slug}").text


def test_a_term_page_opens_on_its_own_experiment(tmp_path: Path) -> None:
    """On the real content: the page names its experiment, with the claims the run checks."""
    from app.demo.catalog import EXPERIMENTS

    data = Path(__file__).resolve().parents[2] / "data"
    app = create_app(make_settings(tmp_path, data, demo_warmup=False))
    with TestClient(app) as client:
        term = client.get("/api/terms/dropout").json()
        page = client.get("/terms/dropout").text
    experiment = EXPERIMENTS["dropout"]
    assert term["experiment"]["name"] == "dropout"
    assert [c["id"] for c in term["experiment"]["claims"]] == [c.id for c in experiment.claims]
    assert 'data-preset="dropout"' in page
    for claim in experiment.claims:  # stated on the page before any run (no JavaScript needed)
        assert f'data-claim="{claim.id}"' in page, claim.id
