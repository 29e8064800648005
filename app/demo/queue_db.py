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

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from app.demo.executor import WorkerInfo
from app.demo.lm.service import TrainingProgress
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


def active_runs(conn: Connection, client: str) -> int:
    """The client's runs queued or running, through every web process."""
    return int(
        conn.execute(
            text(
                "SELECT count(*) FROM demo_runs WHERE client = :c "
                "AND state IN ('queued', 'running')"
            ),
            {"c": client},
        ).scalar_one()
    )


def live_workers(engine: Engine) -> tuple[list[WorkerInfo], list[TrainingProgress]]:
    """The workers that beat within WORKER_ALIVE_S, and the language models they report."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT info, model FROM demo_workers WHERE heartbeat_at > "
                "EXTRACT(EPOCH FROM clock_timestamp()) - :alive ORDER BY id"
            ),
            {"alive": WORKER_ALIVE_S},
        ).all()
    workers = [WorkerInfo.model_validate_json(row.info) for row in rows]
    models = [TrainingProgress.model_validate_json(row.model) for row in rows if row.model]
    return workers, models


def queue_positions(engine: Engine, run_ids: list[str]) -> dict[str, int]:
    """Each queued run's place among the queue's waiting jobs (1: next)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT r.run_id, (SELECT count(*) FROM procrastinate_jobs o WHERE "
                "o.queue_name = :q AND o.status = 'todo' AND (o.priority > j.priority OR "
                "(o.priority = j.priority AND o.id < j.id))) + 1 AS position "
                "FROM demo_runs r JOIN procrastinate_jobs j ON j.id = r.job_id "
                "WHERE r.run_id = ANY(:ids) AND j.status = 'todo'"
            ),
            {"q": QUEUE, "ids": run_ids},
        ).all()
    return {row.run_id: int(row.position) for row in rows}
