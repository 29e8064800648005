"""Runs demo experiments for the web app: device choice, gate, cache, cancellation, budget.

Importing this module does not import torch (the app constructs a DemoRunner at start-up);
torch is imported by the first worker that needs it, or by start_warmup()'s thread.

- A run is opened with `await runner.open(experiment, params)`, which answers from the cache
  or admits the run through the gate (raising GateFull at once when it is full), and then
  read with `async for item in run.events()`: Progress items, then one DemoResult.
- Gate: at most max_running runs execute at once (a thread pool of that size); up to
  max_queued more wait for a slot.
- Cache: identical canonical configs are answered from a bounded LRU cache (and, on
  PostgreSQL, the shared result table), without the gate.
- Budget: a run that exceeds time_budget_s (by `clock`, from when it starts executing) stops
  within a step and raises RunTimedOut; a client that disconnects (is_disconnected polled
  every POLL_S), or a reader that stops reading, stops its run within a step (RunCancelled).
- Device: "auto" takes CUDA when torch sees it and the CPU otherwise. "cuda" on a machine
  without CUDA fails clearly instead of silently falling back: status() reports the error and
  every run raises DemoDeviceError, so a misconfigured GPU server is noticed, not hidden.
- CUDA out of memory becomes DemoDeviceError after emptying the CUDA cache.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from app.demo.errors import DemoDeviceError, GateFull, RunCancelled, RunTimedOut
from app.demo.experiment import Experiment
from app.demo.params import ExperimentParams
from app.demo.result import DemoResult, Progress
from app.demo.run import Run

if TYPE_CHECKING:
    from app.demo.lm.service import LanguageModelService

__all__ = ["DemoDeviceError", "DemoRunner", "GateFull", "Run", "RunCancelled", "RunTimedOut"]

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


class SharedStore(Protocol):
    """A cache shared by every worker (app.demo.store.ResultStore)."""

    def get(self, config_key: str, torch_version: str, device: str) -> dict[str, Any] | None: ...

    def put(self, config_key: str, result: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class Engine(Protocol):
    """experiment.execute's signature; tests inject engines they control."""

    def __call__(
        self,
        experiment: Experiment,
        params: ExperimentParams,
        device: str,
        *,
        on_progress: Callable[[Progress], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> DemoResult: ...


class DemoRunner:
    """Runs experiments off the event loop, a few at a time, with a cache in front."""

    def __init__(
        self,
        device: str = "auto",
        max_running: int = 2,
        max_queued: int = 4,
        time_budget_s: float = 10.0,
        cache_size: int = 256,
        threads: int | None = None,
        engine: Engine | None = None,
        store: SharedStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        lm: LanguageModelService | None = None,
    ) -> None:
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
        if max_running < 1 or max_queued < 0 or cache_size < 0 or time_budget_s <= 0:
            raise ValueError("max_running >= 1, max_queued >= 0, cache_size >= 0, budget > 0")
        self.requested_device = device
        self.max_running, self.max_queued = max_running, max_queued
        self.time_budget_s, self.cache_size = time_budget_s, cache_size
        self.threads = threads  # torch CPU threads per run; None: one
        self._engine = engine
        self._store = store  # shared second-level cache (the database), or None
        self._clock = clock
        self.lm = lm  # the language model some experiments run on (needs_model)
        self._torch_version: str | None = None
        self._lock = threading.Lock()  # guards the counters and the cache
        self._init_lock = threading.Lock()  # one thread imports torch and picks the device
        self._running = 0
        self._queued = 0
        self._avg_run_s = 1.0  # moving average of run times, for Retry-After
        self._cache: OrderedDict[str, DemoResult] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=max_running, thread_name_prefix="demo-run")
        self._closed = threading.Event()  # set by shutdown(); warm-up stops at the next run
        self._torch_ready = False
        self._device: str | None = None
        self._device_error: str | None = None
        self._run_fn: Engine | None = None
        self._warmup: threading.Thread | None = None

    # ------------------------------------------------------------------ torch and device

    def _ensure_torch(self) -> Engine:
        """Import torch and the engines, pick the device (once); the engine to call."""
        with self._init_lock:
            if self._run_fn is None:
                import functools

                import torch

                from app.demo.experiment import execute

                if self.requested_device == "cuda" and not torch.cuda.is_available():
                    self._device_error = (
                        "device 'cuda' was requested but torch sees no CUDA device "
                        f"(torch {torch.__version__}); use device 'auto' or 'cpu'"
                    )
                elif self.requested_device == "cpu" or not torch.cuda.is_available():
                    self._device = "cpu"
                else:
                    self._device = "cuda"
                self._torch_version = torch.__version__
                self._run_fn = self._engine or functools.partial(execute, threads=self.threads)
                self._torch_ready = True
        if self._device_error is not None:
            raise DemoDeviceError(self._device_error)
        return self._run_fn

    def start_warmup(self, runs: Iterable[tuple[Experiment, ExperimentParams]] = ()) -> None:
        """Import torch, pick the device and compute `runs` into the cache, in the background.

        Returns at once; pages never wait for it. Warm-up runs go through the gate but skip
        (rather than queue) when it is busy."""
        todo = list(runs)

        def warm() -> None:
            try:
                self._ensure_torch()
            except DemoDeviceError as exc:
                log.error("demo warm-up: %s", exc)
                return
            for experiment, params in todo:
                if self._closed.is_set():  # the app is shutting down: stop quietly
                    return
                if experiment.needs_model:  # computed on first request, once the model exists
                    continue
                key = experiment.cache_key(params)
                if self._cache_get(key) is not None or self._stored(key) is not None:
                    continue
                try:
                    self._admit()
                except GateFull:
                    continue
                try:
                    self._submit(experiment, params, key, None, threading.Event()).result()
                except Exception as exc:  # a warm-up failure must not kill the thread
                    log.warning("demo warm-up run %s failed: %s", key, exc)

        self._warmup = threading.Thread(target=warm, name="demo-warmup", daemon=True)
        self._warmup.start()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "torch_ready": self._torch_ready,
                "device": self._device,
                "requested_device": self.requested_device,
                "error": self._device_error,
                "running": self._running,
                "queued": self._queued,
                "max_running": self.max_running,
                "max_queued": self.max_queued,
                "cache_entries": len(self._cache),
            }

    def shutdown(self) -> None:
        """Stop accepting work; queued runs are dropped, running ones stop at their next step."""
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._warmup is not None:
            self._warmup.join(timeout=0)  # daemon thread: never block shutdown on it
        if self._store is not None:
            self._store.close()

    # ------------------------------------------------------------------ gate and cache

    def _admit(self) -> None:
        with self._lock:
            if self._running + self._queued >= self.max_running + self.max_queued:
                waiting = self._queued + 1
                est = math.ceil(self._avg_run_s * waiting / self.max_running)
                raise GateFull(max(1, min(est, math.ceil(self.time_budget_s))))
            self._queued += 1

    def _submit(
        self,
        experiment: Experiment,
        params: ExperimentParams,
        key: str,
        emit: Callable[[Progress], None] | None,
        cancel: threading.Event,
        lm: Any = None,
    ) -> Future[DemoResult]:
        """Hand an admitted run to the pool (which queues it until a slot frees)."""
        try:
            return self._pool.submit(self._work, experiment, params, key, emit, cancel, lm)
        except RuntimeError:  # the pool is shut down
            with self._lock:
                self._queued -= 1
            raise

    def _cache_get(self, key: str) -> DemoResult | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    def _cache_put(self, key: str, result: DemoResult) -> None:
        if self.cache_size == 0:
            return
        with self._lock:
            self._cache[key] = result
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _stored(self, key: str) -> DemoResult | None:
        """A result another worker stored, once this one knows its torch version and device."""
        if self._store is None or self._device is None or self._torch_version is None:
            return None
        stored = self._store.get(key, self._torch_version, self._device)
        if stored is None:
            return None
        try:
            result = DemoResult.model_validate(stored)
        except ValueError:  # written by another version of the code: compute it afresh
            return None
        self._cache_put(key, result)
        return result

    # ------------------------------------------------------------------ the work

    def _work(
        self,
        experiment: Experiment,
        params: ExperimentParams,
        key: str,
        emit: Callable[[Progress], None] | None,
        cancel: threading.Event,
        lm: Any = None,
    ) -> DemoResult:
        """Runs on a pool thread: one experiment, under the time budget."""
        with self._lock:
            self._queued -= 1
            self._running += 1
        start = self._clock()
        try:
            if cancel.is_set():
                raise RunCancelled("the client went away before the run started")
            run_fn = self._ensure_torch()
            assert self._device is not None
            # the budget is for training; the one-off torch import does not count against it
            deadline = self._clock() + self.time_budget_s
            timed_out = False

            def should_stop() -> bool:
                nonlocal timed_out
                if cancel.is_set() or self._closed.is_set():
                    return True
                if self._clock() > deadline:
                    timed_out = True
                    return True
                return False

            try:
                extra = {"lm": lm} if lm is not None else {}
                result = run_fn(
                    experiment,
                    params,
                    self._device,
                    on_progress=emit,
                    should_stop=should_stop,
                    **extra,
                )
            except RunCancelled as exc:
                if timed_out:
                    raise RunTimedOut(
                        f"the run exceeded its wall-clock budget of {self.time_budget_s:g} s "
                        "and was stopped; lower steps or the model's size"
                    ) from exc
                raise
            except Exception as exc:
                if _is_out_of_memory(exc):
                    _release_device_memory()
                    raise DemoDeviceError(
                        f"the {self._device} device ran out of memory for this run; lower "
                        "its size, or retry when the demo is less busy"
                    ) from exc
                raise
            self._cache_put(key, result)
            if self._store is not None:
                self._store.put(key, result.model_dump(mode="json"))
            return result
        finally:
            elapsed = self._clock() - start
            with self._lock:
                self._running -= 1
                self._avg_run_s = 0.8 * self._avg_run_s + 0.2 * elapsed

    async def open(
        self, experiment: Experiment, params: ExperimentParams, *, progress: bool = True
    ) -> Run:
        """A run of this config: from the cache, or admitted now (raises GateFull when full).
        With progress=False the engine draws no live charts (nobody would see them).
        An experiment that needs the language model raises ModelTraining until it exists."""
        key = experiment.cache_key(params)
        lm = None
        if experiment.needs_model:
            if self.lm is None:
                raise DemoDeviceError(
                    "this server runs no language model (GLOSSARY_LM_START is false)"
                )
            lm = self.lm.trained()  # ModelTraining / ModelFailed while there is none
            key += "|model=" + lm.weights_hash
        hit = self._cache_get(key)
        if hit is None and self._store is not None:
            hit = await asyncio.to_thread(self._stored, key)
        if hit is not None:
            return Run(result=hit)
        self._admit()
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Progress] = asyncio.Queue()
        cancel = threading.Event()

        def emit(event: Progress) -> None:  # on the worker thread
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the loop is closed (the app stopped): nobody listens
                cancel.set()

        future = self._submit(experiment, params, key, emit if progress else None, cancel, lm)
        return Run(future=future, events=events, cancel=cancel)

    async def result(
        self,
        experiment: Experiment,
        params: ExperimentParams,
        is_disconnected: Callable[[], Awaitable[bool]] | None = None,
    ) -> DemoResult:
        """Open a run and read it to its result (no progress)."""
        run = await self.open(experiment, params, progress=False)
        async for item in run.events(is_disconnected):
            if isinstance(item, DemoResult):
                return item
        raise RuntimeError("a run ended without a result")  # pragma: no cover


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _release_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
