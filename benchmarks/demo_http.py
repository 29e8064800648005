"""The demo as a visitor meets it: over HTTP, against the script a user would write.

Imported by benchmarks/demo.py (which prints everything); runnable alone too:

    .venv/bin/python benchmarks/demo_http.py

- `user_script`: the straightforward way to run residual-vs-plain by hand: two nn.Modules,
  one training loop each, every layer's weight-gradient norm read at every step.
- `http_vs_script`: the default residual-vs-plain run through a real server (uvicorn in its
  own process, SQLite, fresh seeds so that nothing is cached), interleaved with the script in
  this process: the same machine load for both; the ratio of the medians is the figure.
- `first_event_over_http`: time from the request to the first progress event of the stream.
- `every_experiment`: each experiment's default run in process, one torch thread.
"""

from __future__ import annotations

import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.demo.catalog import EXPERIMENTS, resolve  # noqa: E402
from app.demo.experiment import execute  # noqa: E402

HTTP_TARGET = 2 / 3  # the HTTP run may take at most this share of the script's time


# ----------------------------------------------------------------------------- the script


def teacher(seed: int, n: int = 4096, d: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random tanh teacher, as the demo uses."""
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, d, generator=g)
    w1 = torch.randn(64, d, generator=g) / math.sqrt(d)
    w2 = torch.randn(64, 64, generator=g) / math.sqrt(64)
    w3 = torch.randn(d, 64, generator=g) / math.sqrt(64)
    y = torch.tanh(torch.tanh(x @ w1.T) @ w2.T * 2.0) @ w3.T
    return x, (y - y.mean(0)) / y.std(0)


class MLP(nn.Module):  # type: ignore[misc]  # torch is untyped here
    def __init__(self, depth: int, width: int, residual: bool) -> None:
        super().__init__()
        self.inp = nn.Linear(16, width)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.out = nn.Linear(width, 16)
        self.residual, self.scale = residual, 1 / math.sqrt(depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for layer in self.hidden:
            f = torch.tanh(layer(h))
            h = h + self.scale * f if self.residual else f
        return self.out(h)


def train(residual: bool, seed: int, depth: int = 32, width: int = 64, steps: int = 100) -> float:
    """One network, its own loop, per-layer gradient norms read every step; its final loss."""
    x, y = teacher(seed)
    torch.manual_seed(seed)
    model = MLP(depth, width, residual)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    g = torch.Generator().manual_seed(seed + 2)
    norms: list[list[float]] = []
    loss = torch.zeros(())
    for step in range(steps + 1):
        idx = torch.randint(0, len(x), (32,), generator=g)
        loss = (model(x[idx]) - y[idx]).square().mean()
        opt.zero_grad()
        loss.backward()
        norms.append([layer.weight.grad.norm().item() for layer in model.hidden])
        if step < steps:
            opt.step()
    return float(loss.detach())


def user_script(seed: int = 0) -> None:
    train(False, seed)
    train(True, seed)


# ----------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server() -> Iterator[httpx.Client]:
    """`glossary serve` on a fresh SQLite file and a free port, without warm-up runs."""
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        env = os.environ | {
            "GLOSSARY_DATABASE_URL": f"sqlite:///{tmp}/glossary.db",
            "GLOSSARY_PORT": str(port),
            "GLOSSARY_DEMO_WARMUP": "false",
            "GLOSSARY_DEMO_DEVICE": "cpu",
        }
        glossary = Path(sys.executable).with_name("glossary")
        proc = subprocess.Popen(  # noqa: S603
            [str(glossary), "serve"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the server did not start")
                time.sleep(0.2)
            yield client
        finally:
            client.close()
            proc.terminate()
            proc.wait(timeout=30)


def _run_over_http(client: httpx.Client, seed: int) -> float:
    t0 = time.perf_counter()
    response = client.get("/api/demo", params={"preset": "residual-vs-plain", "seed": seed})
    elapsed = time.perf_counter() - t0
    body = response.json()
    assert response.status_code == 200 and body["cached"] is False, body
    return elapsed


def _first_event(client: httpx.Client, seed: int) -> float:
    t0 = time.perf_counter()
    params = {"preset": "residual-vs-plain", "seed": seed}
    first = math.inf
    with client.stream("GET", "/api/demo/stream", params=params) as response:
        for line in response.iter_lines():  # read to the end: the run finishes normally
            if line.startswith("event: progress") and first == math.inf:
                first = time.perf_counter() - t0
    return first


def http_vs_script(repeats: int) -> None:
    """The default run over HTTP against the user's script, interleaved."""
    torch.set_num_threads(1)
    with server() as client:
        _run_over_http(client, 10_000)  # the server's first run imports torch and the engine
        user_script()
        http, script, first = [], [], []
        for i in range(repeats):
            http.append(_run_over_http(client, 10_001 + i))
            t0 = time.perf_counter()
            user_script(i)
            script.append(time.perf_counter() - t0)
            first.append(_first_event(client, 20_000 + i))
    ratio = statistics.median(http) / statistics.median(script)
    first_ms = statistics.median(first) * 1000
    print("\nresidual-vs-plain at its defaults, uncached, over HTTP vs the user's script")
    print(f"  (median of {repeats} interleaved runs each; one torch thread each side)")
    _row("over HTTP (uvicorn, SQLite, fresh seed)", f"{statistics.median(http) * 1000:.0f} ms")
    _row(
        "the script (2 nn.Modules, norms every step)", f"{statistics.median(script) * 1000:.0f} ms"
    )
    _row(
        "HTTP / script", f"{ratio:.2f}", f"target <= {HTTP_TARGET:.2f}: {_ok(ratio <= HTTP_TARGET)}"
    )
    _row(
        "first progress event over SSE",
        f"{first_ms:.0f} ms",
        f"target <= 200 ms: {_ok(first_ms <= 200)}",
    )


def _row(name: str, value: str, note: str = "") -> None:
    print(f"  {name:<44} {value:>12}  {note}")


def _ok(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def every_experiment(repeats: int = 3, lm: Any = None) -> None:
    """Each experiment's default run in process (median of `repeats`, after one warm run).
    With `lm` (a TrainedLM, benchmarks/lm.py) only the experiments that run on it."""
    torch.set_num_threads(1)
    which = "on the language model" if lm is not None else "without the language model"
    print(f"\nEvery experiment {which}, at its defaults, in process")
    print(f"  (median of {repeats} after a warm run; one torch thread; target <= 1 s)")
    slowest = ("", 0.0)
    for name in sorted(EXPERIMENTS):
        experiment, params = resolve(name, {})
        if experiment.needs_model != (lm is not None):
            continue
        execute(experiment, params, lm=lm)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = execute(experiment, params, lm=lm)
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        held = f"claims {sum(c.holds for c in result.claims)}/{len(result.claims)} held"
        _row(name, f"{t * 1000:.0f} ms", f"{held}; target <= 1 s: {_ok(t <= 1)}")
        slowest = max(slowest, (name, t), key=lambda x: x[1])
    print(f"  slowest: {slowest[0]} {slowest[1] * 1000:.0f} ms")
    if lm is None:
        print("  (the language-model experiments: .venv/bin/python benchmarks/lm.py)")


if __name__ == "__main__":
    http_vs_script(5)
    every_experiment()
