"""The /api/demo contract over HTTP: the catalog, results and their claims, bad input, the
event stream (queued first, ids, Last-Event-ID replay), where a result came from (`source`),
the per-client cap (429), the queue limit (503), the time budget and a client that
disconnects.

Results and the stream run the real engine on tiny networks, on a thread of this process
(tests.demo_fixtures.thread_runner with experiment.execute). The cap, the queue, the budget,
replay and disconnects are driven by tests.demo_fixtures.ControlledEngine (its steps run when
the test allows them) in a runner that replaces the app's own once the lifespan has started;
what needs a real connection to drop (disconnect, reconnect) runs over a real uvicorn."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.demo.experiment import execute
from app.demo.families.gradient_flow_params import ResidualParams
from app.demo.runner import DemoRunner
from app.main import create_app
from tests.conftest import PATIENCE_S, make_settings
from tests.demo_fixtures import (
    ControlledEngine,
    FakeClock,
    eventually,
    runner_in,
    thread_runner,
)
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


class Sse(NamedTuple):
    """One server-sent event."""

    event: str
    data: dict[str, Any]
    id: str | None


def sse(lines: Iterable[str]) -> Iterator[Sse]:
    """Events from a text/event-stream's lines, each as soon as its blank line arrives;
    comments (keep-alive pings) dropped."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                yield Sse(
                    fields.get("event", "message"), json.loads(fields["data"]), fields.get("id")
                )
            fields = {}
        elif not line.startswith(":") and ":" in line:
            key, _, value = line.partition(":")
            fields[key] = fields.get(key, "") + value.removeprefix(" ")
    if "data" in fields:
        yield Sse(fields.get("event", "message"), json.loads(fields["data"]), fields.get("id"))


def parse_events(text: str) -> list[Sse]:
    """A whole text/event-stream body as events."""
    return list(sse(text.replace("\r\n", "\n").split("\n")))


def kinds(events: Iterable[Sse]) -> list[str]:
    return [e.event for e in events]


def sequential_ids(events: list[Sse]) -> bool:
    """Every event has an id "<run>.<seq>": one run, seq 1, 2, 3, ..."""
    ids = [e.id for e in events]
    if not ids or any(i is None for i in ids):
        return False
    run = ids[0].partition(".")[0]  # type: ignore[union-attr]
    return ids == [f"{run}.{seq}" for seq in range(1, len(ids) + 1)]


def seeds(engine: ControlledEngine) -> list[int]:
    """The seed of every run the engine was called for, in the order they started."""
    return [int(r.params.seed) for r in engine.runs]


def in_flight_listeners(runner: DemoRunner) -> int:
    """How many readers follow the runs in flight (a joined request is one more)."""
    return sum(run.listeners for run in list(runner._live.values()))


def asking(target: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, list[Any]]:
    """target(*args, **kwargs) on a thread started now (a request that waits for its run);
    its answer lands in the list."""
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(target(*args, **kwargs)))
    thread.start()
    return thread, answers


def read_stream(http: httpx.Client, params: dict[str, str]) -> list[Sse]:
    with http.stream("GET", "/api/demo/stream", params=params) as response:
        assert response.status_code == 200, response.read()
        return list(sse(response.iter_lines()))


@pytest.fixture(scope="module")
def demo_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from tests.factories import write_corpus

    root = tmp_path_factory.mktemp("demo")
    app = create_app(make_settings(root, write_corpus(root / "data")))
    # the real engine on a thread here, with a clock that stands still: a slow machine's run
    # is not cut short by the time budget
    real = thread_runner(execute)
    with TestClient(app) as client, runner_in(app, real):
        yield client


def small_app(tmp_path: Path, data_dir: Path, **settings: object) -> FastAPI:
    return create_app(make_settings(tmp_path, data_dir, **settings))


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
    assert body["device"] == "cpu" and body["cached"] is False and body["source"] == "computed"
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
    assert again.status_code == 200
    assert again.json()["cached"] is True and again.json()["source"] == "cache"
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
            "steps must be at most {limit} for depth=64, width=256 and batch_size=512",
        ),
    ],
)
def test_bad_input_is_422_naming_the_parameter(
    demo_client: TestClient, params: dict[str, str], parameter: str, fragment: str
) -> None:
    runner: DemoRunner = demo_client.app.state.demo_runner  # type: ignore[attr-defined]
    before = runner.status()["cache_entries"]
    # the budget's limit as this process admits it now (it scales with the workers' speed)
    limit = ResidualParams(depth=64, width=256, batch_size=512, steps=0).max_steps()
    response = demo_client.get("/api/demo", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["status"] == 422 and body["details"]["parameter"] == parameter
    assert fragment.format(limit=limit) in body["message"], body["message"]
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
    assert kinds(events) == ["queued"] + ["progress"] * 6 + ["result"], kinds(events)
    assert events[0].data == {"position": 1, "workers": 1, "busy": 0}
    assert sequential_ids(events), [e.id for e in events]
    progress = [e.data for e in events if e.event == "progress"]
    steps = [p["step"] for p in progress]
    assert steps == [0, 2, 4, 6, 8, 10]
    assert {p["total_steps"] for p in progress} == {10}
    last = progress[-1]
    assert [c["id"] for c in last["charts"]] == ["weight_gradients", "input_gradients", "loss"]
    result = events[-1].data
    assert result["config"]["seed"] == 7
    assert result["cached"] is False and result["source"] == "computed"
    plain_loss = next(s for s in last["charts"][2]["series"] if s["variant"] == "plain")
    assert [y for _, y in plain_loss["points"]] == result["variants"][0]["loss"]
    direct = demo_client.get("/api/demo", params=params).json()
    assert direct["cached"] is True and direct["source"] == "cache"
    assert direct["variants"] == result["variants"]
    again = parse_events(demo_client.get("/api/demo/stream", params=params).text)
    assert kinds(again) == ["result"] and again[0].data["source"] == "cache"


# ----------------------------------------------------------------------------- controlled runs


def test_the_source_says_computed_joined_or_cache(
    tmp_path: Path, data_dir: Path, controlled_engine: ControlledEngine
) -> None:
    """The first request computes the run; an identical one while it runs joins it (one run,
    the same numbers); the same request afterwards is answered from the cache."""
    app = small_app(tmp_path, data_dir)
    with TestClient(app) as client, runner_in(app, thread_runner(controlled_engine)) as runner:
        first, firsts = asking(client.get, "/api/demo", params=SMALL)
        assert controlled_engine.wait_started(1), "the first run never started"
        assert eventually(lambda: in_flight_listeners(runner) == 1)
        second, seconds = asking(client.get, "/api/demo", params=SMALL)
        assert eventually(lambda: in_flight_listeners(runner) == 2), "the second never joined"
        controlled_engine.release()
        first.join(PATIENCE_S)
        second.join(PATIENCE_S)
        repeat = client.get("/api/demo", params=SMALL)
    assert firsts and seconds, "a request never answered"
    computed, joined = firsts[0], seconds[0]
    assert computed.status_code == joined.status_code == repeat.status_code == 200
    assert (computed.json()["source"], computed.json()["cached"]) == ("computed", False)
    assert (joined.json()["source"], joined.json()["cached"]) == ("joined", False)
    assert (repeat.json()["source"], repeat.json()["cached"]) == ("cache", True)
    assert controlled_engine.calls == 1
    for other in (joined, repeat):
        assert other.json()["variants"] == computed.json()["variants"]


def test_a_full_queue_answers_503_with_retry_after(
    tmp_path: Path, data_dir: Path, controlled_engine: ControlledEngine
) -> None:
    """One worker, room for one run to wait: while the engine holds a run and another waits,
    the next is refused with Retry-After, and pages are still served."""
    app = small_app(tmp_path, data_dir)
    with TestClient(app) as client:
        gated = thread_runner(controlled_engine, max_queued=1, client_cap=3)
        with runner_in(app, gated):
            held = [asking(client.get, "/api/demo", params={**SMALL, "seed": "0"})]
            try:
                assert controlled_engine.wait_started(1), "the first run never started"
                held.append(asking(client.get, "/api/demo", params={**SMALL, "seed": "1"}))
                assert eventually(lambda: gated.status()["queue"] == 1), "none waits"
                busy = client.get("/api/demo", params={**SMALL, "seed": "2"})
                busy_stream = client.get("/api/demo/stream", params={**SMALL, "seed": "2"})
                page = client.get("/terms/resnet")
                busy_status = client.get("/healthz").json()["demo"]
            finally:
                controlled_engine.release()
                for thread, _ in held:
                    thread.join(PATIENCE_S)
    assert busy.status_code == 503, busy.text
    retry = busy.headers["retry-after"]
    assert retry.isdigit() and int(retry) >= 1
    body = busy.json()
    assert body["status"] == 503 and body["details"]["retry_after_s"] == int(retry)
    assert f"try again in {retry} s" in body["message"]
    assert busy_stream.status_code == 503 and busy_stream.headers["retry-after"] == retry
    assert page.status_code == 200
    assert busy_status["busy"] == 1 and busy_status["queued_visitors"] == 1
    assert busy_status["max_queued"] == 1
    assert [answers[0].status_code for _, answers in held] == [200, 200]
    assert held[0][1][0].json()["summary"] == "A controlled run of 11 steps."
    assert seeds(controlled_engine) == [0, 1]  # the refused requests ran nothing


def test_a_client_over_its_cap_is_429_with_retry_after(
    tmp_path: Path, data_dir: Path, controlled_engine: ControlledEngine
) -> None:
    """demo_client_cap runs queued or running per client: one more is 429 with Retry-After
    and the error body, before anything runs; another client is still served."""
    # the TestClient's peer is "testclient": trusting it lets X-Forwarded-For name others
    app = small_app(tmp_path, data_dir, demo_client_cap=2, trusted_proxies="testclient")
    with TestClient(app) as client:
        assert app.state.demo_runner.client_cap == 2  # the setting reaches the app's runner
        capped = thread_runner(controlled_engine, client_cap=app.state.settings.demo_client_cap)
        with runner_in(app, capped):
            held = [asking(client.get, "/api/demo", params={**SMALL, "seed": s}) for s in "12"]
            refused: list[tuple[threading.Thread, list[Any]]] = []
            try:
                assert eventually(lambda: capped.status()["in_flight"] == 2), "not held"
                # answered at once; asked on threads so that a broken cap fails, not hangs
                refused = [
                    asking(client.get, path, params={**SMALL, "seed": "3"})
                    for path in ("/api/demo", "/api/demo/stream")
                ]
                assert eventually(lambda: all(a for _, a in refused)), "the cap let a run in"
                (over,), (over_stream,) = (answers for _, answers in refused)
                other = asking(
                    client.get,
                    "/api/demo",
                    params={**SMALL, "seed": "3"},
                    headers={"x-forwarded-for": "203.0.113.7"},
                )
                held.append(other)
                assert eventually(lambda: capped.status()["in_flight"] == 3), "other refused"
            finally:
                controlled_engine.release()
                for thread, _ in held + refused:
                    thread.join(PATIENCE_S)
    assert over.status_code == 429, over.text
    retry = over.headers["retry-after"]
    assert retry.isdigit() and int(retry) >= 1
    body = over.json()
    assert set(body) == {"status", "message", "details"}
    assert body["status"] == 429 and body["details"]["reason"] == "client_cap"
    assert body["details"]["cap"] == 2 and body["details"]["retry_after_s"] == int(retry)
    assert "2 experiment run(s) queued or running" in body["message"]
    assert over_stream.status_code == 429 and over_stream.headers["retry-after"]
    assert over_stream.json()["details"]["reason"] == "client_cap"
    assert [answers[0].status_code for _, answers in held] == [200, 200, 200]
    assert sorted(seeds(controlled_engine)) == [1, 2, 3]


def test_a_run_over_its_time_budget_is_503(tmp_path: Path, data_dir: Path) -> None:
    clock = FakeClock()
    engine = ControlledEngine(clock=clock, tick_s=1.0)  # each step takes 1 s of fake time
    engine.release()
    app = small_app(tmp_path, data_dir)
    with TestClient(app) as client:
        with runner_in(app, thread_runner(engine, clock=clock, budget_s=3)):
            response = client.get("/api/demo", params=SMALL)
            stream = client.get("/api/demo/stream", params={**SMALL, "seed": "1"})
    assert response.status_code == 503, response.text
    assert response.json()["details"] == {"reason": "time_budget", "retry_after_s": 5}
    assert "wall-clock budget of 3 s" in response.json()["message"]
    assert response.headers["retry-after"] == "5"
    assert engine.runs and engine.runs[0].stopped_at == 4  # steps 0-3 started within 3 s
    assert stream.status_code == 200  # the stream had begun: the failure is its last event
    events = parse_events(stream.text)
    assert kinds(events) == ["queued"] + ["progress"] * 4 + ["error"], kinds(events)
    assert events[-1].data["status"] == 503
    assert events[-1].data["details"]["reason"] == "time_budget"
    assert sequential_ids(events)


# ----------------------------------------------------------------------------- real HTTP


def test_the_first_event_is_the_queue_position_and_every_event_has_an_id(
    tmp_path: Path, data_dir: Path, controlled_engine: ControlledEngine
) -> None:
    """Over real HTTP: with the only worker held, a stream's first event comes at once, its
    place in the queue; a run behind it is second and moves up when the first starts."""
    app = small_app(tmp_path, data_dir)
    runner = thread_runner(controlled_engine, client_cap=3)  # all three come from 127.0.0.1
    with serving(app) as base, httpx.Client(base_url=base, timeout=PATIENCE_S) as http:
        with runner_in(app, runner):
            holder, _ = asking(http.get, "/api/demo", params=SMALL)
            assert controlled_engine.wait_started(1), "the held run never started"
            with (
                http.stream("GET", "/api/demo/stream", params={**SMALL, "seed": "1"}) as b,
                http.stream("GET", "/api/demo/stream", params={**SMALL, "seed": "2"}) as c,
            ):
                assert b.status_code == c.status_code == 200
                b_events, c_events = sse(b.iter_lines()), sse(c.iter_lines())
                b_first, c_first = next(b_events), next(c_events)  # no step has run
                assert controlled_engine.runs[0].steps == []
                controlled_engine.release()
                b_rest, c_rest = list(b_events), list(c_events)
            holder.join(PATIENCE_S)
    assert b_first.event == "queued" and b_first.data == {"position": 1, "workers": 1, "busy": 1}
    assert c_first.event == "queued" and c_first.data == {"position": 2, "workers": 1, "busy": 1}
    b_all, c_all = [b_first, *b_rest], [c_first, *c_rest]
    assert kinds(b_all) == ["queued"] + ["progress"] * 11 + ["result"], kinds(b_all)
    # c moved up to first in line when b started, then ran
    assert kinds(c_all) == ["queued", "queued"] + ["progress"] * 11 + ["result"], kinds(c_all)
    assert c_all[1].data["position"] == 1
    assert sequential_ids(b_all) and sequential_ids(c_all), [e.id for e in b_all + c_all]
    assert b_all[0].id != c_all[0].id  # two runs, two serials


def test_a_reconnect_with_last_event_id_gets_exactly_the_missed_events(
    tmp_path: Path, data_dir: Path, controlled_engine: ControlledEngine
) -> None:
    """Over real HTTP: a reader takes the first events and hangs up while another listener
    keeps the run alive; steps run while it is away; it reconnects with Last-Event-ID and
    gets every later event once, in order: with what it had, the keeper's whole log."""
    app = small_app(tmp_path, data_dir)
    params = {**SMALL, "steps": "6"}  # queued, progress 0-6, result
    controlled_engine.allow(2)  # steps 0 and 1 now, the rest when the test says
    with serving(app) as base, httpx.Client(base_url=base, timeout=PATIENCE_S) as http:
        with runner_in(app, thread_runner(controlled_engine)) as runner:
            keeper, kept = asking(read_stream, http, params)
            assert controlled_engine.wait_steps(2), "the run never started"
            with http.stream("GET", "/api/demo/stream", params=params) as first:
                assert first.status_code == 200
                events = sse(first.iter_lines())
                seen = [next(events) for _ in range(3)]  # queued, step 0, step 1
            assert eventually(lambda: in_flight_listeners(runner) == 1), "reader still there"
            controlled_engine.allow(2)  # steps 2 and 3 run while the reader is away
            assert controlled_engine.wait_steps(4)
            last_id = seen[-1].id
            assert last_id is not None
            headers = {"Last-Event-ID": last_id}
            with http.stream("GET", "/api/demo/stream", params=params, headers=headers) as again:
                assert again.status_code == 200
                events = sse(again.iter_lines())
                missed = [next(events) for _ in range(2)]  # replayed: the run is still held
                assert not controlled_engine.runs[0].done.is_set()
                controlled_engine.release()
                rest = missed + list(events)
            keeper.join(PATIENCE_S)
    assert kinds(seen) == ["queued", "progress", "progress"]
    assert [(e.event, e.data.get("step")) for e in missed] == [("progress", 2), ("progress", 3)]
    assert kept and kinds(kept[0]) == ["queued"] + ["progress"] * 7 + ["result"]
    assert [e.id for e in seen + rest] == [e.id for e in kept[0]]  # each exactly once
    assert [e.data for e in seen + rest[:-1]] == [e.data for e in kept[0][:-1]]
    assert rest[-1].data["variants"] == kept[0][-1].data["variants"]
    assert (kept[0][-1].data["source"], rest[-1].data["source"]) == ("computed", "joined")
    assert controlled_engine.calls == 1


def test_client_disconnect_stops_the_run(
    tmp_path: Path, data_dir: Path, controlled_engine: ControlledEngine
) -> None:
    """Over real HTTP (uvicorn): the client reads the first progress event and hangs up; the
    run stops before its next step and the demo is free again."""
    app = small_app(tmp_path, data_dir)
    controlled_engine.allow(1)  # step 0 runs; step 1 waits
    with serving(app) as base, httpx.Client(base_url=base, timeout=PATIENCE_S) as http:
        with runner_in(app, thread_runner(controlled_engine)):
            params = {**SMALL, "steps": "500"}
            with http.stream("GET", "/api/demo/stream", params=params) as stream:
                assert stream.status_code == 200
                events = sse(stream.iter_lines())
                assert next(events).event == "queued"
                progress = next(events)
                assert progress.event == "progress" and progress.data["step"] == 0
            # the connection is closed now
            assert controlled_engine.wait_started(1)
            run = controlled_engine.runs[0]
            assert run.done.wait(PATIENCE_S), "the run kept going after the client left"
            assert run.steps == [0] and run.stopped_at == 1

            def idle() -> bool:
                demo = http.get("/healthz").json()["demo"]
                return bool(demo["busy"] == 0 and demo["in_flight"] == 0 and demo["queue"] == 0)

            assert eventually(idle)
            controlled_engine.release()
            follow_up = http.get("/api/demo", params=SMALL)
            assert follow_up.status_code == 200, follow_up.text
            assert follow_up.json()["source"] == "computed"
            assert controlled_engine.calls == 2


def test_the_web_process_never_imports_torch(tmp_path: Path, data_dir: Path) -> None:
    """Start-up, pages, the catalog and a demo request (503 with no worker: this app starts
    none) leave torch unimported: runs happen in worker processes (tests/api/test_workers.py
    checks a real server's worker)."""
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
        "    run = client.get('/api/demo', params={'preset': 'residual-vs-plain'})\n"
        "    assert run.status_code == 503, run.text\n"
        "    assert run.json()['details']['reason'] == 'no_workers', run.text\n"
        "    assert 'torch' not in sys.modules, 'torch was imported by the web process'\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=PATIENCE_S
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


def test_a_model_experiment_without_workers_or_model_says_why_not_training(
    tmp_path: Path, data_dir: Path
) -> None:
    """No worker at all: 503 no_workers (not "the model is training", forever). Workers that
    run no language model (GLOSSARY_LM_START=false): 503 saying so. On PostgreSQL the workers
    on the queue decide whether they run one, so with none alive the answer is no_workers."""
    from app.demo.catalog import EXPERIMENTS
    from tests.conftest import POSTGRES_ADMIN_URL

    name = next(n for n, e in EXPERIMENTS.items() if e.needs_model)
    without_model = "no_workers" if POSTGRES_ADMIN_URL else "device"
    for lm_start, reason in ((True, "no_workers"), (False, without_model)):
        app = create_app(make_settings(tmp_path / str(lm_start), data_dir, lm_start=lm_start))
        with TestClient(app) as client:
            answer = client.get("/api/demo", params={"preset": name})
        assert answer.status_code == 503, answer.text
        assert answer.json()["details"]["reason"] == reason, answer.json()
