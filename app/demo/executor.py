"""Where runs execute. The runner hands a Job and a sink to an Executor; the executor calls
the sink, from any thread, with the run's events: `progress` items, then exactly one
`result` or `error` (also when the worker dies).

- app/demo/pool.py: WorkerPool, spawned worker processes (what the server uses).
- ThreadExecutor below: threads of this process running an engine the caller gives; tests
  use it with an engine they drive step by step (no torch is imported by it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from pydantic import BaseModel, Field

from app.demo.jobs import Engine, Job, describe_error, execute_job
from app.demo.lm.service import TrainingProgress

Sink = Callable[[str, dict[str, Any]], None]
log = logging.getLogger("glossary.demo")


class WorkerInfo(BaseModel):
    """One demo worker, as /healthz reports it."""

    id: str
    host: str = "local"
    pid: int | None = None
    device: str | None = None
    torch_version: str | None = None
    speed: float = Field(1.0, description="Measured speed relative to the reference CPU")
    busy: bool = False
    ready: bool = False  # torch imported, device picked and calibrated
    error: str | None = None


class Executor(Protocol):
    def start(self, on_change: Callable[[], None]) -> None:
        """Start the workers; on_change() is called (any thread) when a slot frees or a
        worker becomes ready, so the caller can hand out the next job."""

    def free_slots(self) -> int: ...

    def submit(self, job: Job, sink: Sink) -> None: ...

    def cancel(self, job_id: str) -> None: ...

    def workers(self) -> list[WorkerInfo]: ...

    def model_progress(self) -> TrainingProgress | None:
        """The language model's state on the most advanced worker (None: no model here)."""

    def shutdown(self) -> None: ...


def error_data(exc: BaseException) -> dict[str, Any]:
    """The `error` event's data for an exception raised by a run (a bug is logged, and its
    text never reaches the visitor)."""
    body = describe_error(exc)
    if body is None:
        log.error("demo run failed", exc_info=exc)
        return {"status": 500, "message": "The run failed on our side.", "details": None}
    return body


class ThreadExecutor:
    """Runs jobs on `slots` threads of this process with the given engine."""

    def __init__(
        self,
        engine: Engine,
        slots: int = 1,
        budget_s: float = 10.0,
        device: str = "cpu",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine, self.slots, self.budget_s = engine, slots, budget_s
        self.device, self.clock = device, clock
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="demo-run")
        self._lock = threading.Lock()
        self._cancelled: dict[str, threading.Event] = {}
        self._on_change: Callable[[], None] = lambda: None

    def start(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        on_change()

    def free_slots(self) -> int:
        with self._lock:
            return self.slots - len(self._cancelled)

    def submit(self, job: Job, sink: Sink) -> None:
        with self._lock:
            self._cancelled[job.id] = threading.Event()
        self._pool.submit(self._work, job, sink)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            flag = self._cancelled.get(job_id)
        if flag is not None:
            flag.set()

    def workers(self) -> list[WorkerInfo]:
        busy = self.slots - self.free_slots()
        return [
            WorkerInfo(id=f"thread-{i}", device=self.device, busy=i < busy, ready=True)
            for i in range(self.slots)
        ]

    def model_progress(self) -> TrainingProgress | None:
        return None

    runs_model = False

    def shutdown(self) -> None:
        with self._lock:
            flags = list(self._cancelled.values())
        for flag in flags:
            flag.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _work(self, job: Job, sink: Sink) -> None:
        with self._lock:
            flag = self._cancelled[job.id]
        try:
            result = execute_job(
                job,
                self.engine,
                self.device,
                emit=lambda p: sink("progress", p.model_dump(mode="json")),
                cancelled=flag.is_set,
                budget_s=self.budget_s,
                clock=self.clock,
            )
            sink("result", result.model_dump(mode="json"))
        except Exception as exc:
            sink("error", error_data(exc))
        finally:
            with self._lock:
                del self._cancelled[job.id]
            self._on_change()
