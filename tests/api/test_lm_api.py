"""Language-model experiments over HTTP: 503 model_training with Retry-After while the model
trains, the stream's training events then the run, and results that quote the weights hash."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.demo.catalog import EXPERIMENTS
from app.demo.lm.config import TINY
from app.demo.lm.service import LanguageModelService
from app.main import create_app
from tests.conftest import LM_CACHE_DIR, PATIENCE_S, ROOT, make_settings

LM_EXPERIMENTS = sorted(name for name, e in EXPERIMENTS.items() if e.needs_model)


@pytest.fixture
def waiting_app(tmp_path: Path) -> Iterator[tuple[FastAPI, LanguageModelService]]:
    """An app whose language model has not started: the test says when it may."""
    app = create_app(make_settings(tmp_path, ROOT / "data"))
    with TestClient(app):
        service = LanguageModelService(TINY, ROOT / "data", LM_CACHE_DIR)
        app.state.demo_runner.lm = service
        yield app, service
        service.stop()


def test_there_are_language_model_experiments() -> None:
    assert len(LM_EXPERIMENTS) >= 5, LM_EXPERIMENTS


def test_json_answers_503_model_training_with_retry_after(
    waiting_app: tuple[FastAPI, LanguageModelService],
) -> None:
    app, _ = waiting_app
    client = TestClient(app)
    response = client.get("/api/demo", params={"preset": LM_EXPERIMENTS[0]})
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    details = response.json()["details"]
    assert details["reason"] == "model_training"
    assert details["progress"]["state"] == "waiting" and details["progress"]["total_steps"] > 0
    # an experiment without the model is not held up by it
    assert (
        client.get("/api/demo", params={"preset": "rnn-vs-lstm", "seq_len": "5"}).status_code == 200
    )


def test_the_stream_sends_training_progress_then_the_run(
    waiting_app: tuple[FastAPI, LanguageModelService],
) -> None:
    app, service = waiting_app
    client = TestClient(app)
    events: list[tuple[str, dict[str, object]]] = []
    with client.stream("GET", "/api/demo/stream", params={"preset": LM_EXPERIMENTS[0]}) as response:
        assert response.status_code == 200
        name = "message"
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.partition(":")[2])))
                if len(events) == 1:
                    service.start()  # now let it load (or train) the model
                if name == "result":
                    break
    first_name, first = events[0]
    assert first_name == "progress" and first["phase"] == "model_training"
    assert first["charts"] and first["charts"][0]["id"] == "model_training"  # type: ignore[index]
    last_name, result = events[-1]
    assert last_name == "result", events[-1]
    trained = service.wait(timeout=PATIENCE_S)
    assert result["model"]["weights_hash"] == trained.weights_hash  # type: ignore[index]
    assert result["model"]["name"] == "tiny"  # type: ignore[index]
    again = client.get("/api/demo", params={"preset": LM_EXPERIMENTS[0]})
    assert again.status_code == 200 and again.json()["cached"] is True


@pytest.mark.parametrize("name", LM_EXPERIMENTS)
def test_every_language_model_experiment_runs_over_http(client: TestClient, name: str) -> None:
    runner = client.app.state.demo_runner  # type: ignore[attr-defined]
    runner.lm.wait(timeout=PATIENCE_S)
    response = client.get("/api/demo", params={"preset": name})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["weights_hash"] == runner.lm.trained().weights_hash
    assert body["claims"] and all(isinstance(c["holds"], bool) for c in body["claims"])


def test_a_text_parameter_too_long_is_a_422_naming_it(client: TestClient) -> None:
    texts = [
        (e.name, n, f)
        for e in EXPERIMENTS.values()
        for n, f in e.params.model_fields.items()
        if f.annotation is str
    ]
    assert texts, "no experiment takes text"
    for experiment, param, field in texts:
        longest = next(m.max_length for m in field.metadata if hasattr(m, "max_length"))
        response = client.get(
            "/api/demo", params={"preset": experiment, param: "é" * (longest + 1)}
        )
        assert response.status_code == 422, response.text
        assert response.json()["details"]["parameter"] == param
