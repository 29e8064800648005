"""Runs demo experiments for the web app: device choice, gate, cache, cancellation, budget.

Importing this module does not import torch (the app constructs a DemoRunner at start-up);
torch is imported by the first worker that needs it, or by start_warmup()'s thread.

- Gate: at most max_running runs execute at once (a thread pool of that size); up to
  max_queued more wait for a slot; beyond that run() raises GateFull at once.
- Cache: identical canonical configs are answered from a bounded LRU cache, without the gate.
- Budget: a run that exceeds time_budget_s (counted from when it starts executing) stops
  within a step and raises RunTimedOut; a client that disconnects (is_disconnected polled
  every POLL_S) stops its run within a step and raises RunCancelled.
- Device: "auto" takes CUDA when torch sees it and the CPU otherwise. "cuda" on a machine
  without CUDA fails clearly instead of silently falling back: status() reports the error and
  every run raises DemoDeviceError, so a misconfigured GPU server is noticed, not hidden.
- CUDA out of memory becomes DemoDeviceError after emptying the CUDA cache; the next run
  starts from scratch and succeeds.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from app.demo.errors import DemoDeviceError, GateFull, RunCancelled, RunTimedOut
from app.demo.presets import DemoConfig

__all__ = ["DemoDeviceError", "DemoRunner", "GateFull", "RunCancelled", "RunTimedOut"]

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often run() polls is_disconnected while a run is in flight
DEVICES = ("auto", "cpu", "cuda")

Progress = Callable[[dict[str, Any]], None]


class SharedStore(Protocol):
    """A cache shared by every worker (app.demo.store.ResultStore)."""

    def get(self, config_key: str, torch_version: str, device: str) -> dict[str, Any] | None: ...

    def put(self, config_key: str, result: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class Engine(Protocol):
    """engine.run_experiment's signature; tests inject fakes through DemoRunner(engine=...)."""

    def __call__(
        self,
        config: DemoConfig,
        device: str = ...,
        *,
        on_progress: Progress | None = ...,
        should_stop: Callable[[], bool] | None = ...,
    ) -> dict[str, Any]: ...


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
    ) -> None:
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
        if max_running < 1 or max_queued < 0 or cache_size < 0 or time_budget_s <= 0:
            raise ValueError("max_running >= 1, max_queued >= 0, cache_size >= 0, budget > 0")
        self.requested_device = device
        self.max_running, self.max_queued = max_running, max_queued
        self.time_budget_s, self.cache_size = time_budget_s, cache_size
        self.threads = threads  # torch CPU threads per run; None: engine.default_threads()
        self._engine = engine
        self._store = store  # shared second-level cache (the database), or None
        self._torch_version: str | None = None
        self._lock = threading.Lock()  # guards the counters and the cache
        self._init_lock = threading.Lock()  # one thread imports torch and picks the device
        self._running = 0
        self._queued = 0
        self._avg_run_s = 1.0  # moving average of run times, for Retry-After
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=max_running, thread_name_prefix="demo-run")
        self._closed = threading.Event()  # set by shutdown(); warm-up stops at the next run
        self._torch_ready = False
        self._device: str | None = None
        self._device_error: str | None = None
        self._run_fn: Engine | None = None
        self._warmup: threading.Thread | None = None

    # ------------------------------------------------------------------ torch and device

    def _ensure_torch(self) -> Engine:
        """Import torch and the engine, pick the device (once); the engine to call."""
        with self._init_lock:
            if self._run_fn is None:
                import functools

                import torch

                from app.demo import engine

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
                self._run_fn = self._engine or functools.partial(
                    engine.run_experiment, threads=self.threads
                )
                self._torch_ready = True
        if self._device_error is not None:
            raise DemoDeviceError(self._device_error)
        return self._run_fn

    def start_warmup(self, configs: Iterable[DemoConfig] = ()) -> None:
        """Import torch, pick the device and run `configs` into the cache, in the background.

        Returns at once; pages never wait for it. Warm-up runs go through the gate but skip
        (rather than queue) when it is busy."""
        todo = list(configs)

        def warm() -> None:
            try:
                self._ensure_torch()
            except DemoDeviceError as exc:
                log.error("demo warm-up: %s", exc)
                return
            for config in todo:
                if self._closed.is_set():  # the app is shutting down: stop quietly
                    return
                if self._cache_get(config.cache_key()) is not None:
                    continue
                if self._store is not None and self._device and self._torch_version:
                    stored = self._store.get(config.cache_key(), self._torch_version, self._device)
                    if stored is not None:  # another worker computed it already
                        self._cache_put(config.cache_key(), stored)
                        continue
                try:
                    self._admit()
                except GateFull:
                    continue
                try:
                    self._submit(config, None, threading.Event()).result()
                except Exception as exc:  # a warm-up failure must not kill the thread
                    log.warning("demo warm-up run %s failed: %s", config.cache_key(), exc)

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
        """Stop accepting work; queued runs are dropped, running ones finish."""
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
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
        self, config: DemoConfig, emit: Progress | None, cancel: threading.Event
    ) -> Future[dict[str, Any]]:
        """Hand an admitted run to the pool (which queues it until a slot frees)."""
        try:
            return self._pool.submit(self._work, config, emit, cancel)
        except RuntimeError:  # the pool is shut down
            with self._lock:
                self._queued -= 1
            raise

    def _cache_get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    async def _shared_get(self, config: DemoConfig) -> dict[str, Any] | None:
        """A result another worker stored, once this one knows its torch version and device."""
        if self._store is None or self._device is None or self._torch_version is None:
            return None
        key = config.cache_key()
        stored = await asyncio.to_thread(self._store.get, key, self._torch_version, self._device)
        if stored is not None:
            self._cache_put(key, stored)
        return stored

    def _cache_put(self, key: str, result: dict[str, Any]) -> None:
        if self.cache_size == 0:
            return
        with self._lock:
            self._cache[key] = result
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    # ------------------------------------------------------------------ the work

    def _work(
        self, config: DemoConfig, emit: Progress | None, cancel: threading.Event
    ) -> dict[str, Any]:
        """Runs on a pool thread: one experiment, under the time budget."""
        with self._lock:
            self._queued -= 1
            self._running += 1
        start = time.monotonic()
        try:
            if cancel.is_set():
                raise RunCancelled("the client went away before the run started")
            run_fn = self._ensure_torch()
            assert self._device is not None
            # the budget is for training; the one-off torch import does not count against it
            deadline = time.monotonic() + self.time_budget_s
            timed_out = False

            def should_stop() -> bool:
                nonlocal timed_out
                if cancel.is_set():
                    return True
                if time.monotonic() > deadline:
                    timed_out = True
                    return True
                return False

            try:
                result = run_fn(config, self._device, on_progress=emit, should_stop=should_stop)
            except RunCancelled as exc:
                if timed_out:
                    raise RunTimedOut(
                        f"the run exceeded its wall-clock budget of {self.time_budget_s:g} s "
                        "and was stopped; lower steps, depth, width or batch_size"
                    ) from exc
                raise
            except Exception as exc:
                if _is_out_of_memory(exc):
                    _release_device_memory()
                    raise DemoDeviceError(
                        f"the {self._device} device ran out of memory for this run; lower "
                        "depth, width or batch_size, or retry when the demo is less busy"
                    ) from exc
                raise
            self._cache_put(config.cache_key(), result)
            if self._store is not None:
                self._store.put(config.cache_key(), result)
            return result
        finally:
            elapsed = time.monotonic() - start
            with self._lock:
                self._running -= 1
                self._avg_run_s = 0.8 * self._avg_run_s + 0.2 * elapsed

    async def run(
        self,
        config: DemoConfig,
        *,
        on_progress: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
        is_disconnected: Callable[[], Awaitable[bool]] | None = None,
    ) -> dict[str, Any]:
        """The result for `config` (with `cached`), from the cache or from a fresh run.

        Progress events are awaited on the caller's loop, in order. Raises GateFull,
        RunTimedOut, RunCancelled or DemoDeviceError."""
        hit = self._cache_get(config.cache_key())
        if hit is None:
            hit = await self._shared_get(config)
        if hit is not None:
            return copy.deepcopy(hit) | {"cached": True}
        self._admit()
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        cancel = threading.Event()
        emit: Progress | None = None
        if on_progress is not None:

            def emit(event: dict[str, Any]) -> None:  # on the worker thread
                loop.call_soon_threadsafe(events.put_nowait, event)

        fut = asyncio.wrap_future(self._submit(config, emit, cancel))
        getter: asyncio.Future[dict[str, Any]] | None = None
        try:
            while True:
                # the worker queues its events before the result (call_soon_threadsafe is
                # FIFO), so once fut is done every event is already in `events`
                while on_progress is not None and not events.empty():
                    await on_progress(events.get_nowait())
                if fut.done():
                    return fut.result() | {"cached": False}
                getter = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait(
                    {fut, getter}, timeout=POLL_S, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    event = getter.result()
                    if on_progress is not None:
                        await on_progress(event)
                else:
                    getter.cancel()
                getter = None
                if is_disconnected is not None and not fut.done() and await is_disconnected():
                    cancel.set()
        except BaseException:
            # the caller was cancelled, on_progress raised, or the run failed: make sure the
            # worker stops at its next step and its outcome is not reported as unretrieved
            cancel.set()
            if getter is not None:
                getter.cancel()
            fut.add_done_callback(_retrieve)
            raise


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


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
