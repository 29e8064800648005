"""The runner a server gets from its settings: workers here, or workers elsewhere.

- Embedded SQLite (the default): `demo_workers` worker processes spawned by this process.
- PostgreSQL: runs go through procrastinate's queue (app/demo/remote.py); `demo_workers`
  local workers consume it too, and `glossary worker` adds workers on any machine.
"""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.db import is_sqlite, make_engine
from app.demo.pool import WorkerPool
from app.demo.runner import DemoRunner


def model_options(settings: Settings) -> dict[str, Any] | None:
    """What a worker needs to load (or train once) the server's language model."""
    if not settings.lm_start:
        return None
    return {
        "size": settings.lm_size,
        "data_dir": str(settings.data_dir.resolve()),
        "cache_dir": str(settings.cache_dir.resolve()),
        "database_url": None if is_sqlite(settings.database_url) else settings.database_url,
    }


def local_pool(settings: Settings, size: int | None = None, **overrides: Any) -> WorkerPool:
    options: dict[str, Any] = {
        "device": settings.demo_device,
        "budget_s": settings.demo_time_budget_s,
        "lm": model_options(settings),
    } | overrides
    return WorkerPool(settings.worker_count() if size is None else size, **options)


def build_runner(settings: Settings) -> DemoRunner:
    from app.demo.store import ResultStore

    store = None
    if not is_sqlite(settings.database_url):
        store = ResultStore(make_engine(settings.database_url))
    return DemoRunner(
        local_pool(settings),
        client_cap=settings.demo_client_cap,
        max_queued=settings.demo_max_queued,
        store=store,
    )
