"""Engines that worker processes load by name in tests (WorkerPool(engine="tests.worker_engines:
scripted")): real runs, except for seeds that script a misbehaving or held run.

- seed 1: "hang": reports step 0, then loops forever WITHOUT checking should_stop (a run only
  the watchdog can stop);
- seed 2: "held": reports step 0, then waits (checking should_stop) until the test creates the
  file `open-<steps>` in $GLOSSARY_TEST_GATE_DIR, then runs for real;
- any other seed: experiment.execute, the real engine.

`shrunk` (tests/api/test_fuzz.py) is the real engine on the requested experiment with its
sizes capped so a fuzzed run takes milliseconds; its result still names the config asked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.demo.errors import RunCancelled
from app.demo.result import DemoResult, Progress

HANG, HELD = 1, 2
# The most of each size parameter a shrunk run really uses (where the experiment has it).
SIZE_CAPS = {"depth": 4, "width": 16, "steps": 3, "batch_size": 16}


def gate(steps: int) -> Path:
    return Path(os.environ["GLOSSARY_TEST_GATE_DIR"]) / f"open-{steps}"


def scripted(
    experiment: Any,
    params: Any,
    device: str,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    **extra: Any,
) -> DemoResult:
    from app.demo.experiment import execute

    if params.seed in (HANG, HELD) and on_progress is not None:
        on_progress(Progress(step=0, total_steps=int(params.steps)))
    if params.seed == HANG:
        while True:
            time.sleep(0.05)
    if params.seed == HELD:
        while not gate(int(params.steps)).exists():
            if should_stop is not None and should_stop():
                raise RunCancelled("held run stopped")
            time.sleep(0.01)
    return execute(
        experiment, params, device, on_progress=on_progress, should_stop=should_stop, **extra
    )


def shrunk(
    experiment: Any,
    params: Any,
    device: str,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    lm: Any = None,
) -> DemoResult:
    """The real engine on the requested experiment, its sizes shrunk to milliseconds of work."""
    from app.demo.experiment import execute
    from app.demo.params import describe

    fields = type(params).model_fields
    small = params.model_copy(
        update={  # never below the parameter's own minimum
            name: min(getattr(params, name), max(cap, describe(name, fields[name])["min"]))
            for name, cap in SIZE_CAPS.items()
            if name in fields and fields[name].annotation is int
        }
    )
    result = execute(
        experiment,
        small,
        device,
        on_progress=on_progress,
        should_stop=should_stop,
        threads=1,
        lm=lm,
    )
    return result.model_copy(update={"config": experiment.config(params)})  # what was asked
