"""The demo's shared queue in PostgreSQL, as both sides use it: web processes (remote.py)
and `glossary worker` (queue_worker.py).

- procrastinate's own tables hold the jobs (queue "demo", priority for fairness).
- demo_runs: one row per run key, so every web process joins the same run.
- demo_run_events: each run's events; the worker NOTIFYs `demo_events` with the run id.
- demo_workers: each worker process's heartbeat, device, speed and language model.
Times come from the database's clock, so machines with skewed clocks agree.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from app.models import DemoRun, DemoRunEvent, DemoWorkerRow

QUEUE = "demo"
TASK = "glossary.demo_run"
CHANNEL = "demo_events"
NOW = "EXTRACT(EPOCH FROM clock_timestamp())"
WORKER_ALIVE_S = 5.0  # a worker row older than this is a dead worker
RUN_STALE_S = 5.0  # a running run whose worker has not beaten for this long is lost
TABLES = [DemoRun.__table__, DemoRunEvent.__table__, DemoWorkerRow.__table__]  # type: ignore[attr-defined]


def conninfo(database_url: str) -> str:
    """libpq's form of a SQLAlchemy URL (procrastinate and LISTEN use psycopg directly)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def procrastinate_app(database_url: str) -> Any:
    import procrastinate

    connector = procrastinate.PsycopgConnector(conninfo=conninfo(database_url))
    return procrastinate.App(connector=connector)


async def ensure_schema(app: Any, engine: Engine) -> None:
    """procrastinate's schema and our tables, once per database (under an advisory lock:
    several processes may start at once)."""
    import asyncio

    def ours() -> bool:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(715517)"))
            for table in TABLES:
                table.create(conn, checkfirst=True)
            return bool(conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar())

    if not await asyncio.to_thread(ours):
        async with app.open_async():
            try:
                await app.schema_manager.apply_schema_async()
            except Exception:  # another process applied it between our check and now
                if not await asyncio.to_thread(ours):
                    raise


def append_event(engine: Engine, run_id: str, event: str, data: dict[str, Any]) -> None:
    """Add an event to a run's log and wake its web processes."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO demo_run_events (run_id, seq, event, data) "
                "SELECT CAST(:r AS VARCHAR), COALESCE(MAX(seq), 0) + 1, :e, :d "
                "FROM demo_run_events WHERE run_id = :r"
            ),
            {"r": run_id, "e": event, "d": json.dumps(data)},
        )
        conn.execute(text("SELECT pg_notify(:c, :r)"), {"c": CHANNEL, "r": run_id})


def events_after(engine: Engine, run_id: str, seq: int) -> list[tuple[int, str, dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT seq, event, data FROM demo_run_events WHERE run_id = :r AND seq > :s "
                "ORDER BY seq"
            ),
            {"r": run_id, "s": seq},
        ).all()
    return [(row.seq, row.event, json.loads(row.data)) for row in rows]
