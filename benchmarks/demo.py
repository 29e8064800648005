"""Benchmark of the live demo engine on this machine's CPU (the figures the README quotes).

    .venv/bin/python benchmarks/demo.py            # everything (about a minute)
    .venv/bin/python benchmarks/demo.py --quick    # skip the largest allowed runs

Prints, for the default preset: time to the first progress event, total time, the batched
engine against the one-variant-at-a-time reference (same numbers checked, speed ratio), and
a cached answer's time through DemoRunner; then the time of the largest runs the compute
budget allows, per preset, next to the budget's estimate.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.demo.presets import (  # noqa: E402
    BUDGET_S,
    DEFAULT_PRESET,
    PRESETS,
    DemoConfig,
    estimate_seconds,
    max_steps_for,
    resolve_config,
)

TARGETS = {"total_s": 1.0, "first_event_s": 0.2, "speedup": 1.5}


def timed_engine(config: DemoConfig) -> tuple[float, float, dict[str, Any]]:
    from app.demo.engine import run_experiment

    t0 = time.perf_counter()
    first: list[float] = []

    def on_progress(event: dict[str, Any]) -> None:
        if not first:
            first.append(time.perf_counter() - t0)

    result = run_experiment(config, on_progress=on_progress)
    return first[0], time.perf_counter() - t0, result


def max_rel_diff(result: dict[str, Any], reference: list[dict[str, Any]]) -> float:
    worst = 0.0
    for got, want in zip(result["variants"], reference, strict=True):
        pairs = list(zip(got["loss"], want["loss"], strict=True))
        for gs, ws in zip(got["recorded_steps"], want["recorded_steps"], strict=True):
            for gl, wl in zip(gs["layers"], ws["layers"], strict=True):
                pairs += [(gl[k], wl[k]) for k in ("weight_grad_norm", "activation_grad_norm")]
        for g, w in pairs:
            if g is None:
                return math.inf
            worst = max(worst, abs(g - w) / max(abs(w), 1e-30))
    return worst


def row(name: str, value: str, note: str = "") -> None:
    print(f"  {name:<44} {value:>12}  {note}")


def default_preset(repeats: int) -> None:
    from app.demo.reference import run_reference
    from app.demo.runner import DemoRunner

    config = resolve_config(DEFAULT_PRESET, {})
    timed_engine(config)  # first-call costs (allocator, kernels) are not the steady state
    run_reference(config)
    runs, refs = [], []
    for _ in range(repeats):  # interleaved, so both see the same machine load
        runs.append(timed_engine(config))
        t0 = time.perf_counter()
        reference = run_reference(config)
        refs.append(time.perf_counter() - t0)
    first = statistics.median(r[0] for r in runs)
    total = statistics.median(r[1] for r in runs)
    ref_total = statistics.median(refs)
    speedup = statistics.median(ref / r[1] for ref, r in zip(refs, runs, strict=True))
    diff = max_rel_diff(runs[-1][2], reference)

    runner = DemoRunner(device="cpu")
    asyncio.run(runner.run(config))
    cached = []
    for _ in range(50):
        t0 = time.perf_counter()
        out = asyncio.run(runner.run(config))
        cached.append(time.perf_counter() - t0)
        assert out["cached"]
    runner.shutdown()

    def mark(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"\nDefault preset {DEFAULT_PRESET!r}: {config.as_dict()}")
    print(f"  (median of {repeats} runs each, interleaved; one torch thread)")
    row(
        "time to first progress event",
        f"{first * 1000:.0f} ms",
        f"target <= {TARGETS['first_event_s'] * 1000:.0f} ms: {mark(first <= 0.2)}",
    )
    row(
        "total time, batched engine",
        f"{total * 1000:.0f} ms",
        f"target <= {TARGETS['total_s'] * 1000:.0f} ms: {mark(total <= 1.0)}",
    )
    row("total time, one-variant-at-a-time reference", f"{ref_total * 1000:.0f} ms")
    row(
        "speed-up of the batched engine",
        f"{speedup:.2f}x",
        f"target >= {TARGETS['speedup']}x: {mark(speedup >= 1.5)} (median of paired runs)",
    )
    row(
        "max relative difference engine vs reference",
        f"{diff:.1e}",
        "same numbers" if diff < 1e-5 else "DIFFERENT",
    )
    row("cached answer through DemoRunner", f"{statistics.median(cached) * 1000:.2f} ms")
    print(f"  summary: {runs[-1][2]['summary']}")


def largest_runs() -> None:
    print(f"\nLargest runs the compute budget ({BUDGET_S:g} s) allows, per preset:")
    print(
        f"  {'preset':<22} {'depth':>5} {'width':>5} {'batch':>5} {'steps':>5} "
        f"{'estimate':>9} {'measured':>9}"
    )
    worst = 0.0
    for name, preset in PRESETS.items():
        bounds = {p.name: p for p in preset.params}
        d = preset.defaults
        sizes = [
            # the biggest network at the batch size that still allows a few steps
            (int(bounds["depth"].max or 64), int(bounds["width"].max or 64), None),
            # the default network, trained for as many steps as allowed
            (int(d["depth"]), int(d["width"]), int(d["batch_size"])),
        ]
        for depth, width, batch in sizes:
            if batch is None:
                batch = int(bounds["batch_size"].max or 8)
                while batch > 8 and max_steps_for(preset, depth, width, batch) < 1:
                    batch //= 2
            steps = min(int(bounds["steps"].max or 0), max_steps_for(preset, depth, width, batch))
            config = resolve_config(
                name,
                {
                    "depth": str(depth),
                    "width": str(width),
                    "batch_size": str(batch),
                    "steps": str(steps),
                },
            )
            _, total, _ = timed_engine(config)
            worst = max(worst, total)
            est = estimate_seconds(preset, depth, width, batch, steps)
            print(
                f"  {name:<22} {depth:>5} {width:>5} {batch:>5} {steps:>5} "
                f"{est:>8.2f}s {total:>8.2f}s"
            )
    print(f"  slowest allowed run measured: {worst:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the largest allowed runs")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    t0 = time.perf_counter()
    import torch

    print(
        f"torch {torch.__version__}, import {time.perf_counter() - t0:.2f} s, "
        f"{os.cpu_count()} CPUs, device cpu"
    )
    default_preset(args.repeats)
    if not args.quick:
        largest_runs()


if __name__ == "__main__":
    main()
