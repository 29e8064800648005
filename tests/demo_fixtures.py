"""Demo test helpers: an engine the test drives step by step, a fake clock, runners that are
always shut down. Loaded as a plugin by tests/conftest.py (`-p tests.demo_fixtures` with
--noconftest).

Time-dependent behaviour (the gate, the budget, cancellation) is tested with these, never with
a run sized to take long: a ControlledEngine runs a step only when the test allows it (or
freely after release()), checks should_stop() before every step as a real engine does, and
records where it stopped. A FakeClock given to DemoRunner(clock=) moves only when the engine
ticks it. The waits below have long failsafe timeouts that only a broken feature reaches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from fastapi import FastAPI

from app.demo.catalog import resolve
from app.demo.errors import RunCancelled
from app.demo.executor import ThreadExecutor
from app.demo.experiment import Experiment
from app.demo.params import ExperimentParams
from app.demo.result import DemoResult, Progress, VariantResult
from app.demo.runner import DemoRunner

FAILSAFE_S = 20.0  # only a broken feature waits this long
POLL_S = 0.002  # how often a blocked step re-checks should_stop()


def small(name: str = "residual-vs-plain", **params: object) -> tuple[Experiment, ExperimentParams]:
    """A validated request: a tiny network, 10 steps (the controlled engine runs steps + 1)."""
    base: dict[str, object] = {"depth": 4, "width": 8, "batch_size": 8, "steps": 10}
    return resolve(name, {k: str(v) for k, v in (base | params).items()})


def eventually(predicate: Callable[[], bool], timeout: float = FAILSAFE_S) -> bool:
    """Wait for a condition another thread makes true; False only if it never does."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class FakeClock:
    """A clock for DemoRunner(clock=): it moves only when advanced."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class EngineRun:
    """One call of the controlled engine."""

    params: ExperimentParams
    steps: list[int] = field(default_factory=list)  # the steps it ran
    stopped_at: int | None = None  # the step should_stop() prevented
    done: threading.Event = field(default_factory=threading.Event)


class ControlledEngine:
    """Stands in for experiment.execute: params.steps + 1 steps, each when the test allows.

    Before every step it checks should_stop() (as RunContext.check does) and raises
    RunCancelled; then it waits for a permit (allow(n)), or runs freely after release().
    Each step advances `clock` by `tick_s` and emits Progress(step, total). Exceptions in
    `failures` are raised, one per call, before the first step."""

    def __init__(self, clock: FakeClock | None = None, tick_s: float = 0.0) -> None:
        self.clock, self.tick_s = clock, tick_s
        self.runs: list[EngineRun] = []
        self.failures: list[BaseException] = []
        self._permits = 0
        self._free = False
        self._cond = threading.Condition()

    # ------------------------------------------------------------------ the test's side

    def allow(self, steps: int = 1) -> None:
        with self._cond:
            self._permits += steps
            self._cond.notify_all()

    def release(self) -> None:
        """Every step from now on runs at once (teardown always calls this)."""
        with self._cond:
            self._free = True
            self._cond.notify_all()

    def wait_started(self, n: int = 1) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.runs) >= n, timeout=FAILSAFE_S)

    def wait_steps(self, n: int, run: int = -1) -> bool:
        """Until the run (default: the latest) has run n steps."""
        with self._cond:
            return self._cond.wait_for(
                lambda: bool(self.runs) and len(self.runs[run].steps) >= n, timeout=FAILSAFE_S
            )

    @property
    def calls(self) -> int:
        return len(self.runs)

    # ------------------------------------------------------------------ the engine

    def __call__(
        self,
        experiment: Experiment,
        params: ExperimentParams,
        device: str,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> DemoResult:
        run = EngineRun(params)
        with self._cond:
            self.runs.append(run)
            self._cond.notify_all()
        try:
            if self.failures:
                raise self.failures.pop(0)
            total = int(getattr(params, "steps", 0))
            for step in range(total + 1):
                if not self._permit(should_stop):
                    run.stopped_at = step
                    raise RunCancelled(f"controlled run stopped at step {step}")
                if self.clock is not None:
                    self.clock.advance(self.tick_s)
                with self._cond:
                    run.steps.append(step)
                    self._cond.notify_all()
                if on_progress is not None:
                    on_progress(Progress(step=step, total_steps=total))
            return fake_result(experiment, params, device, run)
        finally:
            run.done.set()

    def _permit(self, should_stop: Callable[[], bool] | None) -> bool:
        """True when the next step may run, False when should_stop() says to stop."""
        deadline = time.monotonic() + FAILSAFE_S
        with self._cond:
            while True:
                if should_stop is not None and should_stop():
                    return False
                if self._free:
                    return True
                if self._permits > 0:
                    self._permits -= 1
                    return True
                if time.monotonic() > deadline:
                    raise TimeoutError("the test never allowed this step")
                self._cond.wait(timeout=POLL_S)


def fake_result(
    experiment: Experiment, params: ExperimentParams, device: str, run: EngineRun
) -> DemoResult:
    """A complete DemoResult without torch: every variant, final_loss = the steps it ran."""
    return DemoResult(
        experiment=experiment.name,
        family=experiment.family,
        config=experiment.config(params),
        device=device,
        torch_version="controlled",
        elapsed_ms=0.0,
        summary=f"A controlled run of {len(run.steps)} steps.",
        variants=[
            VariantResult(name=v.name, label=v.label, metrics={"final_loss": float(len(run.steps))})
            for v in experiment.variants
        ],
        charts=[],
        claims=[],
        citation=experiment.citation,
    )


@contextmanager
def runner_in(app: FastAPI, runner: DemoRunner) -> Iterator[DemoRunner]:
    """Serve a started app's demo with `runner` (the one the lifespan built is shut down)."""
    started: DemoRunner = app.state.demo_runner
    app.state.demo_runner = runner
    started.shutdown()
    try:
        yield runner
    finally:
        runner.shutdown()


def thread_runner(
    engine: object,
    *,
    slots: int = 1,
    budget_s: float = 10.0,
    clock: FakeClock | None = None,
    **options: object,
) -> DemoRunner:
    """A DemoRunner whose runs execute on `slots` threads of this process with `engine` (a
    ControlledEngine, or experiment.execute for real numbers). Its clock is `clock` or a
    FakeClock that stands still, so the time budget stops a run only when the test moves it."""
    executor = ThreadExecutor(
        engine,  # type: ignore[arg-type]
        slots=slots,
        budget_s=budget_s,
        clock=clock or FakeClock(),
    )
    return DemoRunner(executor, **options)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def controlled_engine() -> Iterator[ControlledEngine]:
    engine = ControlledEngine()
    yield engine
    engine.release()


@pytest.fixture
def make_runner(controlled_engine: ControlledEngine) -> Iterator[Callable[..., DemoRunner]]:
    """thread_runner(controlled_engine, **options), shut down after the test."""
    runners: list[DemoRunner] = []

    def make(**options: object) -> DemoRunner:
        runner = thread_runner(controlled_engine, **options)  # type: ignore[arg-type]
        runners.append(runner)
        return runner

    yield make
    controlled_engine.release()
    for runner in runners:
        runner.shutdown()
