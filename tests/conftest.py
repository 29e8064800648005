"""Shared fixtures: real SQLite files in tmp folders, real app instances."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.factories import write_corpus

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"


def make_settings(tmp_path: Path, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path / 'glossary.db'}",
        "data_dir": data_dir,
        "demo_warmup": False,
        "demo_device": "cpu",
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
    return create_app(make_settings(real_db, real_db / "data"))


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
