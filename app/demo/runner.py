"""The demo's scheduler in the web process: cache, single flight, fairness, then a worker.

No torch here: runs execute in worker processes (app/demo/pool.py), or on workers on other
machines through PostgreSQL's job queue (app/demo/remote.py).

`await runner.open(experiment, params, client=...)` answers one request:
1. a run of the same config in flight: join it (`source` "joined"), from the event after
   the reader's Last-Event-ID when it reconnects;
2. a result in the cache (memory, then the shared table on PostgreSQL): `source` "cache";
3. otherwise a new run (`source` "computed"): refused with ClientOverCap (429) when this
   client already has `client_cap` runs queued or running, or GateFull (503) when
   `max_queued` runs wait; else queued in the fair queue at once, its first event
   `queued` with its position.
The runs nobody asked for (the warm-up) are ordinary runs in the background line, which
visitors join; a visitor who joins one moves it into their own turn.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from app.demo.errors import ClientOverCap, DemoDeviceError, GateFull, NoWorkers
from app.demo.executor import Executor, WorkerInfo
from app.demo.experiment import Experiment
from app.demo.fairness import BACKGROUND, FairQueue
from app.demo.jobs import Job
from app.demo.live import LiveRun
from app.demo.lm.service import TrainingProgress, ready_hash
from app.demo.params import ExperimentParams, set_budget_scale
from app.demo.result import DemoResult

log = logging.getLogger("glossary.demo")
Source = Literal["computed", "joined", "cache"]
FINISHED_KEPT = 64  # finished runs kept for readers reconnecting with Last-Event-ID
MODEL_POLL_S = 1.0
SHUTTING_DOWN = {
    "status": 503,
    "message": "The server is restarting; try again in a moment.",
    "details": {"reason": "shutdown", "retry_after_s": 5},
}  # how often the warm-up checks whether the language model is ready


class SharedStore(Protocol):
    """A cache shared by every web process (app.demo.store.ResultStore)."""

    def get(self, config_key: str, torch_version: str, device: str) -> dict[str, Any] | None: ...

    def put(self, config_key: str, result: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


@dataclass
class Opened:
    """What a request gets: a cached result, or a live run to follow from `skip` on."""

    source: Source
    result: DemoResult | None = None
    run: LiveRun | None = None
    skip: int = 0


class DemoRunner:
    """Cache, single flight and the fair queue in front of an executor's workers."""

    def __init__(
        self,
        executor: Executor,
        *,
        client_cap: int = 2,
        max_queued: int = 32,
        cache_size: int = 256,
        store: SharedStore | None = None,
    ) -> None:
        if client_cap < 1 or max_queued < 0 or cache_size < 0:
            raise ValueError("client_cap >= 1, max_queued >= 0, cache_size >= 0")
        self.executor = executor
        self.client_cap, self.max_queued, self.cache_size = client_cap, max_queued, cache_size
        self._store = store
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cache: OrderedDict[str, DemoResult] = OrderedDict()
        self._live: dict[str, LiveRun] = {}  # key -> the run in flight
        self._finished: OrderedDict[str, LiveRun] = OrderedDict()  # for reconnecting readers
        self._queue: FairQueue[LiveRun] = FairQueue()
        self._jobs: dict[int, Job] = {}  # run serial -> its job, while queued or running
        self._running: set[int] = set()
        self._avg_run_s = 2.0  # moving average, for Retry-After hints
        self._started_at: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        # started with the runner, cancelled at shutdown (a queue worker in this process)
        self.companions: list[Callable[[], Coroutine[Any, Any, None]]] = []

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        """Start the workers (the lifespan does; otherwise the first request does)."""
        self._ensure_started()

    def _ensure_started(self) -> None:
        if self._loop is None:
            self._loop = loop = asyncio.get_running_loop()
            self.executor.start(lambda: _call_soon(loop, self._changed))
            for companion in self.companions:
                self._spawn(companion())

    def shutdown(self) -> None:
        """Stop: every unfinished run ends with an error event; running ones stop at their
        next step in the worker (callable from any thread)."""
        self._closed = True
        if self._loop is not None:
            for run in list(self._live.values()):
                _call_soon(self._loop, run.publish, "error", SHUTTING_DOWN)
        for task in self._tasks:
            if self._loop is not None:
                _call_soon(self._loop, task.cancel)  # task.cancel() is not thread-safe
        self.executor.shutdown()

    async def aclose(self) -> None:
        """shutdown(), then wait for the executor's queries to end and close connections
        (closing them under a query still running in a thread would leak it)."""
        self.shutdown()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        close = getattr(self.executor, "aclose", None)
        if close is not None:
            await close()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)

    def start_warmup(self, runs: Iterable[tuple[Experiment, ExperimentParams]]) -> None:
        """Queue every run in the background line now (those on the language model once
        it is ready). Visitors asking for one of them join it instead of waiting behind it."""
        self._ensure_started()
        todo = list(runs)
        for experiment, params in todo:
            if not experiment.needs_model:
                self._warm(experiment, params)
        later = [(e, p) for e, p in todo if e.needs_model]
        if later:
            self._spawn(self._warm_when_model_ready(later))

    async def _warm_when_model_ready(self, runs: list[tuple[Experiment, ExperimentParams]]) -> None:
        while not self._closed:
            progress = self.executor.model_progress()
            if progress is not None and progress.state == "failed":
                return
            if progress is not None and progress.state == "ready":
                for experiment, params in runs:
                    self._warm(experiment, params)
                return
            await asyncio.sleep(MODEL_POLL_S)

    def _warm(self, experiment: Experiment, params: ExperimentParams) -> None:
        key = self._key(experiment, params)
        if key in self._live or self._cache_get(key) is not None:
            return
        self._new_run(key, Job.of(experiment, params, progress=False), BACKGROUND)

    # ------------------------------------------------------------------ requests

    def model_progress(self) -> TrainingProgress | None:
        return self.executor.model_progress()

    def _key(self, experiment: Experiment, params: ExperimentParams) -> str:
        """The run's identity: its canonical config, and the model's weights when it needs
        one (raises ModelTraining / ModelFailed while there is none)."""
        key = experiment.cache_key(params)
        if experiment.needs_model:
            key += "|model=" + ready_hash(self.executor.model_progress())
        return key

    async def open(
        self,
        experiment: Experiment,
        params: ExperimentParams,
        *,
        client: str,
        last_event: tuple[int, int] | None = None,
        progress: bool = True,
    ) -> Opened:
        self._ensure_started()
        if experiment.needs_model and not getattr(self.executor, "runs_model", True):
            raise DemoDeviceError("this server runs no language model (GLOSSARY_LM_START is false)")
        if not self.executor.workers():
            self._admit(client)  # raises NoWorkers, rather than "the model is training"
        key = self._key(experiment, params)
        live = self._live.get(key)
        if live is not None:
            if live.client == BACKGROUND and live.serial not in self._running:
                live.client, live.kept = client, False
                self._queue.move(live, client)
                self._announce_positions()
            return Opened("joined", run=live, skip=live.since(last_event))
        finished = self._finished.get(key)
        if finished is not None and last_event is not None and last_event[0] == finished.serial:
            return Opened("joined", run=finished, skip=finished.since(last_event))
        hit = self._cache_get(key)
        if hit is None:
            hit = await self._stored(key)
        if hit is not None:
            return Opened("cache", result=hit)
        self._admit(client, await self._active_elsewhere(client))
        run = self._new_run(key, Job.of(experiment, params, progress=progress), client)
        return Opened("computed", run=run)

    async def _active_elsewhere(self, client: str) -> int:
        """The client's runs queued or running through every web process (shared queue)."""
        count = getattr(self.executor, "active_runs", None)
        return 0 if count is None else int(await count(client))

    def _admit(self, client: str, shared_count: int = 0) -> None:
        if self._closed:
            raise NoWorkers("the server is shutting down")
        if not self.executor.workers():
            raise NoWorkers(
                "this server starts none (GLOSSARY_DEMO_WORKERS=0) and none is "
                "connected; the pages work without them"
            )
        mine = sum(1 for run in self._live.values() if run.client == client)
        if max(mine, shared_count) >= self.client_cap:
            raise ClientOverCap(self.client_cap, self._retry_after(1))
        waiting = sum(1 for run in self._queue.order() if run.client != BACKGROUND)
        would_wait = waiting + 1 - self.executor.free_slots()  # counting this run
        if would_wait > self.max_queued:
            raise GateFull(self._retry_after(waiting))

    def _retry_after(self, runs_ahead: int) -> int:
        slots = max(1, len(self.executor.workers()))
        return max(1, min(60, math.ceil(self._avg_run_s * runs_ahead / slots)))

    def _new_run(self, key: str, job: Job, client: str) -> LiveRun:
        run = LiveRun(key, client, self._abandoned, kept=client == BACKGROUND)
        self._live[key] = run
        self._jobs[run.serial] = dataclasses.replace(job, key=key, client=client)
        self._queue.push(client, run)
        self._announce_positions()
        self._dispatch()
        return run

    # ------------------------------------------------------------------ the queue

    def _changed(self) -> None:
        """A worker freed up, became ready or reported its model (on the loop)."""
        speeds = [w.speed for w in self.executor.workers() if w.ready]
        if speeds:  # admit what the slowest worker can do in the budget
            set_budget_scale(min(speeds))
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand waiting runs to free workers, in the fair queue's order."""
        if self._closed:
            return
        moved = False
        loop = self._loop
        assert loop is not None
        while self.executor.free_slots() > 0:
            run = self._queue.pop()
            if run is None:
                break
            moved = True
            job = self._jobs[run.serial]
            self._running.add(run.serial)
            self._started_at[run.serial] = time.monotonic()

            def sink(
                event: str,
                data: dict[str, Any],
                run: LiveRun = run,
                loop: asyncio.AbstractEventLoop = loop,
            ) -> None:
                _call_soon(loop, self._event, run, event, data)

            self.executor.submit(job, sink)
        if moved:
            self._announce_positions()

    def _announce_positions(self) -> None:
        """Each waiting run's place in line, as a `queued` event when it changed."""
        workers = self.executor.workers()
        busy = sum(1 for w in workers if w.busy)
        for position, run in enumerate(self._queue.order(), start=1):
            last = next((e for e in reversed(run.events) if e.event == "queued"), None)
            if last is None or last.data["position"] != position:
                run.publish(
                    "queued",
                    {"position": position, "workers": len(workers), "busy": busy},
                )

    def _event(self, run: LiveRun, event: str, data: dict[str, Any]) -> None:
        """One event from a worker (on the loop)."""
        if event == "joined":  # the shared queue had this run already (another web process)
            run.joined_elsewhere = True
            return
        if event == "result":
            result = DemoResult.model_validate(data)
            self._cache_put(run.key, result)
            if self._store is not None:
                self._spawn(asyncio.to_thread(self._store.put, run.key, data))
        run.publish(event, data)
        if event in ("result", "error"):
            self._retire(run)

    def _retire(self, run: LiveRun) -> None:
        self._jobs.pop(run.serial, None)
        self._running.discard(run.serial)
        started = self._started_at.pop(run.serial, None)
        if started is not None:
            self._avg_run_s = 0.8 * self._avg_run_s + 0.2 * (time.monotonic() - started)
        if self._live.get(run.key) is run:
            del self._live[run.key]
        self._finished[run.key] = run
        self._finished.move_to_end(run.key)
        while len(self._finished) > FINISHED_KEPT:
            self._finished.popitem(last=False)

    def _abandoned(self, run: LiveRun) -> None:
        """The last reader left a run that has not finished: stop it (a warm-up run a
        visitor had taken over goes back to the background line instead)."""
        if run.from_background and run.serial not in self._running:
            run.client, run.kept, run.abandoned = BACKGROUND, True, False
            self._queue.move(run, BACKGROUND)
            self._announce_positions()
            return
        if self._queue.remove(run):
            run.publish(
                "error",
                {
                    "status": 503,
                    "message": "Cancelled before it started: everyone waiting for it left.",
                    "details": {"reason": "cancelled"},
                },
            )
            self._retire(run)
            self._announce_positions()
        elif run.serial in self._running:
            self.executor.cancel(self._jobs[run.serial].id)
            # the single flight ends now: a new request starts afresh, not into a dying run
            if self._live.get(run.key) is run:
                del self._live[run.key]

    # ------------------------------------------------------------------ cache

    def _cache_get(self, key: str) -> DemoResult | None:
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
        return hit

    def _cache_put(self, key: str, result: DemoResult) -> None:
        if self.cache_size == 0:
            return
        self._cache[key] = result
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def _stored(self, key: str) -> DemoResult | None:
        """A result another web process stored, once workers said which torch and device."""
        workers = [w for w in self.executor.workers() if w.ready and w.torch_version]
        if self._store is None or not workers:
            return None
        worker = workers[0]
        stored = await asyncio.to_thread(
            self._store.get, key, worker.torch_version or "", worker.device or "cpu"
        )
        if stored is None:
            return None
        try:
            result = DemoResult.model_validate(stored)
        except ValueError:  # written by another version of the code: compute it afresh
            return None
        self._cache_put(key, result)
        return result

    # ------------------------------------------------------------------ reporting

    def status(self) -> dict[str, Any]:
        workers = self.executor.workers()
        alive = [w for w in workers if w.ready]
        devices = sorted({w.device for w in alive if w.device})
        waiting = self._queue.order()
        return {
            "workers": len(alive),
            "starting": len(workers) - len(alive),
            "busy": sum(1 for w in workers if w.busy),
            "device": ",".join(devices) or None,
            "queue": len(waiting),
            "queued_visitors": sum(1 for r in waiting if r.client != BACKGROUND),
            "in_flight": len(self._live),
            "cache_entries": len(self._cache),
            "client_cap": self.client_cap,
            "max_queued": self.max_queued,
            "errors": sorted({w.error for w in workers if w.error}),
            "detail": [w.model_dump() for w in workers],
        }

    def worker_infos(self) -> list[WorkerInfo]:
        return self.executor.workers()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Any, *args: Any) -> None:
    """Run fn on the loop from any thread; after the loop closed there is nobody to tell."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass
