"""The /api/demo contract over HTTP: presets, results, bad input, the event stream, the
gate, and a client that disconnects. Runs real (small) trainings on the CPU."""

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.demo.presets import PRESETS, max_steps_for
from app.main import create_app
from tests.conftest import make_settings
from tests.live import running_server

SMALL = {
    "preset": "residual-vs-plain",
    "depth": "6",
    "width": "16",
    "steps": "10",
    "batch_size": "16",
}


def longest_run(depth: int, width: int, batch_size: int) -> dict[str, str]:
    """The longest run the compute budget allows at this size (a few seconds)."""
    steps = min(2000, max_steps_for(PRESETS["residual-vs-plain"], depth, width, batch_size))
    return {
        "preset": "residual-vs-plain",
        "depth": str(depth),
        "width": str(width),
        "batch_size": str(batch_size),
        "steps": str(steps),
    }


def parse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields["event"], json.loads(fields["data"])))
    return events


@pytest.fixture(scope="module")
def demo_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from tests.factories import write_corpus

    root = tmp_path_factory.mktemp("demo")
    app = create_app(make_settings(root, write_corpus(root / "data")))
    with TestClient(app) as client:
        yield client


def test_presets_catalog(demo_client: TestClient) -> None:
    presets = demo_client.get("/api/demo/presets").json()
    names = {p["name"] for p in presets}
    assert {
        "residual-vs-plain",
        "vanishing-gradient",
        "normalization",
        "layernorm-placement",
        "activation-functions",
        "initialization",
    } <= names
    for preset in presets:
        assert preset["variants"] and preset["params"]
        depth = next(p for p in preset["params"] if p["name"] == "depth")
        assert depth["max"] >= 64


def test_default_run_and_cache(demo_client: TestClient) -> None:
    first = demo_client.get("/api/demo", params=SMALL)
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) >= {
        "config",
        "device",
        "torch_version",
        "elapsed_ms",
        "cached",
        "summary",
        "variants",
    }
    assert body["device"] == "cpu" and body["cached"] is False
    assert body["config"]["depth"] == 6 and body["config"]["preset"] == "residual-vs-plain"
    assert [v["name"] for v in body["variants"]] == ["plain", "residual"]
    for variant in body["variants"]:
        assert [layer["index"] for layer in variant["layers"]] == list(range(1, 7))
        assert len(variant["loss"]) == 11
        assert variant["recorded_steps"][0]["step"] == 0
    assert "plain" in body["summary"] and "residual" in body["summary"]
    again = demo_client.get("/api/demo", params=SMALL).json()
    assert again["cached"] is True
    assert again["variants"] == body["variants"]


@pytest.mark.parametrize(
    ("params", "parameter", "fragment"),
    [
        ({"preset": "nope"}, "preset", "preset must be one of"),
        ({"activation": "swish"}, "activation", "one of relu, tanh, sigmoid, gelu"),
        ({"depth": "abc"}, "depth", "an integer from 2 to 64"),
        ({"depth": "3.5"}, "depth", "integer"),
        ({"depth": "65"}, "depth", "from 2 to 64"),
        ({"steps": "-1"}, "steps", "steps must be"),
        ({"lr": "nan"}, "lr", "lr must be"),
        ({"width": ""}, "width", "width must be"),
        ({"colour": "red"}, "colour", "Unknown parameter 'colour'"),
        ({"preset": "vanishing-gradient", "activation": "relu"}, "activation", "does not apply"),
        (
            {"depth": "64", "width": "256", "batch_size": "512", "steps": "2000"},
            "steps",
            "compute budget",
        ),
    ],
)
def test_bad_input_is_422_naming_the_parameter(
    demo_client: TestClient, params: dict[str, str], parameter: str, fragment: str
) -> None:
    before = demo_client.app.state.demo_runner.status()  # type: ignore[attr-defined]
    response = demo_client.get("/api/demo", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["status"] == 422 and body["details"]["parameter"] == parameter
    assert fragment in body["message"], body["message"]
    stream = demo_client.get("/api/demo/stream", params=params)
    assert stream.status_code == 422
    after = demo_client.app.state.demo_runner.status()  # type: ignore[attr-defined]
    assert after["cache_entries"] == before["cache_entries"]  # nothing ran


def test_event_stream_end_to_end(demo_client: TestClient) -> None:
    params = {**SMALL, "seed": "7"}
    response = demo_client.get("/api/demo/stream", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_events(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "result" and set(kinds[:-1]) == {"progress"} and len(kinds) >= 3
    steps = [data["step"] for kind, data in events if kind == "progress"]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == 10
    last_progress = events[-2][1]
    assert set(last_progress["layers"]) == {"plain", "residual"}
    result = events[-1][1]
    assert result["config"]["seed"] == 7
    direct = demo_client.get("/api/demo", params=params).json()
    assert direct["cached"] is True and direct["variants"] == result["variants"]


def test_gate_answers_503_with_retry_after(tmp_path: Path, data_dir: Path) -> None:
    settings = make_settings(tmp_path, data_dir, demo_max_running=1, demo_max_queued=0)
    app = create_app(settings)
    long_run = longest_run(depth=32, width=64, batch_size=64)
    with TestClient(app) as client:
        runner = app.state.demo_runner
        results: list[int] = []
        worker = threading.Thread(
            target=lambda: results.append(client.get("/api/demo", params=long_run).status_code)
        )
        worker.start()
        deadline = time.monotonic() + 30
        while runner.status()["running"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        busy = client.get("/api/demo", params=SMALL)
        pages = client.get("/terms/resnet")
        worker.join(timeout=60)
    assert busy.status_code == 503, busy.text[:300]
    assert int(busy.headers["retry-after"]) >= 1
    assert busy.json()["status"] == 503
    assert pages.status_code == 200
    assert results == [200]


def test_client_disconnect_stops_the_run(tmp_path: Path, data_dir: Path) -> None:
    settings = make_settings(tmp_path, data_dir)
    long_run = longest_run(depth=32, width=64, batch_size=32) | {"seed": "3"}
    with running_server(settings) as base, httpx.Client(base_url=base, timeout=30) as http:
        with http.stream("GET", "/api/demo/stream", params=long_run) as stream:
            for line in stream.iter_lines():
                if line.startswith("event: progress"):
                    break
        # the connection is closed now; the run must stop within a few steps
        deadline = time.monotonic() + 5
        running = None
        while time.monotonic() < deadline:
            running = http.get("/healthz").json()["demo"]["running"]
            if running == 0:
                break
            time.sleep(0.05)
        assert running == 0
        follow_up = http.get("/api/demo", params=SMALL)
        assert follow_up.status_code == 200


def test_pages_never_wait_for_torch(tmp_path: Path, data_dir: Path) -> None:
    """Start-up and pages do not import torch (it loads in the background, 2-3 s)."""
    import subprocess
    import sys

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
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
