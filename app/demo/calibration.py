"""How fast a worker's device is, measured when the worker starts.

A fixed workload (the forward and backward passes of a small MLP, the shape of the demo's
runs) is timed on the device and compared with the time it takes on the reference machine
the compute budget was set on (2-core CPU, one torch thread). The budget then admits runs
`speed` times larger, never smaller: on a slower or busy CPU the wall-clock budget still
stops a run that overruns.
"""

from __future__ import annotations

import time
from typing import Any

# The workload's median time on the reference machine (benchmarks/calibration.py prints it).
REFERENCE_S = 0.168
WIDTH, DEPTH, BATCH, STEPS = 256, 6, 256, 20


def calibrate(device: str, repeats: int = 3) -> dict[str, Any]:
    """{"seconds": the workload's median time here, "speed": REFERENCE_S / seconds}."""
    import torch

    gen = torch.Generator().manual_seed(0)
    layers = [torch.randn(WIDTH, WIDTH, generator=gen) / WIDTH**0.5 for _ in range(DEPTH)]
    weights = [w.to(device).requires_grad_() for w in layers]
    x = torch.randn(BATCH, WIDTH, generator=gen).to(device)

    def workload() -> None:
        for _ in range(STEPS):
            h = x
            for w in weights:
                h = torch.tanh(h @ w)
            h.square().mean().backward()
        if device == "cuda":
            torch.cuda.synchronize()

    workload()  # warm-up: kernels, allocator
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        workload()
        times.append(time.perf_counter() - t0)
    seconds = sorted(times)[len(times) // 2]
    return {"seconds": round(seconds, 4), "speed": round(REFERENCE_S / seconds, 3)}
