"""The demo runner: cache, gate, cancellation, time budget, device errors, warm-up."""

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from app.demo.engine import run_experiment
from app.demo.presets import DemoConfig, resolve_config
from app.demo.runner import (
    DemoDeviceError,
    DemoRunner,
    GateFull,
    RunCancelled,
    RunTimedOut,
)


def small(seed: int = 0, steps: int = 10, **params: object) -> DemoConfig:
    base = {"depth": 4, "width": 8, "batch_size": 8, "steps": steps, "seed": seed}
    return resolve_config("residual-vs-plain", {k: str(v) for k, v in (base | params).items()})


def endless() -> DemoConfig:
    """Far more steps than the budget allows: only for the stand-in engine."""
    return dataclasses.replace(small(), steps=10_000)


def long_real() -> DemoConfig:
    """A real run of several seconds (within the compute budget)."""
    return small(steps=900, depth=16, width=64, batch_size=64)


def slow_engine(step_s: float, seen: list[int] | None = None) -> Callable[..., dict[str, Any]]:
    """A stand-in engine: steps of step_s seconds, checking should_stop before each."""

    def engine(
        config: DemoConfig, device: str = "cpu", *, on_progress: Any = None, should_stop: Any = None
    ) -> dict[str, Any]:
        for step in range(config.steps + 1):
            if should_stop is not None and should_stop():
                from app.demo.errors import RunCancelled

                raise RunCancelled(f"stopped at step {step}")
            if seen is not None:
                seen.append(step)
            if on_progress is not None:
                on_progress({"step": step})
            time.sleep(step_s)
        return {"config": config.as_dict(), "device": device, "variants": []}

    return engine


def test_second_identical_run_is_served_from_the_cache() -> None:
    runner = DemoRunner(device="cpu")
    config = small()
    first = asyncio.run(runner.run(config))
    t0 = time.perf_counter()
    second = asyncio.run(runner.run(small()))  # an equal, separately built config
    assert time.perf_counter() - t0 < 0.05
    assert first["cached"] is False and second["cached"] is True
    assert second["variants"] == first["variants"]
    assert first["device"] == "cpu"
    status = runner.status()
    assert status["cache_entries"] == 1 and status["running"] == status["queued"] == 0
    assert status["torch_ready"] is True and status["device"] == "cpu"
    second["variants"].clear()  # callers get copies
    assert asyncio.run(runner.run(config))["variants"]
    runner.shutdown()


def test_cache_is_bounded() -> None:
    runner = DemoRunner(device="cpu", cache_size=2)
    for seed in range(3):
        asyncio.run(runner.run(small(seed=seed, steps=0)))
    assert runner.status()["cache_entries"] == 2
    assert asyncio.run(runner.run(small(seed=0, steps=0)))["cached"] is False
    runner.shutdown()


def test_progress_events_arrive_on_the_loop_in_order() -> None:
    runner = DemoRunner(device="cpu")
    events: list[dict[str, Any]] = []
    loop_threads: set[int] = set()

    async def on_progress(event: dict[str, Any]) -> None:
        loop_threads.add(threading.get_ident())
        events.append(event)

    result = asyncio.run(runner.run(small(steps=40), on_progress=on_progress))
    steps = [e["step"] for e in events]
    assert steps == [s["step"] for s in result["variants"][0]["recorded_steps"]]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == 40
    assert loop_threads == {threading.get_ident()}  # asyncio.run's loop runs on this thread
    runner.shutdown()


@pytest.mark.slow
def test_gate_full_with_real_runs_from_threads() -> None:
    """1 running + 1 queued: of four simultaneous real runs, two are refused with 503."""
    runner = DemoRunner(device="cpu", max_running=1, max_queued=1, time_budget_s=30)
    asyncio.run(runner.run(small(seed=99, steps=0)))  # torch and the device are ready
    outcomes: list[object] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def client(seed: int) -> None:
        start.wait()
        try:
            out: object = asyncio.run(runner.run(small(seed=seed, steps=600, depth=8)))
        except GateFull as exc:
            out = exc
        with lock:
            outcomes.append(out)

    threads = [threading.Thread(target=client, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    full = [o for o in outcomes if isinstance(o, GateFull)]
    done = [o for o in outcomes if isinstance(o, dict)]
    assert len(full) == 2 and len(done) == 2, outcomes
    assert all(o.retry_after_s >= 1 for o in full)
    assert "busy" in str(full[0])
    assert runner.status()["running"] == runner.status()["queued"] == 0
    # a cached answer never touches the gate
    assert asyncio.run(runner.run(small(seed=99, steps=0)))["cached"] is True
    runner.shutdown()


def test_cached_answers_bypass_a_full_gate() -> None:
    seen: list[int] = []
    runner = DemoRunner(device="cpu", max_running=1, max_queued=0, engine=slow_engine(0.02, seen))
    quick = small(seed=1, steps=0)
    asyncio.run(runner.run(quick))

    async def scenario() -> None:
        busy = asyncio.ensure_future(runner.run(small(seed=2, steps=100)))
        while not seen or seen[-1] < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(GateFull):
            await runner.run(small(seed=3, steps=1))
        assert (await runner.run(quick))["cached"] is True
        busy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await busy

    asyncio.run(scenario())
    runner.shutdown()


def test_disconnect_stops_the_run_within_a_few_steps() -> None:
    seen: list[int] = []
    runner = DemoRunner(device="cpu", engine=slow_engine(0.01, seen))
    gone_at: list[int] = []

    async def is_disconnected() -> bool:
        if len(seen) >= 10 and not gone_at:
            gone_at.append(len(seen))
        return bool(gone_at)

    with pytest.raises(RunCancelled):
        asyncio.run(runner.run(endless(), is_disconnected=is_disconnected))
    # polled every 50 ms at 10 ms a step: stopped a handful of steps after the disconnect
    assert len(seen) - gone_at[0] <= 10
    time.sleep(0.05)
    assert runner.status()["running"] == 0
    runner.shutdown()


def test_disconnect_stops_a_real_run() -> None:
    runner = DemoRunner(device="cpu")
    progress: list[int] = []

    async def on_progress(event: dict[str, Any]) -> None:
        progress.append(event["step"])

    async def is_disconnected() -> bool:
        return bool(progress)  # gone right after the first event

    t0 = time.perf_counter()
    with pytest.raises(RunCancelled):
        asyncio.run(
            runner.run(long_real(), on_progress=on_progress, is_disconnected=is_disconnected)
        )
    assert time.perf_counter() - t0 < 2.0  # the full run takes several seconds
    assert progress == [0]
    runner.shutdown()


def test_cancelling_the_awaiting_task_stops_the_worker() -> None:
    seen: list[int] = []
    runner = DemoRunner(device="cpu", engine=slow_engine(0.01, seen))

    async def scenario() -> None:
        task = asyncio.ensure_future(runner.run(endless()))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    time.sleep(0.1)
    n = len(seen)
    time.sleep(0.1)
    assert len(seen) == n < 100  # the worker stopped too
    assert runner.status()["running"] == 0
    runner.shutdown()


def test_time_budget_stops_a_real_run() -> None:
    runner = DemoRunner(device="cpu", time_budget_s=0.3)
    t0 = time.perf_counter()
    with pytest.raises(RunTimedOut, match="wall-clock budget of 0.3 s"):
        asyncio.run(runner.run(long_real()))
    assert time.perf_counter() - t0 < 1.5
    assert runner.status()["running"] == 0
    # the runner is still usable, and the stopped run was not cached
    assert asyncio.run(runner.run(small(steps=0)))["cached"] is False
    runner.shutdown()


def test_out_of_memory_becomes_a_device_error_and_the_next_run_succeeds() -> None:
    calls = 0

    def flaky(config: DemoConfig, device: str = "cpu", **kw: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return run_experiment(config, device, **kw)

    runner = DemoRunner(device="cpu", engine=flaky)
    with pytest.raises(DemoDeviceError, match="ran out of memory"):
        asyncio.run(runner.run(small()))
    result = asyncio.run(runner.run(small()))
    assert result["cached"] is False and result["variants"]
    assert runner.status()["running"] == 0
    runner.shutdown()


def test_other_engine_errors_propagate_unchanged() -> None:
    def broken(config: DemoConfig, device: str = "cpu", **kw: Any) -> dict[str, Any]:
        raise ValueError("boom")

    runner = DemoRunner(device="cpu", engine=broken)
    with pytest.raises(ValueError, match="boom"):
        asyncio.run(runner.run(small()))
    assert runner.status()["running"] == runner.status()["queued"] == 0
    runner.shutdown()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda_fails_clearly() -> None:
    runner = DemoRunner(device="cuda")
    runner.start_warmup([])
    with pytest.raises(DemoDeviceError, match="no CUDA device"):
        asyncio.run(runner.run(small()))
    status = runner.status()
    assert status["torch_ready"] is True and status["device"] is None
    assert "no CUDA device" in status["error"]
    runner.shutdown()


def test_auto_falls_back_to_the_cpu_and_bad_devices_are_refused() -> None:
    runner = DemoRunner(device="auto")
    assert runner.status()["device"] is None  # nothing resolved before torch is loaded
    result = asyncio.run(runner.run(small(steps=0)))
    assert result["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    runner.shutdown()
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda"):
        DemoRunner(device="tpu")


def test_warmup_runs_in_the_background_and_fills_the_cache() -> None:
    runner = DemoRunner(device="cpu")
    configs = [small(seed=5, steps=5), small(seed=6, steps=5)]
    t0 = time.perf_counter()
    runner.start_warmup(configs)
    assert time.perf_counter() - t0 < 0.1  # returns at once
    deadline = time.monotonic() + 30
    while runner.status()["cache_entries"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert runner.status()["cache_entries"] == 2
    assert asyncio.run(runner.run(small(seed=6, steps=5)))["cached"] is True
    runner.shutdown()
