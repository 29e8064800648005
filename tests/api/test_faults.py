"""Faults: `glossary load` killed with SIGKILL inside its transaction or while it commits, and
the server killed with SIGKILL in the middle of a demo run. The database must come out with
the previous (or, once committed, the new) content, never a mix, and pass integrity_check;
the server's demo worker must not outlive it, and the server must restart and serve (the
same run, this time to its end)."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.db import table_counts
from app.main import create_app
from tests.conftest import PATIENCE_S, POSTGRES_ADMIN_URL, ROOT, make_settings, until
from tests.factories import default_terms, to_toml
from tests.live import free_port
from tests.worker_engines import HELD

# SQLite's files, WAL and integrity_check; the SQLite run of the suite covers these.
pytestmark = pytest.mark.skipif(bool(POSTGRES_ADMIN_URL), reason="SQLite files")

# Runs `glossary load` with the search-index build (the last step inside the load's one
# transaction, after every old row is deleted and every new one inserted) followed by a
# signal to the test and a long sleep: the test then kills the process at that exact point.
LOAD_THEN_HANG = """
import sys, time
from app import search
build_index = search.build_index
def build_then_hang(*args, **kwargs):
    build_index(*args, **kwargs)
    print("inside the transaction", flush=True)
    time.sleep(120)
search.build_index = build_then_hang
from app.cli import app
app(["load"])
"""


# The demo engine the first server's worker loads by name: a run with seed HELD reports its
# first step, then waits for a file nobody creates: certainly in flight when the test kills
# the server, however fast or slow the machine.
HELD_ENGINE = "tests.worker_engines:scripted"


def glossary_env(database: Path, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLOSSARY_")}
    env |= {
        "GLOSSARY_DATABASE_URL": f"sqlite:///{database}",
        "GLOSSARY_DATA_DIR": str(data_dir),
        "GLOSSARY_DEMO_WARMUP": "false",
        "GLOSSARY_LM_START": "false",
        "GLOSSARY_DEMO_DEVICE": "cpu",
        **extra,
    }
    return env


def snapshot(database: Path) -> dict[str, object]:
    """What a reader sees: integrity, the loaded fingerprint, every title, every row count."""
    with closing(sqlite3.connect(database)) as conn:
        return {
            "integrity": conn.execute("PRAGMA integrity_check").fetchall(),
            "fingerprint": conn.execute(
                "SELECT value FROM meta WHERE key = 'fingerprint'"
            ).fetchone(),
            "titles": conn.execute("SELECT slug, title FROM term ORDER BY slug").fetchall(),
            "counts": table_counts(conn),
        }


def load(database: Path, data_dir: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", "from app.cli import app; app(['load'])"],
        cwd=ROOT,
        env=glossary_env(database, data_dir),
        check=True,
        capture_output=True,
        timeout=PATIENCE_S,
    )


def edit_corpus(data_dir: Path) -> None:
    """A different glossary: titles changed, a synonym added."""
    terms = default_terms()
    terms["resnet"]["title"] = "ResNet (edited)"
    terms["layer-normalization"]["synonyms"] = ["LayerNorm", "LN", "Layer norm"]
    for slug in ("resnet", "layer-normalization"):
        (data_dir / "terms" / f"{slug}.toml").write_text(to_toml(dict(terms[slug])))


def test_kill_9_inside_the_load_transaction_keeps_the_previous_content(
    tmp_path: Path, data_dir: Path
) -> None:
    database = tmp_path / "glossary.db"
    load(database, data_dir)
    before = snapshot(database)
    assert before["integrity"] == [("ok",)] and before["titles"]
    edit_corpus(data_dir)
    with subprocess.Popen(
        [sys.executable, "-c", LOAD_THEN_HANG],
        cwd=ROOT,
        env=glossary_env(database, data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as loader:
        try:
            assert loader.stdout is not None
            line = loader.stdout.readline()  # blocks until the loader is in its transaction
            assert line.strip() == "inside the transaction", line
        finally:
            loader.send_signal(signal.SIGKILL)
            loader.wait(timeout=PATIENCE_S)
    assert loader.returncode == -signal.SIGKILL
    assert snapshot(database) == before
    # ...and the server serves it (without rebuilding on start, to see the file as it is).
    app = create_app(
        make_settings(
            tmp_path, data_dir, build_on_start=False, database_url=f"sqlite:///{database}"
        )
    )
    with TestClient(app) as client:
        assert client.get("/api/terms/resnet").json()["title"] == "ResNet"
        assert client.get("/healthz").status_code == 200
    # The next load succeeds and brings the edit.
    load(database, data_dir)
    after = snapshot(database)
    assert after["integrity"] == [("ok",)]
    assert ("resnet", "ResNet (edited)") in after["titles"]  # type: ignore[operator]


def test_kill_9_while_the_real_command_commits_leaves_old_or_new_never_a_mix(
    tmp_path: Path, data_dir: Path
) -> None:
    """The unmodified `glossary load`, killed the moment it starts writing to the WAL (in
    practice before its commit: the previous glossary remains; a later kill would find the
    new one, complete)."""
    database = tmp_path / "glossary.db"
    load(database, data_dir)
    old = snapshot(database)
    edit_corpus(data_dir)
    probe = tmp_path / "probe.db"
    load(probe, data_dir)
    new = snapshot(probe)
    wal = database.with_name(database.name + "-wal")
    with closing(sqlite3.connect(database)) as conn:  # empty the WAL: growth means writing
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    loader = subprocess.Popen(
        [sys.executable, "-c", "from app.cli import app; app(['load'])"],
        cwd=ROOT,
        env=glossary_env(database, data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + PATIENCE_S
    writing = False
    try:
        while loader.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                if wal.stat().st_size > 0:
                    writing = True
                    break
            time.sleep(0.0005)
    finally:
        loader.send_signal(signal.SIGKILL)
        loader.wait(timeout=PATIENCE_S)
    # killed while writing, or (on a machine faster than this loop) after it finished
    assert writing or loader.returncode == 0, "the loader never started writing"
    seen = snapshot(database)
    assert seen["integrity"] == [("ok",)]
    assert seen in (old, new), "the database holds a mix of the old and the new glossary"


UVICORN = ["-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--log-level", "warning"]


@contextmanager
def server_process(
    database: Path, data_dir: Path, port: int, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """uvicorn serving the app with one demo worker process, once it is healthy; always
    stopped afterwards."""
    process = subprocess.Popen(
        [sys.executable, *UVICORN, "--port", str(port)],
        cwd=ROOT,
        env=glossary_env(
            database, data_dir, GLOSSARY_DEMO_WORKERS="1", PYTHONPATH=str(ROOT), **env
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        until(lambda: healthy(port, process), "uvicorn to become healthy")
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=PATIENCE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                raise


def healthy(port: int, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "uvicorn exited"
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    except httpx.TransportError:
        return False


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie nobody reaped has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_server_killed_during_a_demo_run_restarts_and_serves(
    tmp_path: Path, data_dir: Path
) -> None:
    database = tmp_path / "glossary.db"
    load(database, data_dir)
    gates = tmp_path / "gates"  # the held run waits for a file here that nobody creates
    gates.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    run = {
        "preset": "residual-vs-plain",
        "depth": "4",
        "width": "16",
        "steps": "5",
        "batch_size": "16",
        "seed": str(HELD),
    }
    held = {
        "GLOSSARY_DEMO_ENGINE": HELD_ENGINE,
        "GLOSSARY_TEST_GATE_DIR": str(gates),
        # no budget ends the held run while the test watches: the worker must exit because
        # its server died, not because its run timed out
        "GLOSSARY_DEMO_TIME_BUDGET_S": str(4 * PATIENCE_S),
    }
    with server_process(database, data_dir, port, **held) as server:
        workers = httpx.get(f"{base}/healthz", timeout=PATIENCE_S).json()["demo"]["detail"]
        assert len(workers) == 1 and workers[0]["pid"], workers
        worker = int(workers[0]["pid"])
        with httpx.stream(
            "GET", f"{base}/api/demo/stream", params=run, timeout=PATIENCE_S
        ) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            names: list[str] = []
            while not names or names[-1] != "progress":  # queued, then the worker's step 0
                line = next(lines)
                if line.startswith("event:"):
                    names.append(line.partition(":")[2].strip())
            assert names[0] == "queued" and set(names) <= {"queued", "progress"}, names
            assert alive(worker)
            server.send_signal(signal.SIGKILL)  # mid-run: the worker is in the held run
            server.wait(timeout=PATIENCE_S)
            with pytest.raises(httpx.TransportError):  # the client sees the cut, not a hang
                for _ in lines:
                    pass
    # the worker does not outlive its server (its pipe from the server closed)
    until(lambda: not alive(worker), f"the orphaned demo worker {worker} to exit")
    assert snapshot(database)["integrity"] == [("ok",)]
    with server_process(database, data_dir, port):  # same port, same database, real engine
        assert httpx.get(f"{base}/terms/resnet").status_code == 200
        result = httpx.get(f"{base}/api/demo", params=run, timeout=PATIENCE_S)
        assert result.status_code == 200, result.text
        assert result.json()["config"]["depth"] == 4
        assert result.json()["source"] == "computed"
