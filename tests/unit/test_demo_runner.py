"""The demo runner: cache, progress order, gate, cancellation, time budget, device errors,
warm-up. Time-dependent behaviour is driven by tests.demo_fixtures.ControlledEngine (a step
runs when the test allows it) and FakeClock; a few tests run the real engine on a tiny net."""

from __future__ import annotations

import asyncio
import typing
from collections.abc import AsyncGenerator, Callable

import pytest
import torch

from app.demo.errors import RunCancelled
from app.demo.experiment import execute
from app.demo.result import DemoResult, Progress
from app.demo.runner import DemoDeviceError, DemoRunner, GateFull, Run, RunTimedOut
from tests.demo_fixtures import ControlledEngine, FakeClock, eventually, small

MakeRunner = Callable[..., DemoRunner]


async def read(run: Run) -> list[Progress | DemoResult]:
    return [item async for item in run.events()]


async def result_of(run: Run) -> DemoResult:
    items = await read(run)
    assert items and isinstance(items[-1], DemoResult), items
    return items[-1]


def idle(runner: DemoRunner) -> bool:
    status = runner.status()
    return bool(status["running"] == 0 and status["queued"] == 0)


# ----------------------------------------------------------------------------- cache


def test_second_identical_run_is_served_from_the_cache(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()
    controlled_engine.release()

    async def scenario() -> tuple[DemoResult, DemoResult]:
        first = await runner.result(*small())
        second = await runner.result(*small())  # an equal, separately validated request
        return first, second

    first, second = asyncio.run(scenario())
    assert controlled_engine.calls == 1  # the second never reached the engine
    assert first.cached is False and second.cached is True
    assert second.variants and second.variants == first.variants
    assert second.config == first.config and first.device == "cpu"
    status = runner.status()
    assert status["cache_entries"] == 1 and idle(runner)
    assert status["torch_ready"] is True and status["device"] == "cpu"


def test_a_cached_answer_says_so_and_leaves_the_cache_entry_as_computed(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()
    controlled_engine.release()

    async def scenario() -> tuple[DemoResult, DemoResult, DemoResult]:
        first = await runner.result(*small())
        second = await runner.result(*small())
        third = await runner.result(*small())
        return first, second, third

    first, second, third = asyncio.run(scenario())
    assert first.cached is False and second.cached is True and third.cached is True
    assert second.variants == first.variants and second is not first
    assert len(controlled_engine.runs) == 1, "the cache answered the second and third"


def test_cache_is_a_bounded_lru(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner(cache_size=2)
    controlled_engine.release()

    async def cached(seed: int) -> bool:
        return (await runner.result(*small(seed=seed, steps=0))).cached

    async def scenario() -> list[bool]:
        return [
            await cached(0),
            await cached(1),
            await cached(0),  # a hit: seed 0 is now the most recently used
            await cached(2),  # evicts seed 1, the least recently used
            await cached(0),
            await cached(1),
        ]

    assert asyncio.run(scenario()) == [False, False, True, False, True, False]
    assert runner.status()["cache_entries"] == 2
    assert controlled_engine.calls == 4


def test_a_real_run_is_cached_with_its_device_and_auto_falls_back_to_the_cpu() -> None:
    runner = DemoRunner(device="auto", clock=FakeClock())  # real engine, no budget
    try:
        assert runner.status()["device"] is None  # nothing resolved before torch is loaded
        experiment, params = small(steps=3)
        first = asyncio.run(runner.result(experiment, params))
        second = asyncio.run(runner.result(*small(steps=3)))
        want = "cuda" if torch.cuda.is_available() else "cpu"
        assert first.device == want and runner.status()["device"] == want
        assert first.cached is False and second.cached is True
        assert first.variants and second.variants == first.variants
        assert [len(v.loss or []) for v in first.variants] == [4, 4]
    finally:
        runner.shutdown()
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda"):
        DemoRunner(device="tpu")


# ----------------------------------------------------------------------------- progress


def test_progress_items_arrive_in_order_then_the_result(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()
    controlled_engine.release()

    async def scenario() -> list[Progress | DemoResult]:
        return await read(await runner.open(*small(steps=7)))

    items = asyncio.run(scenario())
    assert items, "the run yielded nothing"
    *progress, result = items
    assert isinstance(result, DemoResult) and result.cached is False
    assert all(isinstance(p, Progress) for p in progress)
    assert [p.step for p in progress if isinstance(p, Progress)] == list(range(8))
    assert {p.total_steps for p in progress if isinstance(p, Progress)} == {7}


def test_the_real_engine_reports_progress_at_every_recorded_step() -> None:
    runner = DemoRunner(device="cpu", clock=FakeClock())  # real engine, no budget
    try:

        async def scenario() -> list[Progress | DemoResult]:
            return await read(await runner.open(*small(steps=20)))

        *progress, result = asyncio.run(scenario())
    finally:
        runner.shutdown()
    assert isinstance(result, DemoResult) and result.variants
    recorded = [s.step for s in result.variants[0].recorded_steps or []]
    assert recorded and recorded[0] == 0 and recorded[-1] == 20
    assert [p.step for p in progress if isinstance(p, Progress)] == recorded
    assert all(isinstance(p, Progress) and p.charts for p in progress)


# ----------------------------------------------------------------------------- the gate


def test_a_full_gate_refuses_at_once_and_cached_answers_bypass_it(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    """1 running + 1 queued: a third run is refused with a retry time; a cached one is not."""
    runner = make_runner(max_running=1, max_queued=1)
    quick = small(seed=9, steps=0)

    async def scenario() -> None:
        controlled_engine.allow(1)
        assert (await runner.result(*quick)).cached is False
        running = await runner.open(*small(seed=1))
        assert await asyncio.to_thread(controlled_engine.wait_started, 2)
        queued = await runner.open(*small(seed=2))
        assert runner.status()["running"] == 1 and runner.status()["queued"] == 1
        with pytest.raises(GateFull) as full:
            await runner.open(*small(seed=3))
        assert full.value.retry_after_s >= 1
        assert "busy" in str(full.value) and f"{full.value.retry_after_s} s" in str(full.value)
        assert (await runner.result(*quick)).cached is True  # never touches the gate
        controlled_engine.release()
        assert (await result_of(running)).config["seed"] == 1
        assert (await result_of(queued)).config["seed"] == 2
        assert (await runner.result(*small(seed=3))).cached is False  # admitted now

    asyncio.run(scenario())
    assert idle(runner)
    assert controlled_engine.calls == 4


def test_shutdown_stops_a_running_run(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()

    async def scenario() -> None:
        run = await runner.open(*small())
        assert await asyncio.to_thread(controlled_engine.wait_started, 1)
        runner.shutdown()
        with pytest.raises(RunCancelled):
            await read(run)

    asyncio.run(scenario())
    assert controlled_engine.runs[0].stopped_at == 0


# ----------------------------------------------------------------------------- cancellation


def test_a_disconnected_client_stops_the_run_before_its_next_step(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()
    controlled_engine.allow(3)  # steps 0, 1 and 2; step 3 waits for the test
    seen: list[int] = []

    async def is_disconnected() -> bool:
        return 2 in seen  # the client leaves once it has seen step 2

    async def scenario() -> None:
        run = await runner.open(*small(steps=50))
        with pytest.raises(RunCancelled):
            async for item in run.events(is_disconnected):
                assert isinstance(item, Progress), item
                seen.append(item.step)

    asyncio.run(scenario())
    engine_run = controlled_engine.runs[0]
    assert engine_run.done.wait(5)
    assert seen == [0, 1, 2]
    assert engine_run.steps == [0, 1, 2] and engine_run.stopped_at == 3
    assert eventually(lambda: idle(runner))


def test_a_reader_that_stops_reading_stops_the_run(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()
    controlled_engine.allow(2)

    async def scenario() -> None:
        run = await runner.open(*small(steps=50))
        events = typing.cast(AsyncGenerator[Progress | DemoResult, None], run.events())
        first = await anext(events)
        assert isinstance(first, Progress) and first.step == 0
        assert await asyncio.to_thread(controlled_engine.wait_steps, 2)
        await events.aclose()  # e.g. the response stream was closed

    asyncio.run(scenario())
    engine_run = controlled_engine.runs[0]
    assert engine_run.done.wait(10), "the run kept going after its reader left"
    assert engine_run.stopped_at == 2 and engine_run.steps == [0, 1]
    assert eventually(lambda: idle(runner))


def test_cancelling_the_awaiting_task_stops_the_worker(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()
    controlled_engine.allow(5)

    async def scenario() -> None:
        task = asyncio.ensure_future(runner.result(*small(steps=50)))
        assert await asyncio.to_thread(controlled_engine.wait_steps, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    engine_run = controlled_engine.runs[0]
    assert engine_run.done.wait(10), "the worker kept going after its task was cancelled"
    assert engine_run.stopped_at == 5 and len(engine_run.steps) == 5
    assert eventually(lambda: idle(runner))


# ----------------------------------------------------------------------------- the time budget


def test_the_time_budget_stops_a_run_within_a_step() -> None:
    clock = FakeClock()
    engine = ControlledEngine(clock=clock, tick_s=1.0)  # every step takes 1 s of fake time
    engine.release()
    runner = DemoRunner(device="cpu", engine=engine, clock=clock, time_budget_s=5)
    try:
        with pytest.raises(RunTimedOut, match="wall-clock budget of 5 s"):
            asyncio.run(runner.result(*small(steps=100)))
        # steps 0-5 ran (clock 0 to 5 s when each started); step 6 would start at 6 s > 5 s
        assert engine.runs[0].steps == list(range(6)) and engine.runs[0].stopped_at == 6
        assert eventually(lambda: idle(runner))
        # the runner is still usable, and the stopped run was not cached
        again = asyncio.run(runner.result(*small(steps=3)))
        assert again.cached is False and runner.status()["cache_entries"] == 1
    finally:
        runner.shutdown()


def test_the_time_budget_stops_the_real_engine() -> None:
    """The real engine checks the budget before every step: with a clock that passes the
    deadline after three steps, it stops long before its first recorded step after 0."""
    ticks = iter(range(10**6))
    runner = DemoRunner(device="cpu", clock=lambda: float(next(ticks)), time_budget_s=3.5)
    steps: list[int] = []

    async def scenario() -> None:
        run = await runner.open(*small(steps=100))
        async for item in run.events():
            assert isinstance(item, Progress), item
            steps.append(item.step)

    try:
        with pytest.raises(RunTimedOut, match="wall-clock budget of 3.5 s"):
            asyncio.run(scenario())
    finally:
        runner.shutdown()
    assert steps == [0]  # progress at initialization; the next recorded step is 20
    assert runner.status()["cache_entries"] == 0


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "oom",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUDA error: out of memory"),
    ],
    ids=["OutOfMemoryError", "RuntimeError"],
)
def test_out_of_memory_becomes_a_device_error_and_the_next_run_succeeds(
    make_runner: MakeRunner, controlled_engine: ControlledEngine, oom: Exception
) -> None:
    runner = make_runner()
    controlled_engine.failures.append(oom)
    controlled_engine.release()
    with pytest.raises(DemoDeviceError, match="ran out of memory"):
        asyncio.run(runner.result(*small()))
    result = asyncio.run(runner.result(*small()))
    assert result.cached is False and result.variants
    assert controlled_engine.calls == 2 and idle(runner)


def test_other_engine_errors_propagate_unchanged(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()
    controlled_engine.failures.append(ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        asyncio.run(runner.result(*small()))
    assert idle(runner) and runner.status()["cache_entries"] == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda_fails_clearly(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner(device="cuda")
    controlled_engine.release()
    with pytest.raises(DemoDeviceError, match="no CUDA device"):
        asyncio.run(runner.result(*small()))
    status = runner.status()
    assert status["torch_ready"] is True and status["device"] is None
    assert "no CUDA device" in status["error"] and "'auto' or 'cpu'" in status["error"]
    assert controlled_engine.calls == 0  # it never silently ran on the CPU


# ----------------------------------------------------------------------------- warm-up


def test_warmup_runs_in_the_background_and_fills_the_cache(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()
    wanted = [small(seed=5), small(seed=6)]
    runner.start_warmup(wanted)
    # start_warmup returned while its first run is still waiting for the test
    assert controlled_engine.wait_started(1)
    assert runner.status()["cache_entries"] == 0
    controlled_engine.release()
    assert eventually(lambda: runner.status()["cache_entries"] == 2)
    assert eventually(lambda: idle(runner))
    result = asyncio.run(runner.result(*small(seed=6)))
    assert result.cached is True and result.config["seed"] == 6
    assert controlled_engine.calls == 2


def test_warmup_skips_rather_than_queues_when_the_gate_is_full(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner(max_running=1, max_queued=0)

    async def scenario() -> None:
        busy = await runner.open(*small(seed=1))
        assert await asyncio.to_thread(controlled_engine.wait_started, 1)
        runner.start_warmup([small(seed=2)])
        assert runner._warmup is not None
        await asyncio.to_thread(runner._warmup.join, 20)
        assert not runner._warmup.is_alive()
        controlled_engine.release()
        assert (await result_of(busy)).config["seed"] == 1

    asyncio.run(scenario())
    assert controlled_engine.calls == 1  # the warm-up run was skipped, not queued
    assert runner.status()["cache_entries"] == 1


def test_execute_is_the_default_engine() -> None:
    """The runner's own engine is experiment.execute: its numbers, not a stand-in's."""
    runner = DemoRunner(device="cpu", clock=FakeClock())  # real engine, no budget
    try:
        experiment, params = small(steps=2, seed=4)
        got = asyncio.run(runner.result(experiment, params))
    finally:
        runner.shutdown()
    want = execute(experiment, params)
    assert got.variants and got.variants == want.variants
    assert got.torch_version == torch.__version__
