"""Shared fixtures: real SQLite files in tmp folders, real app instances."""

import atexit
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.factories import write_corpus

# The demo's controlled engine, fake clock and runner fixtures (tests/demo_fixtures.py).
pytest_plugins = ["tests.demo_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"

# How long a test waits for something that happens on any working machine (a server to
# start, a subprocess to finish, a page to settle): enough when every core is busy with
# other work. Tests wait on the condition itself; only a broken feature waits this long.
PATIENCE_S = float(os.environ.get("GLOSSARY_TEST_PATIENCE_S", "180"))


def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait for what another process makes true; fail, naming `what`, only past PATIENCE_S."""
    deadline = time.monotonic() + PATIENCE_S
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


# Set (by `make test`) to a PostgreSQL admin URL to run the whole suite against PostgreSQL:
# every test database is then a fresh PostgreSQL database instead of a SQLite file.
POSTGRES_ADMIN_URL = os.environ.get("GLOSSARY_TEST_POSTGRES_URL")


def fresh_database_url(tmp_path: Path) -> str:
    """A new, empty database for one test: a SQLite file, or a PostgreSQL database."""
    if not POSTGRES_ADMIN_URL:
        return f"sqlite:///{tmp_path / 'glossary.db'}"
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


# Servers the tests start train the TINY language model (seconds), once per test session:
# its weights are kept in one cache folder every app and subprocess of the session shares.
LM_CACHE_DIR = Path(tempfile.mkdtemp(prefix="glossary-lm-"))
atexit.register(shutil.rmtree, LM_CACHE_DIR, ignore_errors=True)
os.environ.setdefault("GLOSSARY_LM_SIZE", "tiny")
os.environ.setdefault("GLOSSARY_CACHE_DIR", str(LM_CACHE_DIR))


def make_settings(tmp_path: Path, data_dir: Path, **overrides: object) -> Settings:
    """A test app's settings. The language model starts only where a test asks (lm_start=True):
    the small test corpora are too small to train on."""
    values: dict[str, object] = {
        "database_url": fresh_database_url(tmp_path),
        "data_dir": data_dir,
        "demo_warmup": False,
        "demo_device": "cpu",
        "lm_size": "tiny",
        "cache_dir": LM_CACHE_DIR,
        "lm_start": False,
        # No worker processes unless a test asks (each imports torch: seconds to start).
        "demo_workers": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A small valid content folder the test may edit."""
    return write_corpus(tmp_path / "data")


@pytest.fixture
def small_app(tmp_path: Path, data_dir: Path) -> FastAPI:
    return create_app(make_settings(tmp_path, data_dir))


@pytest.fixture
def small_client(small_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(small_app) as client:
        yield client


@pytest.fixture(scope="session")
def real_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real data/ corpus loaded once into a session-wide database file."""
    folder = tmp_path_factory.mktemp("real")
    data = folder / "data"
    shutil.copytree(ROOT / "data", data, ignore=shutil.ignore_patterns("*.db*"))
    return folder


@pytest.fixture(scope="session")
def real_app(real_db: Path) -> FastAPI:
    return create_app(make_settings(real_db, real_db / "data", lm_start=True, demo_workers=1))


@pytest.fixture(scope="session")
def client(real_app: FastAPI) -> Iterator[TestClient]:
    """A client over the real glossary content."""
    with TestClient(real_app, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under PostgreSQL, skip the tests that are about SQLite files themselves."""
    if not POSTGRES_ADMIN_URL:
        return
    skip = pytest.mark.skip(reason="about SQLite files; this run is against PostgreSQL")
    for item in items:
        if "sqlite_only" in item.keywords:
            item.add_marker(skip)
