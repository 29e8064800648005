"""The web process's side of the shared queue (PostgreSQL): an Executor whose workers are
`glossary worker` processes on any machine (app/demo/queue_worker.py).

- submit(): claims the run key in demo_runs. The first web process to claim it defers the
  procrastinate job (priority: minus the client's runs already active, so the queue serves
  clients in turn); the others join it and relay the same events (single flight across
  web processes). Either way this process follows the run's events.
- Events arrive by LISTEN/NOTIFY on `demo_events` (a thread holding one connection), with a
  poll every POLL_S as a safety net; the poll also announces queue positions and marks a
  running run whose worker stopped beating as lost (`error`, worker_lost; its job failed).
- cancel(): this process stops following; when no web process follows the run any more it
  is cancelled (a queued job is dropped, a running one aborted at its next step).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from app.demo.errors import WorkerLost
from app.demo.executor import Sink, WorkerInfo, error_data
from app.demo.fairness import BACKGROUND
from app.demo.jobs import Job
from app.demo.lm.service import TrainingProgress, most_advanced
from app.demo.queue_db import (
    CHANNEL,
    QUEUE,
    RUN_STALE_S,
    TASK,
    active_runs,
    append_event,
    conninfo,
    ensure_schema,
    events_after,
    live_workers,
    procrastinate_app,
    queue_positions,
)

log = logging.getLogger("glossary.demo")
POLL_S = 0.5
BACKGROUND_PRIORITY = 1000  # warm-up runs wait behind every visitor's
CLOSE_WAIT_S = 5.0
TERMINAL = ("result", "error")


@dataclass
class Followed:
    job: Job
    sink: Sink
    run_id: str | None = None
    seq: int = 0  # the last event relayed
    position: int | None = None
    done: bool = False


class RemoteExecutor:
    """Runs jobs on the shared queue's workers."""

    def __init__(self, database: Engine, database_url: str) -> None:
        self._db, self._url = database, database_url
        self._app = procrastinate_app(database_url)
        self._followed: dict[str, Followed] = {}  # job id -> what this process relays
        self._workers: list[WorkerInfo] = []
        self._models: list[TrainingProgress] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._stop = threading.Event()
        self._on_change: Callable[[], None] = lambda: None
        self._opened = False
        self._listener: threading.Thread | None = None

    # ------------------------------------------------------------------ Executor

    def start(self, on_change: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_change = on_change
        self._spawn(self._main())
        self._listener = threading.Thread(target=self._listen, name="demo-listen", daemon=True)
        self._listener.start()

    def free_slots(self) -> int:
        return 1 << 20  # the queue holds what workers cannot take yet

    def submit(self, job: Job, sink: Sink) -> None:
        self._followed[job.id] = Followed(job, sink)
        self._spawn(self._submit(job.id))

    def cancel(self, job_id: str) -> None:
        followed = self._followed.get(job_id)
        if followed is not None and not followed.done:
            self._spawn(self._leave(followed))

    def workers(self) -> list[WorkerInfo]:
        return list(self._workers)

    @property
    def runs_model(self) -> bool:
        """Whether the queue's workers load the language model: they decide (their own
        GLOSSARY_LM_START), so this is known only once one of them reports."""
        return not self._workers or bool(self._models)

    async def active_runs(self, client: str) -> int:
        """The client's runs queued or running, through every web process."""

        def count() -> int:
            with self._db.connect() as conn:
                return active_runs(conn, client)

        return await asyncio.to_thread(count)

    def model_progress(self) -> TrainingProgress | None:
        return most_advanced(self._models)

    def shutdown(self) -> None:
        """Stop polling and listening (callable from any thread); aclose() waits for it."""
        self._stop.set()
        self._wake_soon()

    async def aclose(self) -> None:
        """Let running queries finish (a thread cannot be cancelled), then close the queue."""
        self.shutdown()
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=CLOSE_WAIT_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._opened:
            self._opened = False
            await self._app.close_async()
        if self._listener is not None:
            await asyncio.to_thread(self._listener.join, CLOSE_WAIT_S)
        self._db.dispose()

    # ------------------------------------------------------------------ submitting

    async def _submit(self, job_id: str) -> None:
        followed = self._followed[job_id]
        job = followed.job
        try:
            run_id, owner, priority = await asyncio.to_thread(self._claim, job)
            followed.run_id = run_id
            if owner:
                deferred = self._app.configure_task(TASK, queue=QUEUE, priority=priority)
                job_pk = await deferred.defer_async(run_id=run_id)
                await asyncio.to_thread(self._set_job_id, run_id, job_pk)
            else:
                followed.sink("joined", {})  # another web process's run: not computed here
            await self._relay(followed)
        except Exception as exc:
            log.exception("could not queue demo run %s", job.id)
            self._finish(followed, "error", error_data(exc))

    def _claim(self, job: Job) -> tuple[str, bool, int]:
        """(run id, whether this process created the run, its priority)."""
        run_id = uuid.uuid4().hex
        with self._db.begin() as conn:
            active = active_runs(conn, job.client)
            priority = -active - (BACKGROUND_PRIORITY if job.client == BACKGROUND else 0)
            row = conn.execute(
                text(
                    "INSERT INTO demo_runs (config_key, run_id, state, client, priority, "
                    "listeners, job, created_at, heartbeat_at) VALUES (:k, :r, 'queued', :c, "
                    ":p, 1, :j, "
                    "EXTRACT(EPOCH FROM clock_timestamp())"
                    ", "
                    "EXTRACT(EPOCH FROM clock_timestamp())"
                    ") ON CONFLICT (config_key) DO UPDATE SET "
                    "run_id = EXCLUDED.run_id, job_id = NULL, state = 'queued', "
                    "client = EXCLUDED.client, priority = EXCLUDED.priority, listeners = 1, "
                    "job = EXCLUDED.job, created_at = EXCLUDED.created_at, "
                    "heartbeat_at = EXCLUDED.heartbeat_at "
                    "WHERE demo_runs.state IN ('done', 'failed', 'cancelled') RETURNING run_id"
                ),
                {
                    "k": job.key,
                    "r": run_id,
                    "c": job.client,
                    "p": priority,
                    "j": json.dumps(job.to_wire()),
                },
            ).first()
            if row is not None:
                return run_id, True, priority
            joined = conn.execute(
                text(
                    "UPDATE demo_runs SET listeners = listeners + 1 WHERE config_key = :k "
                    "RETURNING run_id, priority, client, job_id, state"
                ),
                {"k": job.key},
            ).one()
            if joined.client == BACKGROUND and job.client != BACKGROUND:
                # a visitor asks for a waiting warm-up run: it takes the visitor's turn
                turn = {"c": job.client, "p": -active, "r": joined.run_id}
                conn.execute(
                    text("UPDATE demo_runs SET client = :c, priority = :p WHERE run_id = :r"),
                    turn,
                )
                conn.execute(
                    text(
                        "UPDATE procrastinate_jobs SET priority = :p WHERE id = :j "
                        "AND status = 'todo'"
                    ),
                    {"p": turn["p"], "j": joined.job_id},
                )
        return joined.run_id, False, joined.priority

    def _set_job_id(self, run_id: str, job_pk: int) -> None:
        with self._db.begin() as conn:
            conn.execute(
                text("UPDATE demo_runs SET job_id = :j WHERE run_id = :r"),
                {"j": job_pk, "r": run_id},
            )

    # ------------------------------------------------------------------ following

    async def _relay(self, followed: Followed) -> None:
        """Pass on the run's events this process has not relayed yet."""
        if followed.done or followed.run_id is None:
            return
        events = await asyncio.to_thread(events_after, self._db, followed.run_id, followed.seq)
        for seq, event, data in events:
            if followed.done:
                return
            followed.seq = seq
            if event in TERMINAL:
                self._finish(followed, event, data)
            else:
                followed.sink(event, data)

    def _finish(self, followed: Followed, event: str, data: dict[str, Any]) -> None:
        followed.done = True
        self._followed.pop(followed.job.id, None)
        followed.sink(event, data)

    async def _leave(self, followed: Followed) -> None:
        """This process stops following; the last one out cancels the run."""
        self._finish(followed, "error", error_data(_cancelled()))
        if followed.run_id is None:
            return
        row = await asyncio.to_thread(self._release, followed.run_id)
        if row is not None and row.job_id is not None:
            await self._app.job_manager.cancel_job_by_id_async(row.job_id, abort=True)

    def _release(self, run_id: str) -> Any:
        with self._db.begin() as conn:
            return conn.execute(
                text(
                    "UPDATE demo_runs SET listeners = listeners - 1, state = CASE WHEN "
                    "listeners = 1 AND state IN ('queued', 'running') THEN 'cancelled' ELSE "
                    "state END WHERE run_id = :r RETURNING listeners, job_id, state"
                ),
                {"r": run_id},
            ).first()

    async def _main(self) -> None:
        """Open the queue, then poll: workers, missed events, positions, lost runs."""
        await ensure_schema(self._app, self._db)
        if self._stop.is_set():
            return
        await self._app.open_async()
        self._opened = True
        while not self._stop.is_set():
            try:
                await self._poll()
            except Exception:
                log.exception("demo queue poll failed")
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            except TimeoutError:
                pass
            self._wake = asyncio.Event()

    async def _poll(self) -> None:
        before = [(w.id, w.ready, w.busy) for w in self._workers]
        self._workers, self._models = await asyncio.to_thread(live_workers, self._db)
        if before != [(w.id, w.ready, w.busy) for w in self._workers]:
            self._on_change()
        for followed in list(self._followed.values()):
            await self._relay(followed)
        run_ids = [f.run_id for f in self._followed.values() if f.run_id and not f.done]
        if run_ids:
            await asyncio.to_thread(self._mark_lost, run_ids)
            await self._announce_positions(run_ids)

    def _mark_lost(self, run_ids: list[str]) -> None:
        """A running run whose worker stopped beating: failed, with an error event."""
        with self._db.begin() as conn:
            lost = conn.execute(
                text(
                    "UPDATE demo_runs SET state = 'failed' WHERE run_id = ANY(:ids) AND "
                    "state = 'running' AND heartbeat_at < "
                    "EXTRACT(EPOCH FROM clock_timestamp())"
                    " - :stale RETURNING run_id, job_id"
                ),
                {"ids": run_ids, "stale": RUN_STALE_S},
            ).all()
        for row in lost:
            reason = f"its worker stopped answering for {RUN_STALE_S:g} s"
            append_event(self._db, row.run_id, "error", error_data(WorkerLost(reason)))
            if row.job_id is not None:
                self._fail_job(row.job_id)

    def _fail_job(self, job_id: int) -> None:
        with self._db.begin() as conn:
            conn.execute(
                text(
                    "UPDATE procrastinate_jobs SET status = 'failed' WHERE id = :j "
                    "AND status = 'doing'"
                ),
                {"j": job_id},
            )

    async def _announce_positions(self, run_ids: list[str]) -> None:
        positions = await asyncio.to_thread(queue_positions, self._db, run_ids)
        busy = sum(1 for w in self._workers if w.busy)
        for followed in list(self._followed.values()):
            position = positions.get(followed.run_id or "")
            if position is not None and position != followed.position and not followed.done:
                followed.position = position
                followed.sink(
                    "queued", {"position": position, "workers": len(self._workers), "busy": busy}
                )

    def _listen(self) -> None:
        """LISTEN on its own connection: a notification wakes the poll at once."""
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo(self._url), autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._wake_soon()
            except Exception:
                if self._stop.wait(1.0):
                    return
                log.warning("demo queue listener reconnecting", exc_info=True)

    def _wake_soon(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(lambda: self._wake.set())
        except RuntimeError:
            pass

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _cancelled() -> Exception:
    from app.demo.errors import RunCancelled

    return RunCancelled("everyone watching it left")
