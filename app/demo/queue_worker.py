"""`glossary worker`: demo workers that take runs from PostgreSQL's queue, on any machine.

A procrastinate worker (one asyncio process, no torch) takes jobs from the queue "demo",
`size` at a time, and hands each to one of its spawned worker processes (app/demo/pool.py,
where torch runs). For each run it writes the events to demo_run_events, NOTIFYs the web
processes, and refreshes the run's heartbeat; a web process that sees a running run's
heartbeat stop (this process was killed) reports the run lost. Its workers' rows in
demo_workers say they are alive (device, speed, busy, language model).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

from sqlalchemy import Engine, text

from app.config import Settings
from app.db import make_engine
from app.demo.jobs import Job
from app.demo.pool import WorkerPool
from app.demo.queue_db import QUEUE, TASK, append_event, ensure_schema, procrastinate_app
from app.demo.setup import local_pool
from app.demo.store import ResultStore

log = logging.getLogger("glossary.worker")
BEAT_S = 0.5  # a running run's heartbeat; the workers' rows are refreshed twice as slowly


async def serve(settings: Settings, size: int, *, engine: str | None = None) -> None:
    """Run `size` demo workers on the shared queue until cancelled."""
    database = make_engine(settings.database_url)
    app = procrastinate_app(settings.database_url)
    await ensure_schema(app, database)
    pool = local_pool(settings, size, **({"engine": engine} if engine else {}))
    pool.start(lambda: None)

    async def demo_run(context: Any, run_id: str) -> None:
        await relay(database, pool, run_id)

    app.task(name=TASK, queue=QUEUE, pass_context=True)(demo_run)

    beating = asyncio.create_task(beat_workers(database, pool))
    try:
        async with app.open_async():
            await app.run_worker_async(
                queues=[QUEUE],
                concurrency=size,
                wait=True,
                listen_notify=True,
                install_signal_handlers=False,
                fetch_job_polling_interval=1.0,
                abort_job_polling_interval=0.5,
                update_heartbeat_interval=2.0,
                shutdown_graceful_timeout=2.0,
            )
    finally:
        beating.cancel()
        pool.shutdown()
        await asyncio.to_thread(forget_workers, database, pool)
        database.dispose()


async def relay(database: Engine, pool: WorkerPool, run_id: str) -> None:
    """Run one queued run on a worker process and write its events for the web processes."""
    job = await asyncio.to_thread(claim, database, run_id)
    if job is None:  # cancelled (or taken) before a worker got to it
        return
    while pool.free_slots() == 0:  # the workers may still be starting, or restarting
        await asyncio.to_thread(beat_run, database, run_id)
        await asyncio.sleep(BEAT_S)
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    def sink(event: str, data: dict[str, Any]) -> None:  # on the pool's reader thread
        loop.call_soon_threadsafe(events.put_nowait, (event, data))

    pool.submit(job, sink)
    try:
        while True:
            try:
                event, data = await asyncio.wait_for(events.get(), BEAT_S)
            except TimeoutError:
                await asyncio.to_thread(beat_run, database, run_id)
                continue
            if event == "result":  # stored before the run is done: no window for a re-run
                await asyncio.to_thread(ResultStore(database).put, job.key, data)
            await asyncio.to_thread(append_event, database, run_id, event, data)
            if event in ("result", "error"):
                await asyncio.to_thread(finish, database, run_id, event, data)
                if event == "error" and data["status"] >= 500:
                    raise RuntimeError(f"run {run_id} failed: {data['message']}")
                return
    except asyncio.CancelledError:  # aborted: every listener left (or this worker stops)
        pool.cancel(job.id)
        raise


def claim(database: Engine, run_id: str) -> Job | None:
    with database.begin() as conn:
        row = conn.execute(
            text(
                "UPDATE demo_runs SET state = 'running', heartbeat_at = "
                "EXTRACT(EPOCH FROM clock_timestamp())"
                " "
                "WHERE run_id = :r AND state = 'queued' RETURNING job"
            ),
            {"r": run_id},
        ).first()
    return None if row is None else Job.from_wire(json.loads(row.job))


def beat_run(database: Engine, run_id: str) -> None:
    with database.begin() as conn:
        conn.execute(
            text(
                "UPDATE demo_runs SET heartbeat_at = "
                "EXTRACT(EPOCH FROM clock_timestamp())"
                " WHERE run_id = :r"
            ),
            {"r": run_id},
        )


def finish(database: Engine, run_id: str, event: str, data: dict[str, Any]) -> None:
    reason = (data.get("details") or {}).get("reason") if event == "error" else None
    state = "done" if event == "result" else "cancelled" if reason == "cancelled" else "failed"
    with database.begin() as conn:
        conn.execute(
            text("UPDATE demo_runs SET state = :s WHERE run_id = :r AND state = 'running'"),
            {"s": state, "r": run_id},
        )


async def beat_workers(database: Engine, pool: WorkerPool) -> None:
    """Keep this machine's workers' rows fresh (every second) while they live."""
    while True:
        await asyncio.to_thread(write_workers, database, pool)
        await asyncio.sleep(2 * BEAT_S)


def _row_id(pid: int | None) -> str:
    return f"{socket.gethostname()}:{pid}"


def write_workers(database: Engine, pool: WorkerPool) -> None:
    models = pool.models()
    with database.begin() as conn:
        for info in pool.workers():
            model = models.get(info.id)
            conn.execute(
                text(
                    "INSERT INTO demo_workers (id, info, model, torch_version, heartbeat_at) "
                    "VALUES (:id, :info, :model, :tv, "
                    "EXTRACT(EPOCH FROM clock_timestamp())"
                    ") ON CONFLICT (id) DO UPDATE SET "
                    "info = :info, model = :model, torch_version = :tv, "
                    "heartbeat_at = EXTRACT(EPOCH FROM clock_timestamp())"
                ),
                {
                    "id": _row_id(info.pid),
                    "info": info.model_dump_json(),
                    "model": None if model is None else model.model_dump_json(),
                    "tv": info.torch_version,
                },
            )


def forget_workers(database: Engine, pool: WorkerPool) -> None:
    try:
        with database.begin() as conn:
            for pid in pool.pids():
                conn.execute(text("DELETE FROM demo_workers WHERE id = :id"), {"id": _row_id(pid)})
    except Exception:  # shutting down: the rows age out anyway
        log.warning("could not remove this machine's worker rows", exc_info=True)
