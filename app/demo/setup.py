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
        "engine": settings.demo_engine,
    } | overrides
    return WorkerPool(settings.worker_count() if size is None else size, **options)


def build_runner(settings: Settings) -> DemoRunner:
    """SQLite: this process's worker pool. PostgreSQL: the shared queue, plus (unless
    demo_workers is 0) a queue worker in this process with its own pool."""
    options: dict[str, Any] = {
        "client_cap": settings.demo_client_cap,
        "max_queued": settings.demo_max_queued,
    }
    if is_sqlite(settings.database_url):
        return DemoRunner(local_pool(settings), **options)
    from app.demo.queue_worker import serve
    from app.demo.remote import RemoteExecutor
    from app.demo.store import ResultStore

    database = make_engine(settings.database_url)
    runner = DemoRunner(
        RemoteExecutor(database, settings.database_url), store=ResultStore(database), **options
    )
    if settings.worker_count() > 0:
        runner.companions.append(lambda: serve(settings, settings.worker_count()))
    return runner
