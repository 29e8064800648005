"""A pool of spawned demo worker processes (app/demo/worker_process.py), supervised.

- Each worker runs one job at a time; `free_slots()` counts the ready, idle ones.
- A reader thread per worker relays its events to the job's sink. When a worker dies (a
  crash, `kill -9`, the watchdog) its job's sink gets an `error` event at once (503
  worker_lost), the job is not retried (the same run might kill the next worker too), and a
  fresh worker is started in its place.
- The watchdog kills a worker whose run overruns the wall-clock budget by `margin_s` (a run
  that stopped checking for cancellation, a hung device): the budget is enforced inside the
  worker at every step, the watchdog is for when that fails.
- Workers are spawned (not forked): the web process never imports torch, and a fresh
  interpreter does not inherit its threads and sockets.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from app.demo.errors import WorkerLost
from app.demo.executor import Sink, WorkerInfo, error_data
from app.demo.jobs import Job
from app.demo.lm.service import TrainingProgress, most_advanced

log = logging.getLogger("glossary.demo")
WATCHDOG_POLL_S = 0.2
RESPAWN_BACKOFF_S = (0.0, 1.0, 5.0, 30.0)  # after 0, 1, 2, 3+ workers that died unready


@dataclass
class Worker:
    """One worker process, as the pool sees it."""

    index: int
    process: BaseProcess
    inbox: Connection
    info: WorkerInfo
    model: TrainingProgress | None = None
    job: Job | None = None
    sink: Sink | None = None
    started_at: float = 0.0
    kill_reason: str | None = None
    events: int = field(default=0)


class WorkerPool:
    """`size` worker processes running jobs, restarted when they die."""

    def __init__(
        self,
        size: int,
        *,
        device: str = "auto",
        budget_s: float = 10.0,
        margin_s: float | None = None,
        lm: dict[str, Any] | None = None,
        engine: str | None = None,
        calibrate: bool = True,
    ) -> None:
        self.size, self.budget_s = size, budget_s
        self.margin_s = margin_s if margin_s is not None else max(5.0, budget_s)
        self._options: dict[str, Any] = {
            "device": device,
            "budget_s": budget_s,
            "lm": lm,
            "engine": engine,
            "calibrate": calibrate,
        }
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._workers: dict[int, Worker] = {}
        self._unready_deaths = 0
        self._closing = threading.Event()
        self._on_change: Callable[[], None] = lambda: None
        self.restarts = 0

    @property
    def runs_model(self) -> bool:
        """Whether these workers load the language model (GLOSSARY_LM_START)."""
        return self._options["lm"] is not None

    # ------------------------------------------------------------------ the Executor side

    def start(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        for index in range(self.size):
            self._spawn(index)
        threading.Thread(target=self._watchdog, name="demo-watchdog", daemon=True).start()

    def free_slots(self) -> int:
        with self._lock:
            return sum(1 for w in self._workers.values() if w.info.ready and w.job is None)

    def submit(self, job: Job, sink: Sink) -> None:
        with self._lock:
            idle = [w for w in self._workers.values() if w.info.ready and w.job is None]
            if not idle:
                raise RuntimeError("submit() without a free slot")
            worker = idle[0]
            worker.job, worker.sink = job, sink
            worker.started_at, worker.info.busy = time.monotonic(), True
            try:
                worker.inbox.send(("run", job.to_wire()))
            except OSError:  # it just died: its reader thread reports the job as lost
                pass

    def cancel(self, job_id: str) -> None:
        with self._lock:
            for worker in self._workers.values():
                if worker.job is not None and worker.job.id == job_id:
                    try:
                        worker.inbox.send(("cancel", job_id))
                    except OSError:
                        pass

    def workers(self) -> list[WorkerInfo]:
        with self._lock:
            return [w.info.model_copy() for w in self._workers.values()]

    def model_progress(self) -> TrainingProgress | None:
        """The most advanced worker's model (ready beats training beats waiting)."""
        with self._lock:
            models = [w.model for w in self._workers.values() if w.model is not None]
        return most_advanced(models)

    def models(self) -> dict[str, TrainingProgress]:
        """Each worker's language model, by worker id."""
        with self._lock:
            return {w.info.id: w.model for w in self._workers.values() if w.model is not None}

    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._workers.values() if w.process.pid]

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every worker: politely, then by force."""
        self._closing.set()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            try:
                worker.inbox.send(("stop",))
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(1.0)

    # ------------------------------------------------------------------ processes

    def _spawn(self, index: int) -> None:
        from app.demo import worker_process

        to_worker_r, to_worker_w = self._context.Pipe(duplex=False)
        from_worker_r, from_worker_w = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker_process.main,
            args=(to_worker_r, from_worker_w, self._options),
            name=f"glossary-demo-worker-{index}",
            daemon=True,
        )
        process.start()
        to_worker_r.close()  # the child's ends: closed here so its death closes the pipes
        from_worker_w.close()
        worker = Worker(index, process, to_worker_w, WorkerInfo(id=f"local-{index}"))
        worker.info.pid = process.pid
        with self._lock:
            self._workers[index] = worker
        threading.Thread(
            target=self._read,
            args=(worker, from_worker_r),
            name=f"demo-worker-{index}",
            daemon=True,
        ).start()

    def _read(self, worker: Worker, outbox: Connection) -> None:
        """Relay one worker's messages until it dies; then report its job lost and replace it."""
        while True:
            try:
                message = json.loads(outbox.recv_bytes())
            except (EOFError, OSError):
                break
            self._handle(worker, message)
        worker.process.join(2.0)
        with self._lock:
            job, sink = worker.job, worker.sink
            worker.job = worker.sink = None
            was_ready = worker.info.ready
            worker.info.ready = worker.info.busy = False
        if sink is not None and job is not None:
            reason = worker.kill_reason or _exit_reason(worker.process.exitcode)
            log.warning("demo worker %s lost run %s: %s", worker.process.pid, job.id, reason)
            sink("error", error_data(WorkerLost(reason)))
        if self._closing.is_set():
            return
        self._unready_deaths = 0 if was_ready else self._unready_deaths + 1
        backoff = RESPAWN_BACKOFF_S[min(self._unready_deaths, len(RESPAWN_BACKOFF_S) - 1)]
        if self._closing.wait(backoff):
            return
        self.restarts += 1
        self._spawn(worker.index)
        self._on_change()

    def _handle(self, worker: Worker, message: list[Any]) -> None:
        kind = message[0]
        if kind == "hello":
            info = message[1]
            with self._lock:
                worker.info = worker.info.model_copy(
                    update={
                        "pid": info["pid"],
                        "host": info["host"],
                        "device": info["device"],
                        "torch_version": info["torch_version"],
                        "speed": info["speed"],
                        "error": info["error"],
                        "ready": True,
                    }
                )
            self._on_change()
        elif kind == "model":
            with self._lock:
                worker.model = TrainingProgress.model_validate(message[1])
            self._on_change()
        elif kind == "event":
            _, job_id, name, data = message
            terminal = name in ("result", "error")
            with self._lock:
                if worker.job is None or worker.job.id != job_id:
                    return  # a late event of a job already reported lost
                sink = worker.sink
                if terminal:
                    worker.job = worker.sink = None
                    worker.info.busy = False
            assert sink is not None
            sink(name, data)
            if terminal:
                self._on_change()

    def _watchdog(self) -> None:
        while not self._closing.wait(WATCHDOG_POLL_S):
            now = time.monotonic()
            with self._lock:
                overdue = [
                    w
                    for w in self._workers.values()
                    if w.job is not None and now - w.started_at > self.budget_s + self.margin_s
                ]
            for worker in overdue:
                worker.kill_reason = (
                    f"the watchdog stopped it: the run overran its {self.budget_s:g} s budget "
                    f"by more than {self.margin_s:g} s"
                )
                log.warning("demo watchdog: killing worker %s", worker.process.pid)
                worker.process.kill()


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        return f"the worker process was killed by signal {-code}"
    return f"the worker process exited with code {code}"
