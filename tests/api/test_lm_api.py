"""Language-model experiments over HTTP: 503 model_training with Retry-After and the
training's progress while the model is not ready, the stream's training events then the run,
and results that quote the hash of the weights the workers trained.

The language model lives in the demo workers (settings lm_start=True): each worker loads it
from the cache folder, or trains it once while the others wait on the model's lock (a file
lock in the cache folder; PostgreSQL's advisory lock on PostgreSQL). The `untrained` app
starts its worker on an EMPTY cache folder while the test holds that lock, as a sibling
process training the model would: the worker is genuinely without a model, for as long as
the test wants, on any machine; release() lets it train for real."""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.config import Settings
from app.demo.catalog import EXPERIMENTS
from app.demo.lm.config import TINY
from app.demo.lm.service import TrainingProgress
from app.demo.runner import DemoRunner
from app.main import create_app
from tests.conftest import PATIENCE_S, POSTGRES_ADMIN_URL, ROOT, make_settings, until

LM_EXPERIMENTS = sorted(name for name, e in EXPERIMENTS.items() if e.needs_model)
Event = tuple[str, str | None, dict[str, Any]]  # (event, id, data)


def model_key(settings: Settings) -> str:
    """The key the workers store (and lock) the app's model under."""
    import torch

    from app.demo.lm import service
    from app.demo.lm.text import read_text

    return service.model_key(TINY, read_text(settings.data_dir).digest, torch.__version__)


class ModelLock:
    """The lock a worker takes before it trains the model, held by the test as a sibling
    process training the model would hold it: the file lock in the cache folder, or
    PostgreSQL's advisory lock. `waiters()` counts the processes blocked on it (/proc/locks,
    pg_locks), so a test knows its worker is waiting there and not training."""

    def __init__(self, settings: Settings) -> None:
        key = model_key(settings)
        self.lock_id = int(key[:15], 16)  # as app/demo/lm/service.py derives it
        if POSTGRES_ADMIN_URL:
            self._engine = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
            self._conn = self._engine.connect()
            self._conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.lock_id})
        else:
            from app.demo.lm.weights import FileWeights

            folder = FileWeights(settings.cache_dir).dir
            folder.mkdir(parents=True, exist_ok=True)
            self._file = folder / f"{key}.lock"
            self._handle = self._file.open("w")
            fcntl.flock(self._handle, fcntl.LOCK_EX)

    def waiters(self) -> int:
        if POSTGRES_ADMIN_URL:
            return int(
                self._conn.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT "
                        "granted AND classid = :hi AND objid = :lo AND objsubid = 1"
                    ),
                    {"hi": self.lock_id >> 32, "lo": self.lock_id & 0xFFFFFFFF},
                ).scalar_one()
            )
        inode = f":{self._file.stat().st_ino}"
        locks = Path("/proc/locks").read_text().splitlines()
        return sum(1 for line in locks if "->" in line and line.split()[-3].endswith(inode))

    def release(self) -> None:
        if POSTGRES_ADMIN_URL:
            if not self._conn.closed:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.lock_id})
                self._conn.close()
                self._engine.dispose()
        else:
            self._handle.close()  # closing the file releases its lock


@contextmanager
def training_elsewhere(settings: Settings) -> Iterator[ModelLock]:
    lock = ModelLock(settings)
    try:
        yield lock
    finally:
        lock.release()


def runner_of(client: TestClient) -> DemoRunner:
    runner: DemoRunner = client.app.state.demo_runner  # type: ignore[attr-defined]
    return runner


def ready_model(client: TestClient) -> TrainingProgress:
    """The workers' model, once ready (a failed training fails the test at once)."""
    runner = runner_of(client)

    def ready() -> bool:
        progress = runner.model_progress()
        assert progress is None or progress.state != "failed", progress
        return progress is not None and progress.state == "ready"

    until(ready, "the language model to be ready")
    progress = runner.model_progress()
    assert progress is not None
    return progress


def stored_weights_hash(settings: Settings) -> str:
    """The hash of the weights the worker wrote to the app's cache folder."""
    from app.demo.lm.weights import FileWeights, from_bytes

    blob = FileWeights(settings.cache_dir).get(model_key(settings))
    assert blob is not None, "no weights in the app's cache folder"
    return str(from_bytes(blob)["weights_hash"])


def events_of(response: Any) -> Iterator[Event]:
    """The server-sent events of a streamed response, as they arrive."""
    name, event_id, data = "message", None, None
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("id:"):
            event_id = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data = json.loads(line.partition(":")[2])
        elif not line and data is not None:
            yield name, event_id, data
            name, event_id, data = "message", None, None


@pytest.fixture
def untrained(tmp_path: Path) -> Iterator[tuple[TestClient, Settings, Callable[[], None]]]:
    """(client, settings, release): an app with one demo worker whose model cannot be trained
    until release(): its cache folder is empty, and the worker is blocked on the model's lock."""
    settings = make_settings(
        tmp_path, ROOT / "data", lm_start=True, demo_workers=1, cache_dir=tmp_path / "cache"
    )
    with training_elsewhere(settings) as lock, TestClient(create_app(settings)) as client:
        runner = runner_of(client)
        until(lambda: runner.model_progress() is not None, "the worker to report its model")
        until(lambda: lock.waiters() == 1, "the worker to wait for the model's lock")
        yield client, settings, lock.release


def test_there_are_language_model_experiments() -> None:
    assert len(LM_EXPERIMENTS) >= 5, LM_EXPERIMENTS


def test_json_answers_503_model_training_with_its_progress_then_the_run(
    untrained: tuple[TestClient, Settings, Callable[[], None]],
) -> None:
    client, settings, release = untrained
    query = {"preset": LM_EXPERIMENTS[0]}
    response = client.get("/api/demo", params=query)
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    details = response.json()["details"]
    assert details["reason"] == "model_training"
    assert details["progress"]["state"] == "waiting", details
    assert details["progress"]["total_steps"] == TINY.train.steps, details
    # an experiment without the model is not held up by it: the same worker runs it
    plain = client.get("/api/demo", params={"preset": "rnn-vs-lstm", "seq_len": "5"})
    assert plain.status_code == 200 and plain.json()["source"] == "computed", plain.text
    # still no model, and no training either: the worker waits for the lock
    waiting = client.get("/api/demo", params=query)
    assert waiting.status_code == 503, waiting.text
    assert (
        waiting.json()["details"]["progress"] | {"state": "waiting", "step": 0}
        == (waiting.json()["details"]["progress"])
    )

    release()  # the worker trains now: the same 503 until it is ready, with the progress
    steps: list[int] = []
    deadline = time.monotonic() + PATIENCE_S
    while (response := client.get("/api/demo", params=query)).status_code == 503:
        details = response.json()["details"]
        assert details["reason"] == "model_training", details
        assert details["progress"]["state"] in ("waiting", "training"), details
        assert int(response.headers["retry-after"]) >= 1
        steps.append(details["progress"]["step"])
        assert time.monotonic() < deadline, "the model never became ready"
        time.sleep(0.1)
    assert response.status_code == 200, response.text
    assert steps == sorted(steps), steps  # training only moves forward
    model = ready_model(client)
    assert model.source == "trained", model  # by this app's worker, once the lock was free
    body = response.json()
    assert body["source"] == "computed"
    assert body["model"]["weights_hash"] == model.weights_hash == stored_weights_hash(settings)


def test_the_stream_sends_training_progress_then_the_run(
    untrained: tuple[TestClient, Settings, Callable[[], None]],
) -> None:
    client, settings, release = untrained
    events: list[Event] = []
    with client.stream("GET", "/api/demo/stream", params={"preset": LM_EXPERIMENTS[0]}) as response:
        assert response.status_code == 200
        for event in events_of(response):
            events.append(event)
            if len(events) == 1:
                release()  # now let the worker train the model
            if event[0] in ("result", "error"):
                break
    training = [data for name, _, data in events if data.get("phase") == "model_training"]
    run = events[len(training) :]
    # first the model's training: progress events with its curve, no ids (not the run's)
    assert training and events[0][0] == "progress", events[0]
    assert all(
        name == "progress" and event_id is None for name, event_id, _ in events[: len(training)]
    )
    assert training[0]["charts"] and training[0]["charts"][0]["id"] == "model_training"
    assert {t["total_steps"] for t in training} == {TINY.train.steps}
    assert [t["step"] for t in training] == sorted(t["step"] for t in training)
    # then the run: queued first, progress, the result; each with the id "<run>.<seq>"
    names = [name for name, _, _ in run]
    assert names[0] == "queued" and names[-1] == "result", names
    assert set(names[1:-1]) <= {"queued", "progress"}, names
    ids = [event_id for _, event_id, _ in run]
    assert all(i is not None for i in ids), ids
    assert len({i.partition(".")[0] for i in ids if i}) == 1, ids  # one run
    assert [int(i.partition(".")[2]) for i in ids if i] == list(range(1, len(ids) + 1)), ids
    result = run[-1][2]
    model = ready_model(client)
    assert result["model"]["weights_hash"] == model.weights_hash == stored_weights_hash(settings)
    assert result["model"]["name"] == "tiny" and result["source"] == "computed"
    again = client.get("/api/demo", params={"preset": LM_EXPERIMENTS[0]})
    assert again.status_code == 200 and again.json()["source"] == "cache"
    assert again.json()["cached"] is True


@pytest.mark.parametrize("name", LM_EXPERIMENTS)
def test_every_language_model_experiment_runs_over_http(client: TestClient, name: str) -> None:
    model = ready_model(client)  # the session app's worker trains (or loads) the tiny model
    response = client.get("/api/demo", params={"preset": name})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["weights_hash"] == model.weights_hash
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
