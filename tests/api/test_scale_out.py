"""Scale-out: the container entry script (run outside Docker, with two web workers, each with
its demo worker), and on PostgreSQL the demo cache shared by web processes and the language
model trained once by demo workers with their own cache folders (as on two machines)."""

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import (
    PATIENCE_S,
    POSTGRES_ADMIN_URL,
    ROOT,
    fresh_database_url,
    make_settings,
    until,
)
from tests.live import free_port

# The entry script runs `glossary` and `uvicorn` from PATH: this interpreter's.
BIN = Path(sys.executable).parent

SMALL = {"preset": "residual-vs-plain", "depth": "4", "width": "8", "steps": "3", "batch_size": "8"}


def test_entrypoint_loads_and_serves_with_two_workers(tmp_path: Path, data_dir: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "GLOSSARY_DATABASE_URL": fresh_database_url(tmp_path),
        "GLOSSARY_DATA_DIR": str(data_dir),
        "GLOSSARY_HOST": "127.0.0.1",
        "GLOSSARY_PORT": str(port),
        "GLOSSARY_WORKERS": "2",
        "GLOSSARY_DEMO_WORKERS": "1",  # per web worker ("auto" would be cores - 1 each)
        "GLOSSARY_LM_START": "false",
        "GLOSSARY_DEMO_WARMUP": "false",
        "GLOSSARY_DB_WAIT_S": "5",
    }
    log = tmp_path / "entrypoint.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(ROOT / "docker" / "entrypoint.sh")],
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + PATIENCE_S
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=PATIENCE_S)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None and health.status_code == 200, log.read_text()
        assert health.json()["terms"] == 4
        for _ in range(20):  # new connections, spread over both workers
            page = httpx.get(f"http://127.0.0.1:{port}/terms/resnet", timeout=PATIENCE_S)
            assert page.status_code == 200
        terms = httpx.get(f"http://127.0.0.1:{port}/api/terms", timeout=PATIENCE_S)
        assert terms.json()["total"] == 4
        # the whole product: a demo run, on the demo worker of whichever web worker answers
        run = httpx.get(f"http://127.0.0.1:{port}/api/demo", params=SMALL, timeout=PATIENCE_S)
        assert run.status_code == 200, run.text
        assert run.json()["source"] in ("computed", "joined", "cache"), run.json()["source"]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=PATIENCE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert "content:" not in log.read_text()  # loaded once by the script, not by `serve`
    assert "Started parent process" in log.read_text()  # uvicorn's multi-worker supervisor


def test_entrypoint_names_an_unreachable_database(tmp_path: Path, data_dir: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "GLOSSARY_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none",
        "GLOSSARY_DATA_DIR": str(data_dir),
        "GLOSSARY_DB_WAIT_S": "0",
    }
    done = subprocess.run(
        [str(ROOT / "docker" / "entrypoint.sh")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
    )
    assert done.returncode == 1
    assert "postgresql+psycopg://nobody@127.0.0.1:9/none does not answer" in done.stderr
    assert "Traceback" not in done.stderr


def sees_one_worker(client: TestClient) -> bool:
    return bool(client.get("/healthz").json()["demo"]["workers"] == 1)


@pytest.mark.skipif(not POSTGRES_ADMIN_URL, reason="the shared demo cache is PostgreSQL's")
def test_demo_result_computed_by_one_worker_is_served_by_another(
    tmp_path: Path, data_dir: Path
) -> None:
    """Two web processes on one database: the first runs a demo worker on the shared queue
    (the second runs none); a result computed through the first is served by the second from
    the shared result table, without running it again."""
    from app.db import make_engine
    from app.demo.catalog import resolve
    from app.demo.store import ResultStore

    settings = make_settings(tmp_path, data_dir, demo_workers=1)
    first = create_app(settings)
    second = create_app(settings.model_copy(update={"demo_workers": 0}))
    with TestClient(first) as one, TestClient(second) as two:
        for client in (one, two):
            until(
                functools.partial(sees_one_worker, client),
                "both web processes to see the worker on the queue",
            )
        computed = one.get("/api/demo", params=SMALL).json()
        assert computed["source"] == "computed" and computed["cached"] is False
        # the first web process writes the result to the shared table as its run ends
        experiment, params = resolve(
            SMALL["preset"], {k: v for k, v in SMALL.items() if k != "preset"}
        )
        store = ResultStore(make_engine(settings.database_url))
        try:
            until(
                lambda: (
                    store.get(
                        experiment.cache_key(params), computed["torch_version"], computed["device"]
                    )
                    is not None
                ),
                "the result in the shared table",
            )
        finally:
            store.close()
        shared = two.get("/api/demo", params=SMALL).json()
    assert shared["source"] == "cache" and shared["cached"] is True
    assert shared["variants"] == computed["variants"]


@pytest.mark.skipif(not POSTGRES_ADMIN_URL, reason="the shared language model is PostgreSQL's")
def test_two_workers_train_the_language_model_once_and_share_it(tmp_path: Path) -> None:
    """Two demo worker processes start at once with empty cache folders of their own (as on
    two machines): one trains (under the advisory lock), the other waits and reads the weights
    from the database; both serve the same hash."""
    from sqlmodel import SQLModel

    from app.db import make_engine
    from app.demo.pool import WorkerPool
    from app.models import LMWeights

    url = make_settings(tmp_path, ROOT / "data").database_url
    engine = make_engine(url)
    SQLModel.metadata.create_all(engine, tables=[LMWeights.__table__])  # type: ignore[attr-defined]
    pools = [
        WorkerPool(
            1,
            device="cpu",
            calibrate=False,
            lm={
                "size": "tiny",
                "data_dir": str(ROOT / "data"),
                "cache_dir": str(tmp_path / f"cache-{i}"),
                "database_url": url,
            },
        )
        for i in (1, 2)
    ]
    try:
        for pool in pools:
            pool.start(lambda: None)

        def ready() -> bool:
            models = [pool.model_progress() for pool in pools]
            assert all(m is None or m.state != "failed" for m in models), models
            return all(m is not None and m.state == "ready" for m in models)

        until(ready, "both workers' language model")
        models = [pool.model_progress() for pool in pools]
    finally:
        for pool in pools:
            pool.shutdown()
    sources = sorted(str(m.source) for m in models if m is not None)
    assert sources == ["database", "trained"], sources
    hashes = {m.weights_hash for m in models if m is not None}
    assert len(hashes) == 1 and None not in hashes, hashes
    for i in (1, 2):  # each worker also keeps its own file copy
        assert list((tmp_path / f"cache-{i}" / "lm").glob("*.pt")), i
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT weights_hash FROM lmweights").all()
    engine.dispose()
    assert [r[0] for r in rows] == list(hashes)
