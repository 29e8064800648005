"""Scale-out: the container entry script (run outside Docker, with two workers), and the
demo cache shared through PostgreSQL."""

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
from tests.conftest import PATIENCE_S, POSTGRES_ADMIN_URL, ROOT, fresh_database_url, make_settings
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


@pytest.mark.skipif(not POSTGRES_ADMIN_URL, reason="the shared demo cache is PostgreSQL's")
def test_demo_result_computed_by_one_worker_is_served_by_another(
    tmp_path: Path, data_dir: Path
) -> None:
    settings = make_settings(tmp_path, data_dir)
    first, second = create_app(settings), create_app(settings.model_copy())
    with TestClient(first) as one, TestClient(second) as two:
        # the second worker learns its torch version and device from a run of its own
        assert two.get("/api/demo", params={**SMALL, "seed": "1"}).status_code == 200
        computed = one.get("/api/demo", params=SMALL).json()
        assert computed["cached"] is False
        shared = two.get("/api/demo", params=SMALL).json()
    assert shared["cached"] is True
    assert shared["variants"] == computed["variants"]


@pytest.mark.skipif(not POSTGRES_ADMIN_URL, reason="the shared language model is PostgreSQL's")
def test_two_workers_train_the_language_model_once_and_share_it(tmp_path: Path) -> None:
    """Two workers start at once with empty cache folders: one trains (under the advisory
    lock), the other waits and reads the weights from the database; the same hash serves."""
    from sqlmodel import SQLModel

    from app.db import make_engine
    from app.demo.lm.config import TINY
    from app.demo.lm.service import LanguageModelService
    from app.models import LMWeights

    engine = make_engine(make_settings(tmp_path, ROOT / "data").database_url)
    SQLModel.metadata.create_all(engine, tables=[LMWeights.__table__])  # type: ignore[attr-defined]
    workers = [
        LanguageModelService(TINY, ROOT / "data", tmp_path / f"cache-{i}", engine) for i in (1, 2)
    ]
    for worker in workers:
        worker.start()
    models = [worker.wait(timeout=PATIENCE_S) for worker in workers]
    sources = sorted(str(worker.progress().source) for worker in workers)
    assert sources == ["database", "trained"], sources
    assert models[0].weights_hash == models[1].weights_hash
    for i in (1, 2):  # each worker also keeps its own file copy
        assert list((tmp_path / f"cache-{i}" / "lm").glob("*.pt")), i
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT weights_hash FROM lmweights").all()
    assert [r[0] for r in rows] == [models[0].weights_hash]
    for worker in workers:
        worker.stop()
