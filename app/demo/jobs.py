"""One run as a worker sees it, and how every kind of worker executes it under its budget.

A Job crosses process boundaries (a pipe to a local worker process, procrastinate's queue to
a worker on another machine) as plain JSON: the experiment's name and canonical parameters,
which the worker validates again. No torch here: torch is imported by the engine it calls.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from app.demo.catalog import resolve
from app.demo.errors import (
    ClientOverCap,
    DemoDeviceError,
    DemoInputError,
    GateFull,
    NoWorkers,
    RunCancelled,
    RunTimedOut,
    WorkerLost,
)
from app.demo.experiment import Experiment
from app.demo.params import ExperimentParams, ParamValue
from app.demo.result import DemoResult, Progress


@dataclass(frozen=True)
class Job:
    """What a worker needs to compute one run."""

    id: str
    preset: str
    params: dict[str, ParamValue]  # canonical, without the preset
    needs_model: bool = False
    progress: bool = True  # whether anyone watches the live charts
    key: str = ""  # the run's identity (config, and model weights): one run per key
    client: str = ""  # who asked first (fairness on the shared queue)

    @classmethod
    def of(cls, experiment: Experiment, params: ExperimentParams, progress: bool = True) -> Job:
        return cls(
            id=uuid.uuid4().hex[:16],
            preset=experiment.name,
            params=params.canonical(),
            needs_model=experiment.needs_model,
            progress=progress,
        )

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Job:
        return cls(**wire)

    def resolve(self) -> tuple[Experiment, ExperimentParams]:
        """Validated again where it runs (a worker may be another version of the code)."""
        return resolve(self.preset, {k: str(v) for k, v in self.params.items()})


class Engine(Protocol):
    """experiment.execute's signature; tests drive engines of their own."""

    def __call__(
        self,
        experiment: Experiment,
        params: ExperimentParams,
        device: str,
        *,
        on_progress: Callable[[Progress], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> DemoResult: ...


def execute_job(
    job: Job,
    engine: Engine,
    device: str,
    *,
    emit: Callable[[Progress], None],
    cancelled: Callable[[], bool],
    budget_s: float,
    clock: Callable[[], float] = time.monotonic,
    lm: Any = None,
) -> DemoResult:
    """Run a job to its result under the wall-clock budget; stop at the next step once
    cancelled() says so (RunCancelled) or the budget is spent (RunTimedOut)."""
    experiment, params = job.resolve()
    deadline = clock() + budget_s
    timed_out = False

    def should_stop() -> bool:
        nonlocal timed_out
        if cancelled():
            return True
        if clock() > deadline:
            timed_out = True
            return True
        return False

    try:
        extra = {"lm": lm} if lm is not None else {}
        return engine(
            experiment,
            params,
            device,
            on_progress=emit if job.progress else None,
            should_stop=should_stop,
            **extra,
        )
    except RunCancelled as exc:
        if timed_out:
            raise RunTimedOut(
                f"the run exceeded its wall-clock budget of {budget_s:g} s and was stopped; "
                "lower steps or the model's size"
            ) from exc
        raise
    except Exception as exc:
        if _is_out_of_memory(exc):
            _release_device_memory()
            raise DemoDeviceError(
                f"the {device} device ran out of memory for this run; lower its size, or "
                "retry when the demo is less busy"
            ) from exc
        raise


def describe_error(exc: BaseException) -> dict[str, Any] | None:
    """The JSON error body ({status, message, details}) for one of the demo's exceptions;
    details.retry_after_s, where present, is also the response's Retry-After. None: not ours
    (a bug: the caller logs it and answers a generic error)."""
    from app.demo.lm.service import ModelFailed, ModelTraining

    def body(status: int, message: str, **details: Any) -> dict[str, Any]:
        return {"status": status, "message": message, "details": details or None}

    if isinstance(exc, DemoInputError):
        return {
            "status": 422,
            "message": exc.message,
            "details": {"parameter": exc.param, "errors": exc.errors},
        }
    if isinstance(exc, ClientOverCap):
        return body(
            429,
            str(exc)[0].upper() + str(exc)[1:] + ".",
            reason="client_cap",
            cap=exc.cap,
            retry_after_s=exc.retry_after_s,
        )
    if isinstance(exc, GateFull):
        retry = max(1, int(exc.retry_after_s))
        return body(503, f"The demo is busy; try again in {retry} s.", retry_after_s=retry)
    if isinstance(exc, RunTimedOut):
        return body(
            503,
            f"The run took longer than its time budget: {exc}",
            reason="time_budget",
            retry_after_s=5,
        )
    if isinstance(exc, ModelTraining):
        retry = exc.retry_after_s
        return body(
            503,
            f"The language model this experiment runs on is training; try again in {retry} s.",
            reason="model_training",
            retry_after_s=retry,
            progress=exc.progress.model_dump(exclude={"train_loss", "val_loss"}),
        )
    if isinstance(exc, ModelFailed):
        return body(503, str(exc), reason="model_failed", retry_after_s=60)
    if isinstance(exc, WorkerLost):
        return body(
            503,
            f"The worker running this experiment was lost: {exc}. Try again.",
            reason="worker_lost",
            retry_after_s=2,
        )
    if isinstance(exc, NoWorkers):
        return body(
            503, f"No demo worker is running: {exc}.", reason="no_workers", retry_after_s=10
        )
    if isinstance(exc, DemoDeviceError):
        return body(503, str(exc), reason="device", retry_after_s=2)
    if isinstance(exc, RunCancelled):
        return body(
            503,
            "The run was cancelled: everyone watching it left.",
            reason="cancelled",
            retry_after_s=1,
        )
    return None


def _is_out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")  # no torch imported: not a torch error
    if torch is None:
        return False
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _release_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
