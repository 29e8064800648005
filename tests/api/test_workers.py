"""The demo's worker processes, for real: spawned processes that import torch (the web
process never does), a watchdog, `kill -9` mid-run, cancellation reaching the worker, and on
PostgreSQL the shared queue across web processes and `glossary worker` processes.

Runs are held or scripted by tests/worker_engines.py (loaded by name in the workers), never
sized to take long: what a test waits for is an event, with PATIENCE_S as the failsafe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.demo.catalog import resolve
from app.demo.experiment import Experiment, execute
from app.demo.live import RunEvent
from app.demo.params import ExperimentParams
from app.demo.pool import WorkerPool
from app.demo.runner import DemoRunner, Opened
from app.main import create_app
from tests.conftest import PATIENCE_S, POSTGRES_ADMIN_URL, ROOT, make_settings
from tests.demo_fixtures import runner_in
from tests.live import free_port
from tests.worker_engines import HANG, HELD, gate

ENGINE = "tests.worker_engines:scripted"
postgres_only = pytest.mark.skipif(not POSTGRES_ADMIN_URL, reason="needs the PostgreSQL run")


def small(seed: int = 0, steps: int = 10) -> tuple[Experiment, ExperimentParams]:
    raw = {"depth": 4, "width": 8, "batch_size": 8, "steps": steps, "seed": seed}
    return resolve("residual-vs-plain", {k: str(v) for k, v in raw.items()})


@pytest.fixture
def gates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where held runs wait for their file (the workers inherit the variable at spawn)."""
    folder = tmp_path / "gates"
    folder.mkdir()
    monkeypatch.setenv("GLOSSARY_TEST_GATE_DIR", str(folder))
    return folder


def scripted_pool(**options: Any) -> WorkerPool:
    return WorkerPool(1, device="cpu", engine=ENGINE, calibrate=False, **options)


async def until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.02)


async def read_all(opened: Opened) -> list[RunEvent]:
    assert opened.run is not None
    return [event async for event in opened.run.follow(opened.skip)]


def terminal(events: list[RunEvent]) -> RunEvent:
    assert events and events[-1].event in ("result", "error"), events
    return events[-1]


# ----------------------------------------------------------------------------- any database


def test_the_web_process_never_imports_torch(tmp_path: Path) -> None:
    """A real server (`uvicorn app.main:app`) runs an experiment in its worker process: the
    web process has no torch module loaded and no libtorch mapped, its worker does."""
    port = free_port()
    settings = make_settings(tmp_path, ROOT / "data")
    env = os.environ | {
        "GLOSSARY_DATABASE_URL": settings.database_url,
        "GLOSSARY_DATA_DIR": str(ROOT / "data"),
        "GLOSSARY_DEMO_WORKERS": "1",
        "GLOSSARY_DEMO_WARMUP": "false",
        "GLOSSARY_LM_START": "false",
    }
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + PATIENCE_S
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{base}/healthz", timeout=5).json()
                if health["demo"]["workers"] == 1:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert health.get("status") == "ok", health
        run = httpx.get(
            f"{base}/api/demo",
            params={"preset": "residual-vs-plain", "depth": 4, "width": 8, "steps": 5},
            timeout=PATIENCE_S,
        )
        assert run.status_code == 200 and run.json()["source"] == "computed", run.text
        worker_pid = health["demo"]["detail"][0]["pid"]
        assert "libtorch" not in Path(f"/proc/{server.pid}/maps").read_text()
        assert "libtorch" in Path(f"/proc/{worker_pid}/maps").read_text()
    finally:
        server.terminate()
        server.wait(PATIENCE_S)


def test_kill_9_mid_run_answers_503_and_the_next_run_succeeds_on_a_fresh_worker(
    tmp_path: Path, data_dir: Path, gates: Path
) -> None:
    app = create_app(make_settings(tmp_path, data_dir))
    pool = scripted_pool()
    answers: list[httpx.Response] = []
    with TestClient(app) as client, runner_in(app, DemoRunner(pool)):
        held = {"preset": "residual-vs-plain", "depth": 4, "width": 8, "steps": 7, "seed": HELD}
        asking = threading.Thread(
            target=lambda: answers.append(client.get("/api/demo", params=held))
        )
        asking.start()
        deadline = time.monotonic() + PATIENCE_S
        while not any(w.busy for w in pool.workers()):
            assert time.monotonic() < deadline, "the held run never reached the worker"
            time.sleep(0.02)
        victim = pool.workers()[0].pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        asking.join(PATIENCE_S)
        assert answers and answers[0].status_code == 503, answers
        body = answers[0].json()
        assert body["details"]["reason"] == "worker_lost", body
        assert "signal 9" in body["message"] and answers[0].headers["retry-after"]
        fine = client.get("/api/demo", params=held | {"seed": 0})
        assert fine.status_code == 200 and fine.json()["source"] == "computed", fine.text
        assert pool.restarts == 1 and pool.workers()[0].pid != victim


def test_the_watchdog_kills_a_run_that_ignores_its_budget(gates: Path) -> None:
    async def scenario() -> None:
        pool = scripted_pool(budget_s=3, margin_s=1)  # a tiny real run fits in 3 s
        runner = DemoRunner(pool)
        try:
            events = await read_all(await runner.open(*small(seed=HANG), client="a"))
            error = terminal(events)
            assert error.event == "error" and error.data["details"]["reason"] == "worker_lost"
            assert "watchdog" in error.data["message"], error.data
            await until(lambda: pool.restarts == 1, "a fresh worker in its place")
            # the replacement worker runs the next one
            again = terminal(await read_all(await runner.open(*small(seed=0), client="a")))
            assert again.event == "result", again.data
        finally:
            runner.shutdown()

    asyncio.run(scenario())


def test_when_the_last_listener_leaves_the_worker_stops_the_run(gates: Path) -> None:
    async def scenario() -> None:
        pool = scripted_pool()
        runner = DemoRunner(pool)
        try:
            first = await runner.open(*small(seed=HELD), client="a")
            second = await runner.open(*small(seed=HELD), client="b")
            assert (first.source, second.source) == ("computed", "joined")
            assert first.run is second.run and first.run is not None
            run = first.run
            readers = [run.follow(), run.follow()]
            for reader in readers:  # both see the run start in the worker
                while (await anext(reader)).event != "progress":
                    pass
            await readers[0].aclose()
            await asyncio.sleep(0.3)
            assert not run.finished and pool.workers()[0].busy  # one listener is left
            await readers[1].aclose()
            await until(lambda: run.finished, "the run to stop")
            assert run.events[-1].event == "error"
            assert run.events[-1].data["details"]["reason"] == "cancelled"
            await until(lambda: pool.free_slots() == 1, "the worker to be free again")
            assert not gate(10).exists() and pool.restarts == 0
        finally:
            runner.shutdown()

    asyncio.run(scenario())


def test_a_worker_gives_the_same_numbers_as_the_in_process_engine() -> None:
    experiment, params = small(seed=3, steps=12)

    async def through_a_worker() -> dict[str, Any]:
        runner = DemoRunner(WorkerPool(1, device="cpu", calibrate=False))
        try:
            return terminal(await read_all(await runner.open(experiment, params, client="a"))).data
        finally:
            runner.shutdown()

    remote = asyncio.run(through_a_worker())
    local = execute(experiment, params, "cpu").model_dump(mode="json")
    assert remote["variants"] == local["variants"]
    assert [c["holds"] for c in remote["claims"]] == [c["holds"] for c in local["claims"]]


# ----------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def shared_db(tmp_path: Path, data_dir: Path) -> Iterator[Any]:
    """Settings for a fresh PostgreSQL database with content (so the tables exist)."""
    settings = make_settings(tmp_path, data_dir, demo_engine=ENGINE)
    with TestClient(create_app(settings)):  # loads the content
        pass
    yield settings


def remote_runner(settings: Any, **options: Any) -> DemoRunner:
    from app.db import make_engine
    from app.demo.remote import RemoteExecutor

    engine = make_engine(settings.database_url)
    return DemoRunner(RemoteExecutor(engine, settings.database_url), **options)


def jobs(settings: Any) -> list[tuple[int, str, int]]:
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, status, priority FROM procrastinate_jobs ORDER BY id")
        ).all()
    engine.dispose()
    return [(row.id, row.status, row.priority) for row in rows]


def started_order(settings: Any) -> list[int]:
    """The jobs in the order the queue's workers started them."""
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT job_id FROM procrastinate_events WHERE type = 'started' ORDER BY id")
        ).all()
    engine.dispose()
    return [row.job_id for row in rows]


@contextlib.asynccontextmanager
async def two_web_processes_and_a_worker(
    settings: Any,
) -> AsyncIterator[tuple[DemoRunner, DemoRunner]]:
    """Two web processes' runners on one database, and a queue worker with one process, both
    web sides seeing it; all closed after."""
    from app.demo.queue_worker import serve

    web_a, web_b = remote_runner(settings), remote_runner(settings)
    worker = asyncio.ensure_future(serve(settings, 1))
    try:
        await web_a.start()
        await web_b.start()
        await until(
            lambda: len(web_a.executor.workers()) == len(web_b.executor.workers()) == 1,
            "both web processes to see the worker on the queue",
        )
        yield web_a, web_b
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await web_a.aclose()
        await web_b.aclose()


@postgres_only
def test_web_processes_share_one_run_and_the_queue_serves_clients_in_turn(
    shared_db: Any, gates: Path
) -> None:
    from app.demo.errors import ClientOverCap

    async def scenario() -> None:
        async with two_web_processes_and_a_worker(shared_db) as (web_a, web_b):
            held = small(seed=HELD, steps=10)
            mine = await web_a.open(*held, client="visitor-a")
            joined = await web_b.open(*held, client="visitor-b")
            assert (mine.source, joined.source) == ("computed", "computed")  # each process's view
            # Jobs are numbered as they reach the queue: let the shared run's get there first.
            await until(lambda: len(jobs(shared_db)) == 1, "the shared run on the queue")
            second_a = await web_a.open(*small(seed=HELD, steps=11), client="visitor-a")
            await until(lambda: len(jobs(shared_db)) == 2, "both runs on the shared queue")
            with pytest.raises(ClientOverCap):  # visitor-a has 2 runs; web_b knows it too
                await web_b.open(*small(seed=HELD, steps=12), client="visitor-a")
            first_b = await web_b.open(*small(seed=HELD, steps=13), client="visitor-b")
            await until(lambda: len(jobs(shared_db)) == 3, "three jobs on the queue")
            # one job for the shared run; visitor-b's run (priority 0) ahead of visitor-a's
            # second (priority -1), though it was queued later
            priorities = [priority for _, _, priority in jobs(shared_db)]
            assert priorities == [0, -1, 0], priorities
            for steps in (10, 13, 11):
                gate(steps).touch()
            order: list[str] = []
            results = await asyncio.gather(
                *(
                    _finish(opened, name, order)
                    for opened, name in [
                        (mine, "a1"),
                        (joined, "a1-joined"),
                        (second_a, "a2"),
                        (first_b, "b1"),
                    ]
                )
            )
            assert [r.event for r in results] == ["result"] * 4, [r.data for r in results]
            assert results[0].data == results[1].data  # the same run, relayed to both
            # a worker on the queue gives the numbers the in-process engine gives
            local = execute(*held, "cpu").model_dump(mode="json")
            assert results[0].data["variants"] == local["variants"]
            assert joined.run is not None and joined.run.source_for("computed") == "joined"
            # the queue started visitor-b's job (id 3) before visitor-a's second (id 2): read
            # from procrastinate's own record, not from when each web process relayed a result
            assert started_order(shared_db) == [1, 3, 2], order

    asyncio.run(scenario())


async def _finish(opened: Opened, name: str, order: list[str]) -> RunEvent:
    events = await read_all(opened)
    order.append(name)
    return terminal(events)


@postgres_only
def test_kill_9_of_a_glossary_worker_fails_its_run_and_a_new_worker_takes_the_next(
    shared_db: Any, gates: Path
) -> None:
    env = os.environ | {
        "GLOSSARY_DATABASE_URL": shared_db.database_url,
        "GLOSSARY_DEMO_ENGINE": ENGINE,
        "GLOSSARY_LM_START": "false",
        "PYTHONPATH": str(ROOT),
    }
    command = [str(Path(sys.executable).parent / "glossary"), "worker", "--workers", "1"]

    def start_worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, env=env, cwd=ROOT)  # noqa: S603

    async def scenario() -> None:
        web = remote_runner(shared_db)
        worker = start_worker()
        try:
            await web.start()
            await until(lambda: len(web.executor.workers()) == 1, "the worker on the queue")
            opened = await web.open(*small(seed=HELD, steps=10), client="a")
            assert opened.run is not None
            await until(lambda: opened.run.started, "the held run to start")  # type: ignore[union-attr]
            old = {w.pid for w in web.executor.workers()}
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(PATIENCE_S)
            error = terminal(await read_all(opened))
            assert error.event == "error" and error.data["details"]["reason"] == "worker_lost"
            assert [status for _, status, _ in jobs(shared_db)] == ["failed"]
            worker = start_worker()
            await until(
                lambda: any(w.pid not in old for w in web.executor.workers()),
                "the new worker on the queue",
            )
            fine = terminal(await read_all(await web.open(*small(seed=0), client="a")))
            assert fine.event == "result", fine.data
        finally:
            worker.kill()
            worker.wait(PATIENCE_S)
            await web.aclose()

    asyncio.run(scenario())


@postgres_only
def test_a_visitor_joining_a_waiting_warmup_run_on_the_shared_queue_gives_it_their_turn(
    shared_db: Any, gates: Path
) -> None:
    async def scenario() -> None:
        async with two_web_processes_and_a_worker(shared_db) as (web_a, web_b):
            busy = await web_b.open(*small(seed=HELD, steps=20), client="x")  # holds the worker
            await until(lambda: len(jobs(shared_db)) == 1, "the first job")
            web_a.start_warmup([small(seed=HELD, steps=21)])
            await until(lambda: len(jobs(shared_db)) == 2, "the warm-up job")
            assert jobs(shared_db)[1][2] <= -1000  # behind every visitor
            joined = await web_b.open(*small(seed=HELD, steps=21), client="v")
            await until(lambda: jobs(shared_db)[1][2] == 0, "the visitor's turn")
            for steps in (20, 21):
                gate(steps).touch()
            assert terminal(await read_all(busy)).event == "result"
            result = terminal(await read_all(joined))
            assert result.event == "result" and joined.run is not None
            assert joined.run.source_for(joined.source) == "joined"

    asyncio.run(scenario())
