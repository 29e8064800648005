"""The demo runner (app/demo/runner.py): cache, single flight, the fair queue and its
per-client cap, queue positions, Last-Event-ID replay, cancellation when the last listener
leaves, the time budget, errors, warm-up; and its parts (FairQueue, client_of, LiveRun).

Runs execute on a ThreadExecutor with tests.demo_fixtures.ControlledEngine: a step runs only
when the test allows it, so what runs, waits or stops is decided by the test, never by the
machine's speed. A FakeClock moves only when the engine ticks it. The runner's API is async:
each test runs one coroutine with asyncio.run (a LiveRun lives on its loop); waits for the
worker threads go through asyncio.to_thread so the loop keeps relaying their events, and
have failsafe timeouts only a broken feature reaches."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.requests import Request

from app.demo.errors import ClientOverCap, GateFull, NoWorkers
from app.demo.experiment import execute
from app.demo.fairness import BACKGROUND, FairQueue, client_of
from app.demo.live import LiveRun, RunEvent, parse_last_event_id
from app.demo.pool import WorkerPool
from app.demo.result import DemoResult
from app.demo.runner import DemoRunner, Opened
from tests.demo_fixtures import (
    FAILSAFE_S,
    ControlledEngine,
    FakeClock,
    eventually,
    small,
    thread_runner,
)

MakeRunner = Callable[..., DemoRunner]
STEPS = 10  # small()'s default: the controlled engine runs STEPS + 1 steps (0..STEPS)


# ----------------------------------------------------------------------------- helpers


def live(opened: Opened) -> LiveRun:
    assert opened.run is not None, f"no run to follow: {opened}"
    return opened.run


async def follow_all(run: LiveRun, skip: int = 0) -> list[RunEvent]:
    """Every event from the (skip+1)th to the terminal one."""
    return [event async for event in run.follow(skip)]


async def finish(opened: Opened) -> list[RunEvent]:
    """Follow a run to its end; the events must end with its result."""
    events = await follow_all(live(opened))
    assert events and events[-1].event == "result", kinds(events)
    return events


def kinds(events: list[RunEvent]) -> list[str]:
    return [e.event for e in events]


def steps_of(events: list[RunEvent]) -> list[int]:
    return [e.data["step"] for e in events if e.event == "progress"]


def positions(run: LiveRun) -> list[int]:
    """The positions the run's `queued` events announced, in order."""
    return [e.data["position"] for e in run.events if e.event == "queued"]


def seeds(engine: ControlledEngine) -> list[int]:
    """The seed of every run the engine was called for, in the order they started."""
    return [int(r.params.seed) for r in engine.runs]


async def started(engine: ControlledEngine, n: int) -> None:
    assert await asyncio.to_thread(engine.wait_started, n), f"run {n} never reached the engine"


async def stepped(engine: ControlledEngine, n: int) -> None:
    assert await asyncio.to_thread(engine.wait_steps, n), f"the run never ran {n} steps"


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait on the loop for what the workers' relayed events make true."""
    deadline = time.monotonic() + FAILSAFE_S
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.005)


async def ended(run: LiveRun) -> RunEvent:
    await until(lambda: run.finished, f"run {run.serial} never ended")
    return run.events[-1]


def idle(runner: DemoRunner) -> bool:
    """Nothing waits or runs. A worker thread frees its slot just after relaying the
    result, so check it with eventually() (or until() on the loop)."""
    status = runner.status()
    return bool(status["queue"] == 0 and status["in_flight"] == 0 and status["busy"] == 0)


# ----------------------------------------------------------------------------- cache


def test_a_second_identical_request_is_answered_from_the_cache_as_computed(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()
    controlled_engine.release()

    async def scenario() -> tuple[Opened, list[RunEvent], Opened, Opened]:
        first = await runner.open(*small(), client="a")
        events = await finish(first)
        second = await runner.open(*small(), client="b")  # equal, separately validated
        third = await runner.open(*small(), client="a")
        return first, events, second, third

    first, events, second, third = asyncio.run(scenario())
    assert first.source == "computed" and first.result is None
    assert controlled_engine.calls == 1, "the cache answered the second and third"
    computed = DemoResult.model_validate(events[-1].data)
    for hit in (second, third):
        assert hit.source == "cache" and hit.run is None and hit.result is not None
        # the entry stays as computed: the route says "cache" on a copy, not in the entry
        assert hit.result == computed
        assert hit.result.source == "computed" and hit.result.cached is False
    assert computed.variants and computed.config["seed"] == 0 and computed.device == "cpu"
    status = runner.status()
    assert status["cache_entries"] == 1 and eventually(lambda: idle(runner))


def test_the_cache_is_a_bounded_lru(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner(cache_size=2)
    controlled_engine.release()

    async def source(seed: int) -> str:
        opened = await runner.open(*small(seed=seed, steps=0), client="a")
        if opened.run is not None:
            await finish(opened)
        return opened.source

    async def scenario() -> list[str]:
        return [
            await source(0),
            await source(1),
            await source(0),  # a hit: seed 0 is now the most recently used
            await source(2),  # evicts seed 1, the least recently used
            await source(0),
            await source(1),
        ]

    got = asyncio.run(scenario())
    assert got == ["computed", "computed", "cache", "computed", "cache", "computed"]
    assert runner.status()["cache_entries"] == 2
    assert seeds(controlled_engine) == [0, 1, 2, 1]


# ----------------------------------------------------------------------------- events


def test_a_run_is_queued_then_progress_in_order_then_one_result(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()
    controlled_engine.release()

    async def scenario() -> tuple[LiveRun, list[RunEvent], list[RunEvent]]:
        run = live(await runner.open(*small(steps=7), client="a"))
        events = await follow_all(run)
        return run, events, await follow_all(run)  # a later reader gets the same log

    run, events, again = asyncio.run(scenario())
    assert kinds(events) == ["queued"] + ["progress"] * 8 + ["result"]
    assert events[0].data == {"position": 1, "workers": 1, "busy": 0}
    assert steps_of(events) == list(range(8))
    assert {e.data["total_steps"] for e in events if e.event == "progress"} == {7}
    assert [e.id for e in events] == [f"{run.serial}.{i}" for i in range(1, 11)]
    result = DemoResult.model_validate(events[-1].data)
    assert result.config["steps"] == 7 and result.variants
    assert again == events


def test_the_first_event_is_the_queue_position_before_any_worker_step(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    """Every run's first event is `queued` with its 1-based place, there at once while the
    engine is blocked; a run's position is announced again when a run ahead of it starts."""
    runner = make_runner()  # one slot

    async def scenario() -> tuple[LiveRun, LiveRun, LiveRun]:
        r1 = live(await runner.open(*small(seed=1), client="a"))
        reader = r1.follow()
        first = await asyncio.wait_for(anext(reader), FAILSAFE_S)  # no step allowed yet
        assert first.event == "queued" and first.id == f"{r1.serial}.1"
        assert first.data == {"position": 1, "workers": 1, "busy": 0}
        await started(controlled_engine, 1)  # r1 holds the only slot, blocked before step 0
        r2 = live(await runner.open(*small(seed=2), client="b"))
        r3 = live(await runner.open(*small(seed=3), client="c"))
        # published by open() itself, before any step of any worker
        assert kinds(r2.events) == ["queued"] and kinds(r3.events) == ["queued"]
        assert r2.events[0].data == {"position": 1, "workers": 1, "busy": 1}
        assert r3.events[0].data == {"position": 2, "workers": 1, "busy": 1}
        assert controlled_engine.runs[0].steps == []
        readers = [asyncio.ensure_future(follow_all(r)) for r in (r2, r3)]
        controlled_engine.allow(STEPS + 1)  # r1 runs to its end; r2 starts, blocked
        assert kinds([e async for e in reader])[-1] == "result"
        await started(controlled_engine, 2)
        await until(lambda: positions(r3) == [2, 1], "r3 re-announced as first in line")
        assert positions(r2) == [1]  # announced again only when it changes
        assert kinds(r3.events) == ["queued", "queued"]
        controlled_engine.release()
        for task in readers:
            assert kinds(await task)[-1] == "result"
        return r1, r2, r3

    r1, r2, r3 = asyncio.run(scenario())
    assert kinds(r1.events)[:2] == ["queued", "progress"]
    assert kinds(r2.events)[:2] == ["queued", "progress"]
    assert kinds(r3.events)[:3] == ["queued", "queued", "progress"]
    assert seeds(controlled_engine) == [1, 2, 3]


# ----------------------------------------------------------------------------- single flight


def test_the_same_config_asked_twice_while_it_runs_is_computed_once(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()

    async def scenario() -> tuple[list[Opened], list[list[RunEvent]], Opened]:
        first = await runner.open(*small(), client="a")
        await started(controlled_engine, 1)
        controlled_engine.allow(3)
        await stepped(controlled_engine, 3)
        second = await runner.open(*small(), client="b")  # while it runs
        third = await runner.open(*small(), client="a")  # the same client again
        readers = [asyncio.ensure_future(follow_all(live(o))) for o in (first, second, third)]
        await until(lambda: live(first).listeners == 3, "three followers")
        controlled_engine.release()
        logs = [await reader for reader in readers]
        after = await runner.open(*small(), client="c")
        return [first, second, third], logs, after

    opened, logs, after = asyncio.run(scenario())
    assert controlled_engine.calls == 1
    assert [o.source for o in opened] == ["computed", "joined", "joined"]
    assert opened[1].run is opened[0].run and opened[2].run is opened[0].run
    assert opened[1].skip == 0  # a new reader gets the whole log, from `queued`
    assert logs[0] == logs[1] == logs[2]
    assert kinds(logs[0]) == ["queued"] + ["progress"] * (STEPS + 1) + ["result"]
    result = DemoResult.model_validate(logs[0][-1].data)
    assert after.source == "cache" and after.result == result


# ----------------------------------------------------------------------------- fairness


def test_a_second_client_is_served_before_the_first_clients_second_run(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    """One slot, cap 2: A opens two runs, then B one. B's run starts second."""
    runner = make_runner(client_cap=2)

    async def scenario() -> None:
        a1 = await runner.open(*small(seed=1), client="a")
        await started(controlled_engine, 1)
        a2 = await runner.open(*small(seed=2), client="a")
        b1 = await runner.open(*small(seed=3), client="b")
        assert positions(live(b1)) == [1], "B waits behind A's second run"
        assert positions(live(a2)) == [1, 2]
        controlled_engine.release()
        for run in (a1, a2, b1):
            await finish(run)

    asyncio.run(scenario())
    assert seeds(controlled_engine) == [1, 3, 2]


def test_clients_are_served_in_turn_whatever_they_queued(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    """With the slot busy, A queues two runs before B and C queue one each: the queue takes
    one run per client in turn (A, B, C, A), and announces those positions."""
    runner = make_runner(client_cap=2)

    async def scenario() -> None:
        blocker = await runner.open(*small(seed=99), client="z")
        await started(controlled_engine, 1)
        a1 = await runner.open(*small(seed=1), client="a")
        a2 = await runner.open(*small(seed=2), client="a")
        b1 = await runner.open(*small(seed=3), client="b")
        c1 = await runner.open(*small(seed=4), client="c")
        assert [positions(live(o))[-1] for o in (a1, b1, c1, a2)] == [1, 2, 3, 4]
        assert positions(live(a2)) == [2, 3, 4]  # pushed back by each newcomer
        controlled_engine.release()
        for run in (blocker, a1, a2, b1, c1):
            await finish(run)

    asyncio.run(scenario())
    assert seeds(controlled_engine) == [99, 1, 3, 4, 2]


def test_fair_queue_serves_one_item_per_client_in_rotation_and_background_last() -> None:
    queue: FairQueue[str] = FairQueue()
    assert queue.pop() is None and queue.order() == [] and len(queue) == 0
    queue.push(BACKGROUND, "w1")  # first in, yet served last
    for client, item in [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1"), ("c", "c1")]:
        queue.push(client, item)
    queue.push(BACKGROUND, "w2")
    want = ["a1", "b1", "c1", "a2", "a3", "w1", "w2"]
    assert queue.order() == want and len(queue) == 7
    assert [queue.pop() for _ in range(8)] == [*want, None]
    assert len(queue) == 0


def test_fair_queue_sends_a_served_client_to_the_back_of_the_rotation() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.push("a", "a1")
    queue.push("a", "a2")
    queue.push("b", "b1")
    assert queue.pop() == "a1"  # a gave one: it goes behind b
    queue.push("c", "c1")
    queue.push("b", "b2")
    order = queue.order()
    # b1 first; the newcomer c is served before b's second run (at most one turn away)
    assert order[0] == "b1" and order[-1] == "b2" and set(order[1:3]) == {"a2", "c1"}
    assert queue.pop() == "b1"
    assert queue.order() == order[1:]


def test_fair_queue_move_and_remove() -> None:
    queue: FairQueue[str] = FairQueue()
    for item in ("w1", "w2", "w3"):
        queue.push(BACKGROUND, item)
    queue.push("x", "x1")
    queue.push("x", "x2")
    assert queue.order() == ["x1", "x2", "w1", "w2", "w3"]
    queue.move("w2", "y")  # a visitor joins a waiting warm-up run: it takes y's turn
    assert queue.order() == ["x1", "w2", "x2", "w1", "w3"]
    queue.move("gone", "y")  # not waiting: nothing to move, nothing added
    assert len(queue) == 5
    assert queue.remove("w2") is True and queue.remove("w2") is False
    assert queue.order() == ["x1", "x2", "w1", "w3"]
    assert queue.remove("x1") and queue.remove("x2")
    assert queue.order() == ["w1", "w3"] and queue.pop() == "w1"


@pytest.mark.parametrize("seed", range(5))
def test_fair_queue_order_is_what_pop_returns(seed: int) -> None:
    """order() (the positions announced) is exactly the sequence of pops, whatever came in."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible test sequence)
    queue: FairQueue[int] = FairQueue()
    clients = ["a", "b", "c", "d", BACKGROUND]
    for item in range(60):
        if rng.random() < 0.3 and len(queue):
            want = queue.order()
            assert queue.pop() == want[0]
            assert queue.order() == want[1:]
        else:
            queue.push(rng.choice(clients), item)
    want = queue.order()
    assert [queue.pop() for _ in range(len(want))] == want and queue.pop() is None


def request_from(peer: str | None, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    scope: dict[str, Any] = {"type": "http", "headers": headers}
    if peer is not None:
        scope["client"] = (peer, 50000)
    return Request(scope)


def test_the_client_is_the_peer_and_a_forwarded_address_only_from_a_trusted_proxy() -> None:
    # anyone can send X-Forwarded-For: ignored unless the peer is a configured proxy
    assert client_of(request_from("203.0.113.7", "10.0.0.1")) == "203.0.113.7"
    assert client_of(request_from("203.0.113.7", "10.0.0.1"), ["127.0.0.1"]) == "203.0.113.7"
    # behind the proxy: the last hop it appended, not what the client claimed before it
    trusted = ["127.0.0.1"]
    assert client_of(request_from("127.0.0.1", "6.6.6.6, 198.51.100.2"), trusted) == (
        "198.51.100.2"
    )
    assert client_of(request_from("127.0.0.1"), trusted) == "127.0.0.1"
    assert client_of(request_from("127.0.0.1", " , "), trusted) == "127.0.0.1"
    assert len(client_of(request_from("127.0.0.1", "x" * 500), trusted)) == 64
    assert client_of(request_from(None)) == "unknown"


# ----------------------------------------------------------------------------- the cap


def test_a_client_over_its_cap_is_refused_joins_do_not_count_and_it_frees_on_finishing(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner(client_cap=2)

    async def scenario() -> None:
        b1 = await runner.open(*small(seed=1), client="b")  # runs
        await started(controlled_engine, 1)
        a1 = await runner.open(*small(seed=2), client="a")  # queued
        a2 = await runner.open(*small(seed=3), client="a")  # queued
        with pytest.raises(ClientOverCap) as over:
            await runner.open(*small(seed=4), client="a")
        assert over.value.cap == 2 and over.value.retry_after_s >= 1
        assert "2 experiment run(s)" in str(over.value)
        # joining runs in flight is not starting one: never refused, never counted
        joined_b = await runner.open(*small(seed=1), client="a")
        joined_a = await runner.open(*small(seed=2), client="a")
        assert (joined_b.source, joined_b.run) == ("joined", b1.run)
        assert (joined_a.source, joined_a.run) == ("joined", a1.run)
        b2 = await runner.open(*small(seed=5), client="b")  # another client's cap is its own
        assert b2.source == "computed"
        # b1 ends; a1 runs: running counts like waiting
        controlled_engine.allow(STEPS + 1)
        await finish(b1)
        await started(controlled_engine, 2)
        with pytest.raises(ClientOverCap):
            await runner.open(*small(seed=4), client="a")
        # a1 ends: one of A's two places is free again, and only one
        controlled_engine.allow(STEPS + 1)
        await finish(a1)
        a3 = await runner.open(*small(seed=4), client="a")
        assert a3.source == "computed"
        with pytest.raises(ClientOverCap):
            await runner.open(*small(seed=6), client="a")
        controlled_engine.release()
        for run in (a2, b2, a3):
            await finish(run)

    asyncio.run(scenario())
    assert sorted(seeds(controlled_engine)) == [1, 2, 3, 4, 5]
    assert eventually(lambda: idle(runner))


# ----------------------------------------------------------------------------- max_queued


def test_a_full_queue_refuses_at_once_and_cached_answers_and_joins_bypass_it(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    """1 running + 1 waiting with max_queued=1: a new run is refused at once with a retry
    time; a cached answer and a join are not."""
    runner = make_runner(max_queued=1)
    quick = small(seed=9, steps=0)

    async def scenario() -> None:
        controlled_engine.allow(1)
        await finish(await runner.open(*quick, client="q"))
        running = await runner.open(*small(seed=1), client="a")
        await started(controlled_engine, 2)
        waiting = await runner.open(*small(seed=2), client="b")
        status = runner.status()
        assert status["queue"] == 1 and status["queued_visitors"] == 1 and status["busy"] == 1
        with pytest.raises(GateFull) as full:
            await runner.open(*small(seed=3), client="c")
        assert full.value.retry_after_s >= 1
        assert "busy" in str(full.value) and f"{full.value.retry_after_s} s" in str(full.value)
        assert (await runner.open(*quick, client="c")).source == "cache"
        joined = await runner.open(*small(seed=2), client="c")
        assert joined.source == "joined" and joined.run is waiting.run
        controlled_engine.release()
        assert (await finish(running))[-1].data["config"]["seed"] == 1
        assert (await finish(waiting))[-1].data["config"]["seed"] == 2
        admitted = await runner.open(*small(seed=3), client="c")
        assert admitted.source == "computed"
        await finish(admitted)

    asyncio.run(scenario())
    assert seeds(controlled_engine) == [9, 1, 2, 3]
    assert eventually(lambda: idle(runner))


def test_no_workers_refuses_new_runs_with_no_workers() -> None:
    """A web tier with GLOSSARY_DEMO_WORKERS=0 (a pool of none) refuses new runs at once."""
    runner = DemoRunner(WorkerPool(0))
    try:

        async def scenario() -> None:
            with pytest.raises(NoWorkers, match="none is connected"):
                await runner.open(*small(), client="a")

        asyncio.run(scenario())
        status = runner.status()
        assert status["workers"] == 0 and status["in_flight"] == 0 and status["queue"] == 0
    finally:
        runner.shutdown()


# ----------------------------------------------------------------------------- replay


def test_a_reader_reconnecting_with_last_event_id_gets_what_it_missed_exactly_once(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()

    async def scenario() -> None:
        run = live(await runner.open(*small(), client="a"))
        keeper = asyncio.ensure_future(follow_all(run))  # another reader: the run goes on
        await until(lambda: run.listeners == 1, "the keeper follows")
        controlled_engine.allow(4)
        leaver = run.follow()
        seen = [await anext(leaver) for _ in range(3)]  # queued, step 0, step 1
        await leaver.aclose()
        assert not run.abandoned and run.listeners == 1
        back = await runner.open(*small(), client="a", last_event=(run.serial, 3))
        assert back.source == "joined" and back.run is run and back.skip == 3
        # an id from another run: this one's log from its start
        stranger = await runner.open(*small(), client="b", last_event=(run.serial + 10**6, 3))
        assert stranger.run is run and stranger.skip == 0
        reader = asyncio.ensure_future(follow_all(run, back.skip))
        controlled_engine.release()
        rest, full = await reader, await keeper
        assert kinds(seen) == ["queued", "progress", "progress"]
        assert seen + rest == full  # nothing missed, nothing twice
        assert [e.seq for e in rest] == list(range(4, len(full) + 1))
        assert kinds(full)[-1] == "result"

        # after the run ended it is kept for readers that reconnect
        later = await runner.open(*small(), client="b", last_event=(run.serial, 3))
        assert later.source == "joined" and later.run is run and later.skip == 3
        assert await follow_all(run, later.skip) == full[3:]
        # an id of another run (or none): the cached result
        other = await runner.open(*small(), client="b", last_event=(run.serial + 10**6, 3))
        assert other.source == "cache" and other.result is not None
        assert (await runner.open(*small(), client="b")).source == "cache"

    asyncio.run(scenario())
    assert controlled_engine.calls == 1


def test_a_reader_reconnecting_after_the_terminal_event_gets_nothing_and_ends(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    """EventSource reconnects by itself when a stream closes: with the result's id as its
    Last-Event-ID it must get an ended stream, not one that stays open forever."""
    runner = make_runner()
    controlled_engine.release()

    async def scenario() -> None:
        opened = await runner.open(*small(), client="a")
        full = await finish(opened)
        run = live(opened)
        back = await runner.open(*small(), client="a", last_event=(run.serial, len(full)))
        assert back.source == "joined" and back.skip == len(full)
        reader = asyncio.ensure_future(follow_all(run, back.skip))
        for _ in range(20):  # no thread involved: a correct follow ends at its first step
            await asyncio.sleep(0)
        done = reader.done()
        reader.cancel()
        assert done, "the reader of a finished run is left waiting"
        assert reader.result() == []

    asyncio.run(scenario())


def test_a_live_run_is_abandoned_only_when_its_last_reader_leaves_it_unfinished() -> None:
    async def scenario() -> None:
        left: list[LiveRun] = []
        run = LiveRun("k", "a", left.append)
        run.publish("queued", {"position": 1})
        one, two = run.follow(), run.follow()
        assert (await anext(one)).event == "queued" and (await anext(two)).event == "queued"
        assert run.listeners == 2
        await one.aclose()
        assert left == [] and not run.abandoned and run.listeners == 1
        await two.aclose()
        assert left == [run] and run.abandoned and run.listeners == 0

        kept = LiveRun("w", BACKGROUND, left.append, kept=True)  # a warm-up run
        kept.publish("queued", {"position": 1})
        reader = kept.follow()
        await anext(reader)
        await reader.aclose()
        assert left == [run] and not kept.abandoned

        done = LiveRun("d", "a", left.append)
        done.publish("queued", {"position": 1})
        done.publish("result", {"x": 1})
        done.publish("progress", {"step": 9})  # nothing comes after the terminal event
        assert kinds(done.events) == ["queued", "result"] and done.finished
        reader = done.follow()
        await anext(reader)
        await reader.aclose()  # leaving a finished run stops nothing
        assert left == [run] and not done.abandoned
        assert await follow_all(done) == done.events

        assert done.since(None) == 0 and done.since((done.serial + 1, 1)) == 0
        assert done.since((done.serial, 1)) == 1 and done.since((done.serial, 99)) == 2

    asyncio.run(scenario())


def test_last_event_ids_are_parsed_strictly() -> None:
    assert parse_last_event_id("12.3") == (12, 3)
    assert parse_last_event_id(" 12.3 ") == (12, 3)
    for value in (None, "", "12", "12.", ".3", "a.3", "12.3.4", "-1.3", "1" * 41 + ".1"):
        assert parse_last_event_id(value) is None, value


# ----------------------------------------------------------------------------- cancellation


def test_a_reader_that_stops_reading_stops_the_run_at_its_next_step(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()
    controlled_engine.allow(2)  # steps 0 and 1; step 2 waits for the test

    async def scenario() -> LiveRun:
        run = live(await runner.open(*small(steps=50), client="a"))
        reader = run.follow()
        got = [await anext(reader) for _ in range(3)]
        assert kinds(got) == ["queued", "progress", "progress"] and steps_of(got) == [0, 1]
        await reader.aclose()  # e.g. the response stream was closed
        assert run.abandoned
        last = await ended(run)
        assert last.event == "error" and last.data["details"]["reason"] == "cancelled"
        await until(lambda: idle(runner), "the runner idle again")
        return run

    asyncio.run(scenario())
    engine_run = controlled_engine.runs[0]
    assert engine_run.done.wait(FAILSAFE_S), "the run kept going after its reader left"
    assert engine_run.stopped_at == 2 and engine_run.steps == [0, 1]
    assert runner.status()["cache_entries"] == 0


def test_cancelling_the_task_that_reads_a_run_stops_its_worker(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    """What happens when the server cancels a disconnected client's response task."""
    runner = make_runner()
    controlled_engine.allow(5)

    async def scenario() -> None:
        run = live(await runner.open(*small(steps=50), client="a"))
        task = asyncio.ensure_future(follow_all(run))
        await stepped(controlled_engine, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await ended(run)).data["details"]["reason"] == "cancelled"

    asyncio.run(scenario())
    engine_run = controlled_engine.runs[0]
    assert engine_run.done.wait(FAILSAFE_S), "the worker kept going after its task was cancelled"
    assert engine_run.stopped_at == 5 and len(engine_run.steps) == 5


def test_a_run_stops_when_its_last_listener_leaves_not_before(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()

    async def scenario() -> tuple[LiveRun, LiveRun, list[RunEvent]]:
        opened = await runner.open(*small(steps=50), client="a")
        joined = await runner.open(*small(steps=50), client="b")
        run = live(opened)
        assert joined.run is run
        first, second = run.follow(), run.follow(joined.skip)
        await anext(first)
        await anext(second)
        controlled_engine.allow(2)
        await stepped(controlled_engine, 2)
        await first.aclose()  # one of two leaves: the run goes on
        assert not run.abandoned and run.listeners == 1
        controlled_engine.allow(2)
        await stepped(controlled_engine, 4)
        got = [await anext(second) for _ in range(4)]
        assert steps_of(got) == [0, 1, 2, 3]
        await second.aclose()  # the last one leaves: it stops at its next step
        assert run.abandoned
        # a new request for the config starts afresh instead of joining the dying run
        again = await runner.open(*small(steps=50), client="c")
        assert again.source == "computed" and again.run is not run
        fresh = live(again)
        assert kinds(fresh.events) == ["queued"]
        reader = asyncio.ensure_future(follow_all(fresh))
        await ended(run)
        await started(controlled_engine, 2)
        controlled_engine.release()
        return run, fresh, await reader

    run, fresh, events = asyncio.run(scenario())
    dying = controlled_engine.runs[0]
    assert dying.stopped_at == 4 and dying.steps == [0, 1, 2, 3]
    assert run.events[-1].event == "error"
    assert run.events[-1].data["status"] == 503
    assert run.events[-1].data["details"]["reason"] == "cancelled"
    assert controlled_engine.calls == 2 and controlled_engine.runs[1].stopped_at is None
    assert kinds(events)[-1] == "result" and len(steps_of(events)) == 51


def test_a_queued_run_whose_only_listener_leaves_never_reaches_the_engine(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()

    async def scenario() -> tuple[LiveRun, LiveRun]:
        busy = await runner.open(*small(seed=1), client="a")
        await started(controlled_engine, 1)
        waiting = live(await runner.open(*small(seed=2), client="b"))
        behind = live(await runner.open(*small(seed=3), client="c"))
        assert positions(behind) == [2]
        reader = waiting.follow()
        assert (await anext(reader)).event == "queued"
        await reader.aclose()
        # gone from the queue at once, with its error; the run behind it moves up
        assert waiting.finished and waiting.events[-1].event == "error"
        assert waiting.events[-1].data["details"]["reason"] == "cancelled"
        assert positions(behind) == [2, 1]
        assert runner.status()["queue"] == 1
        # its config is not in flight any more: asking again queues a new run
        again = await runner.open(*small(seed=2), client="b")
        assert again.source == "computed" and again.run is not waiting
        controlled_engine.release()
        await finish(busy)
        await finish(await runner.open(*small(seed=3), client="c"))
        await finish(again)
        return waiting, behind

    asyncio.run(scenario())
    assert seeds(controlled_engine) == [1, 3, 2]  # the abandoned run never started


def test_shutdown_stops_a_running_run(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()

    async def scenario() -> list[RunEvent]:
        run = live(await runner.open(*small(), client="a"))
        reader = asyncio.ensure_future(follow_all(run))
        await started(controlled_engine, 1)
        runner.shutdown()
        return await asyncio.wait_for(reader, FAILSAFE_S)

    events = asyncio.run(scenario())
    assert kinds(events) == ["queued", "error"]
    assert controlled_engine.runs[0].done.wait(FAILSAFE_S)
    assert controlled_engine.runs[0].stopped_at == 0


# ----------------------------------------------------------------------------- time budget


@pytest.fixture
def ticking() -> Iterator[tuple[ControlledEngine, FakeClock, list[DemoRunner]]]:
    clock = FakeClock()
    engine = ControlledEngine(clock=clock, tick_s=1.0)  # every step takes 1 s of fake time
    runners: list[DemoRunner] = []
    yield engine, clock, runners
    engine.release()
    for runner in runners:
        runner.shutdown()


def test_the_time_budget_stops_a_run_within_a_step(
    ticking: tuple[ControlledEngine, FakeClock, list[DemoRunner]],
) -> None:
    engine, clock, runners = ticking
    engine.release()
    runner = thread_runner(engine, budget_s=5, clock=clock)
    runners.append(runner)

    async def scenario() -> tuple[list[RunEvent], Opened, list[RunEvent]]:
        events = await follow_all(live(await runner.open(*small(steps=100), client="a")))
        again = await runner.open(*small(steps=3), client="a")
        return events, again, await finish(again)

    events, again, again_events = asyncio.run(scenario())
    error = events[-1]
    assert error.event == "error" and error.data["status"] == 503
    assert error.data["details"]["reason"] == "time_budget"
    assert "wall-clock budget of 5 s" in error.data["message"]
    # steps 0-5 ran (the clock read 0 to 5 s when each began); step 6 would begin at 6 s > 5 s
    assert engine.runs[0].steps == list(range(6)) and engine.runs[0].stopped_at == 6
    assert steps_of(events) == list(range(6))
    # the runner is still usable, and the stopped run was not cached
    assert again.source == "computed" and kinds(again_events)[-1] == "result"
    assert runner.status()["cache_entries"] == 1


# ----------------------------------------------------------------------------- errors


def test_an_engine_error_that_is_not_a_demo_error_is_a_500_and_the_next_run_succeeds(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()
    controlled_engine.failures.append(ValueError("boom: internal detail"))
    controlled_engine.release()

    async def scenario() -> tuple[list[RunEvent], Opened, list[RunEvent]]:
        events = await follow_all(live(await runner.open(*small(), client="a")))
        again = await runner.open(*small(), client="a")  # the failure was not cached
        return events, again, await finish(again)

    events, again, again_events = asyncio.run(scenario())
    assert kinds(events) == ["queued", "error"]
    assert events[-1].data == {
        "status": 500,
        "message": "The run failed on our side.",
        "details": None,
    }
    assert again.source == "computed" and kinds(again_events)[-1] == "result"
    assert controlled_engine.calls == 2 and runner.status()["cache_entries"] == 1
    assert eventually(lambda: idle(runner))


def test_out_of_memory_is_a_device_error_and_the_next_run_succeeds(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    torch = pytest.importorskip("torch")  # OOM is recognised only where torch is loaded
    runner = make_runner()
    controlled_engine.failures.append(torch.OutOfMemoryError("CUDA out of memory. Tried 2 GiB"))
    controlled_engine.failures.append(RuntimeError("CUDA error: out of memory"))
    controlled_engine.release()

    async def scenario() -> list[list[RunEvent]]:
        logs = []
        for _ in range(3):
            logs.append(await follow_all(live(await runner.open(*small(), client="a"))))
        return logs

    oom, oom_again, ok = asyncio.run(scenario())
    for events in (oom, oom_again):
        assert events[-1].event == "error" and events[-1].data["status"] == 503
        assert events[-1].data["details"]["reason"] == "device"
        assert "ran out of memory" in events[-1].data["message"]
    assert kinds(ok)[-1] == "result" and controlled_engine.calls == 3


# ----------------------------------------------------------------------------- warm-up


def test_warmup_fills_the_cache_in_the_background(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()

    async def scenario() -> Opened:
        runner.start_warmup([small(seed=5), small(seed=6)])
        # start_warmup returned while its first run still waits for the test
        await started(controlled_engine, 1)
        status = runner.status()
        assert status["cache_entries"] == 0 and status["in_flight"] == 2
        assert status["queue"] == 1 and status["queued_visitors"] == 0
        controlled_engine.release()
        await until(lambda: runner.status()["cache_entries"] == 2, "the warm-up cached both")
        return await runner.open(*small(seed=6), client="a")

    hit = asyncio.run(scenario())
    assert hit.source == "cache" and hit.result is not None and hit.result.config["seed"] == 6
    assert seeds(controlled_engine) == [5, 6] and eventually(lambda: idle(runner))


def test_warmup_waits_behind_visitors_and_a_visitor_joining_it_moves_it_into_their_turn(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner(max_queued=2)

    async def scenario() -> None:
        runner.start_warmup([small(seed=s) for s in (11, 12, 13)])
        await started(controlled_engine, 1)  # 11 runs; 12 and 13 wait in the background
        w1 = runner._live[runner._key(*small(seed=11))]
        w2 = runner._live[runner._key(*small(seed=12))]
        w3 = runner._live[runner._key(*small(seed=13))]
        assert (positions(w2), positions(w3)) == ([1], [2])
        x1 = live(await runner.open(*small(seed=21), client="x"))
        x2 = live(await runner.open(*small(seed=22), client="x"))  # warm-up is not counted
        assert [positions(r)[-1] for r in (x1, x2, w2, w3)] == [1, 2, 3, 4]
        # y asks for a waiting warm-up run: joins it, and it takes y's turn
        joined = await runner.open(*small(seed=12), client="y")
        assert joined.source == "joined" and joined.run is w2
        assert w2.client == "y" and not w2.kept
        assert [positions(r)[-1] for r in (x1, w2, x2, w3)] == [1, 2, 3, 4]
        controlled_engine.release()
        for run in (w1, w2, w3, x1, x2):
            assert (await ended(run)).event == "result"

    asyncio.run(scenario())
    assert seeds(controlled_engine) == [11, 21, 12, 22, 13]
    assert runner.status()["cache_entries"] == 5 and eventually(lambda: idle(runner))


def test_a_visitor_joining_a_running_warmup_run_leaves_it_a_warmup_run(
    make_runner: MakeRunner, controlled_engine: ControlledEngine
) -> None:
    runner = make_runner()

    async def scenario() -> LiveRun:
        runner.start_warmup([small(seed=11)])
        await started(controlled_engine, 1)
        controlled_engine.allow(3)
        await stepped(controlled_engine, 3)  # it is running
        joined = await runner.open(*small(seed=11), client="z")
        run = live(joined)
        assert joined.source == "joined"
        reader = run.follow(joined.skip)
        await anext(reader)
        await reader.aclose()  # the visitor leaves: the warm-up goes on
        assert run.client == BACKGROUND and run.kept and not run.abandoned
        controlled_engine.release()
        assert (await ended(run)).event == "result"
        return run

    asyncio.run(scenario())
    assert controlled_engine.runs[0].stopped_at is None
    assert runner.status()["cache_entries"] == 1


# ----------------------------------------------------------------------------- real engine


def test_a_real_run_through_the_runner_gives_the_engines_own_numbers() -> None:
    """The events relayed from a worker thread carry experiment.execute's numbers: progress
    at every recorded step, and a result equal to a direct run's."""
    runner = thread_runner(execute)
    try:

        async def scenario() -> list[RunEvent]:
            return await finish(await runner.open(*small(steps=20, seed=4), client="a"))

        events = asyncio.run(scenario())
    finally:
        runner.shutdown()
    got = DemoResult.model_validate(events[-1].data)
    want = execute(*small(steps=20, seed=4))
    assert got.variants and got.variants == want.variants
    recorded = [s.step for s in got.variants[0].recorded_steps or []]
    assert recorded and recorded[0] == 0 and recorded[-1] == 20
    assert steps_of(events) == recorded
    assert all(e.data["charts"] for e in events if e.event == "progress")


def test_the_time_budget_stops_the_real_engine() -> None:
    """The real engine checks the budget before every step: with a clock that passes the
    deadline after three checks, it stops long before its first recorded step after 0."""
    ticks = iter(range(10**6))
    executor_clock: Callable[[], float] = lambda: float(next(ticks))  # noqa: E731
    runner = thread_runner(execute, budget_s=3.5, clock=executor_clock)  # type: ignore[arg-type]
    try:

        async def scenario() -> list[RunEvent]:
            return await follow_all(live(await runner.open(*small(steps=100), client="a")))

        events = asyncio.run(scenario())
    finally:
        runner.shutdown()
    assert steps_of(events) == [0]  # progress at initialization; the next recorded step is 20
    assert events[-1].data["details"]["reason"] == "time_budget"
    assert "wall-clock budget of 3.5 s" in events[-1].data["message"]
    assert runner.status()["cache_entries"] == 0
