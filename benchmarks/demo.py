"""Benchmark of the live demo engine on this machine's CPU (the figures the README quotes).

    .venv/bin/python benchmarks/demo.py            # everything (about a minute)
    .venv/bin/python benchmarks/demo.py --quick    # skip the largest allowed runs

Then the default run over HTTP against the script a user would write (benchmarks/demo_http.py),
and every experiment's default run time.

Prints, for the default experiment: time to the first progress event, total time, the
batched engine against the one-variant-at-a-time baseline below (same numbers checked, speed
ratio), and a cached answer's time through DemoRunner; then the time of the largest runs the
compute budget allows, per gradient-flow experiment, next to the budget's estimate.
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

_T0 = time.perf_counter()
import torch  # noqa: E402

TORCH_IMPORT_S = time.perf_counter() - _T0
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from app.demo.catalog import DEFAULT_EXPERIMENT, EXPERIMENTS, resolve  # noqa: E402
from app.demo.experiment import Experiment, execute  # noqa: E402
from app.demo.families.gradient_flow import GradientVariant  # noqa: E402
from app.demo.families.gradient_flow_params import GradientFlowParams  # noqa: E402
from app.demo.params import BUDGET_S, ExperimentParams, describe  # noqa: E402
from app.demo.result import DemoResult, Progress  # noqa: E402
from app.demo.tasks import batch_indices, make_task  # noqa: E402
from benchmarks.demo_http import every_experiment, http_vs_script  # noqa: E402

TARGETS = {"total_s": 1.0, "first_event_s": 0.2, "speedup": 1.5}


def timed_engine(
    experiment: Experiment, params: ExperimentParams
) -> tuple[float, float, DemoResult]:
    t0 = time.perf_counter()
    first: list[float] = []

    def on_progress(event: Progress) -> None:
        if not first:
            first.append(time.perf_counter() - t0)

    result = execute(experiment, params, on_progress=on_progress)
    return first[0], time.perf_counter() - t0, result


# ----------------------------------------------------------------------------- the baseline
# The straightforward way to run an MLP experiment: one ordinary nn.Module per variant, built
# from nn.Linear and nn's norms and activations, trained in its own loop (the same data,
# seeds, optimizer and measurements as the batched engine).

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


class BaselineBlock(nn.Module):  # type: ignore[misc]  # torch is untyped here
    def __init__(self, width: int, act: str, residual: bool, scale: float, norm: str) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.act, self.residual, self.scale = ACTIVATIONS[act](), residual, scale
        norms = {"layernorm": nn.LayerNorm, "batchnorm": nn.BatchNorm1d}
        self.norm = norms[norm](width) if norm in norms else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        f = self.act(self.fc(self.norm(h) if self.norm is not None else h))
        return h + self.scale * f if self.residual else f


class BaselineMLP(nn.Module):  # type: ignore[misc]  # torch is untyped here
    def __init__(self, p: GradientFlowParams, v: GradientVariant, d_in: int, d_out: int) -> None:
        super().__init__()
        scale = 1.0 if getattr(p, "branch_scale", "") == "1" else 1.0 / math.sqrt(p.depth)
        act = str(v.activation or getattr(p, "activation", "relu"))
        norm = str(v.norm or getattr(p, "norm", "none"))
        self.stem = nn.Linear(d_in, p.width)
        self.blocks = nn.ModuleList(
            BaselineBlock(p.width, act, bool(v.residual), scale, norm) for _ in range(p.depth)
        )
        self.head = nn.Linear(p.width, d_out)
        init = v.init or getattr(p, "init", "default")
        torch.manual_seed(p.seed)
        for lin in [self.stem, *(b.fc for b in self.blocks), self.head]:
            if init == "default":
                lin.reset_parameters()
            else:
                if init == "xavier":
                    nn.init.xavier_uniform_(lin.weight)
                else:
                    nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
                nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.stem(x)
        inputs = []
        for block in self.blocks:
            h.retain_grad()
            inputs.append(h)
            h = block(h)
        return self.head(h), inputs


def recorded_steps(steps: int) -> list[int]:
    return sorted({0, *(round(steps * i / 5) for i in range(1, 6))})


def _norm(t: torch.Tensor | None) -> float:
    return 0.0 if t is None else float(t.double().square().sum().sqrt())


def baseline_variant(p: GradientFlowParams, v: GradientVariant) -> dict[str, Any]:
    data = make_task(p.task, p.seed)
    idx = batch_indices(p.seed, p.steps, p.batch_size)
    model = BaselineMLP(p, v, data.d_in, data.d_out)
    opt = torch.optim.SGD(model.parameters(), lr=p.lr, momentum=0.9)
    record_at = set(recorded_steps(p.steps))
    losses: list[float] = []
    recorded = []
    for step in range(p.steps + 1):
        x, y = data.x[idx[step]], data.y[idx[step]]
        out, inputs = model(x)
        loss = F.cross_entropy(out, y) if data.classification else F.mse_loss(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        losses.append(loss.item())
        if step in record_at:
            layers = [
                {
                    "weight_grad_norm": _norm(b.fc.weight.grad),
                    "activation_grad_norm": _norm(h.grad),
                }
                for b, h in zip(model.blocks, inputs, strict=True)
            ]
            recorded.append({"step": step, "layers": layers})
        if step < p.steps:
            opt.step()
    return {"name": v.name, "loss": losses, "recorded_steps": recorded}


def run_baseline(experiment: Experiment, params: ExperimentParams) -> list[dict[str, Any]]:
    """Every variant of an MLP experiment, one after another, on one CPU thread."""
    assert isinstance(params, GradientFlowParams) and params.arch == "mlp", experiment.name
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as the engine runs
    variants = [v for v in experiment.variants if isinstance(v, GradientVariant)]
    return [baseline_variant(params, v) for v in variants]


def max_rel_diff(result: DemoResult, reference: list[dict[str, Any]]) -> float:
    worst = 0.0
    for got, want in zip(result.variants, reference, strict=True):
        pairs = list(zip(got.loss or [], want["loss"], strict=True))
        for gs, ws in zip(got.recorded_steps or [], want["recorded_steps"], strict=True):
            for gl, wl in zip(gs.layers, ws["layers"], strict=True):
                pairs += [
                    (gl.weight_grad_norm, wl["weight_grad_norm"]),
                    (gl.activation_grad_norm, wl["activation_grad_norm"]),
                ]
        for g, w in pairs:
            if g is None:
                return math.inf
            worst = max(worst, abs(g - w) / max(abs(w), 1e-30))
    return worst


def row(name: str, value: str, note: str = "") -> None:
    print(f"  {name:<44} {value:>12}  {note}")


def default_preset(repeats: int) -> None:
    from app.demo.runner import DemoRunner

    experiment, params = resolve(DEFAULT_EXPERIMENT, {})
    timed_engine(
        experiment, params
    )  # first-call costs (allocator, kernels) are not the steady state
    run_baseline(experiment, params)
    runs, refs = [], []
    for _ in range(repeats):  # interleaved, so both see the same machine load
        runs.append(timed_engine(experiment, params))
        t0 = time.perf_counter()
        reference = run_baseline(experiment, params)
        refs.append(time.perf_counter() - t0)
    first = statistics.median(r[0] for r in runs)
    total = statistics.median(r[1] for r in runs)
    ref_total = statistics.median(refs)
    speedup = statistics.median(ref / r[1] for ref, r in zip(refs, runs, strict=True))
    diff = max_rel_diff(runs[-1][2], reference)

    runner = DemoRunner(device="cpu")
    asyncio.run(runner.result(experiment, params))

    async def answer_cached() -> list[float]:
        """In one running loop, as the server answers (asyncio.run's own set-up and teardown
        would cost more than the answer)."""
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            out = await runner.result(experiment, params)
            times.append(time.perf_counter() - t0)
            assert out.cached
        return times

    cached = asyncio.run(answer_cached())
    runner.shutdown()

    def mark(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"\nDefault experiment {DEFAULT_EXPERIMENT!r}: {experiment.config(params)}")
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
    row("total time, one-variant-at-a-time baseline", f"{ref_total * 1000:.0f} ms")
    row(
        "speed-up of the batched engine",
        f"{speedup:.2f}x",
        f"target >= {TARGETS['speedup']}x: {mark(speedup >= 1.5)} (median of paired runs)",
    )
    row(
        "max relative difference engine vs baseline",
        f"{diff:.1e}",
        "same numbers" if diff < 1e-5 else "DIFFERENT",
    )
    row("cached answer through DemoRunner", f"{statistics.median(cached) * 1000:.2f} ms")
    print(f"  summary: {runs[-1][2].summary}")


def sized(d: GradientFlowParams, depth: int, width: int, batch: int) -> GradientFlowParams:
    """d at this size, with steps=0, unvalidated (it may be over the budget)."""
    size = {"depth": depth, "width": width, "batch_size": batch, "steps": 0}
    return type(d).model_construct(**(d.model_dump() | size))


def largest_runs() -> None:
    """The gradient-flow experiments at the biggest sizes their compute budget allows."""
    print(f"\nLargest runs the compute budget ({BUDGET_S:g} s) allows, per experiment:")
    print(
        f"  {'experiment':<22} {'depth':>5} {'width':>5} {'batch':>5} {'steps':>5} "
        f"{'estimate':>9} {'measured':>9}"
    )
    worst = 0.0
    for name, experiment in EXPERIMENTS.items():
        model = experiment.params
        if not issubclass(model, GradientFlowParams):
            continue  # other families size their runs differently
        bounds = {n: describe(n, f) for n, f in model.model_fields.items()}
        d = model()
        sizes = [
            # the biggest network at the batch size that still allows a few steps
            (int(bounds["depth"]["max"]), int(bounds["width"]["max"]), None),
            # the default network, trained for as many steps as allowed
            (d.depth, d.width, d.batch_size),
        ]
        for depth, width, batch in sizes:
            if batch is None:
                batch = int(bounds["batch_size"]["max"])
                while batch > 8 and sized(d, depth, width, batch).max_steps() < 1:
                    batch //= 2
            steps = min(int(bounds["steps"]["max"]), sized(d, depth, width, batch).max_steps())
            _, params = resolve(
                name,
                {
                    "depth": str(depth),
                    "width": str(width),
                    "batch_size": str(batch),
                    "steps": str(steps),
                },
            )
            _, total, _ = timed_engine(experiment, params)
            worst = max(worst, total)
            est = params.estimate_seconds()
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

    print(
        f"torch {torch.__version__}, import {TORCH_IMPORT_S:.2f} s, "
        f"{os.cpu_count()} CPUs, device cpu"
    )
    default_preset(args.repeats)
    http_vs_script(args.repeats)
    every_experiment()
    if not args.quick:
        largest_runs()


if __name__ == "__main__":
    main()
