"""`glossary backup PATH`: SQLite's online backup API, taken while a real server is under
load, gives a copy that passes integrity_check with the same row counts and serves the same
glossary; failures name the path and leave nothing behind."""

import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app as cli
from app.db import table_counts
from app.main import create_app
from tests.conftest import PATIENCE_S, POSTGRES_ADMIN_URL, ROOT, make_settings
from tests.live import running_server

# SQLite's backup API on SQLite files (PostgreSQL has pg_dump): the SQLite run covers it.
pytestmark = pytest.mark.skipif(bool(POSTGRES_ADMIN_URL), reason="SQLite backups")

LOAD_URLS = (
    "/terms/residual-connection",
    "/api/terms?limit=500",
    "/search?q=normalization",
    "/api/search?q=attention",
    "/categories/model-architecture",
    "/api/glossary",
)


def counts(database: Path) -> dict[str, int]:
    with closing(sqlite3.connect(database)) as conn:
        return table_counts(conn)


def integrity(database: Path) -> list[tuple[str]]:
    with closing(sqlite3.connect(database)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchall()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_online_backup_under_load(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data, ignore=shutil.ignore_patterns("*.db*"))
    # Response cache off: every request below really reads the database during the backup.
    database = tmp_path / "glossary.db"
    settings = make_settings(
        tmp_path, data, response_cache=False, database_url=f"sqlite:///{database}"
    )
    target = tmp_path / "backups" / "glossary-copy.db"
    target.parent.mkdir()
    statuses: list[int] = []
    stop = threading.Event()

    with running_server(settings) as base:

        def hammer(offset: int) -> None:
            with httpx.Client(base_url=base, timeout=PATIENCE_S) as client:
                i = offset
                while not stop.is_set():
                    statuses.append(client.get(LOAD_URLS[i % len(LOAD_URLS)]).status_code)
                    i += 1

        workers = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
        for worker in workers:
            worker.start()
        try:
            wait_for(lambda: len(statuses) >= 20, "no load before the backup")
            glossary = Path(sys.executable).with_name("glossary")
            before = len(statuses)
            done = subprocess.run(
                [str(glossary), "backup", str(target)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=PATIENCE_S,
                env={"PATH": "/usr/bin:/bin", "GLOSSARY_DATABASE_URL": settings.database_url},
            )
            during = len(statuses)
            wait_for(lambda: len(statuses) >= during + 20, "no load after the backup")
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=PATIENCE_S)
            assert not any(worker.is_alive() for worker in workers)

    assert done.returncode == 0, done.stderr
    assert during > before, "no request was served while the backup ran"
    assert f"to {target}: integrity_check ok" in done.stdout
    assert set(statuses) == {200}, sorted(set(statuses))
    assert integrity(target) == [("ok",)]
    assert counts(target) == counts(database)
    assert counts(target)["term"] == len(list((data / "terms").glob("*.toml")))
    assert not list(target.parent.glob(".*partial*")), "temporary file left behind"
    # The copy is a working glossary database on its own.
    copy = make_settings(tmp_path, data, database_url=f"sqlite:///{target}", build_on_start=False)
    with TestClient(create_app(copy)) as client:
        total = client.get("/api/terms").json()["total"]
        assert total == counts(database)["term"]
        assert client.get("/terms/residual-connection").status_code == 200


def test_backup_failures_name_the_path(tmp_path: Path, data_dir: Path) -> None:
    runner = CliRunner()
    missing = tmp_path / "nowhere.db"
    result = runner.invoke(
        cli, ["backup", str(tmp_path / "x.db"), "--database-url", f"sqlite:///{missing}"]
    )
    assert result.exit_code == 1 and str(missing) in result.output

    database = tmp_path / "glossary.db"
    assert (
        runner.invoke(
            cli, ["load", "--data-dir", str(data_dir), "--database-url", f"sqlite:///{database}"]
        ).exit_code
        == 0
    )
    url = f"sqlite:///{database}"
    unwritable = tmp_path / "no-such-folder" / "copy.db"
    result = runner.invoke(cli, ["backup", str(unwritable), "--database-url", url])
    assert result.exit_code == 1
    assert "backup failed" in result.output and str(unwritable) in result.output
    assert not unwritable.parent.exists()

    result = runner.invoke(cli, ["backup", str(tmp_path), "--database-url", url])
    assert result.exit_code == 1 and f"{tmp_path} is a directory" in result.output

    result = runner.invoke(cli, ["backup", str(database), "--database-url", url])
    assert result.exit_code == 1 and "is the database itself" in result.output
    assert integrity(database) == [("ok",)]

    result = runner.invoke(
        cli, ["backup", str(tmp_path / "c.db"), "--database-url", "postgresql://localhost/glossary"]
    )
    assert result.exit_code == 1 and "SQLite" in result.output

    target = tmp_path / "copy.db"
    target.write_text("an older backup")  # replaced, not appended to
    result = runner.invoke(cli, ["backup", str(target), "--database-url", url])
    assert result.exit_code == 0, result.output
    assert counts(target) == counts(database)
