"""The gradient-flow family's synthetic tasks: a random teacher to regress, or two spirals.

Data come from their own generator (seed + 1) and batches from another (seed + 2), so every
variant of a run sees the same examples in the same order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

N_DATA = 4096  # examples per task; each step draws a batch from them with replacement
TEACHER_DIM = 16  # teacher task: inputs and outputs (tokens of the transformer)


@dataclass
class TaskData:
    x: torch.Tensor  # (N, D) float32 inputs, standardized
    y: torch.Tensor  # (N, O) float32 regression targets, or (N,) int64 class labels
    d_in: int
    d_out: int
    classification: bool


def make_task(task: str, seed: int, n: int = N_DATA) -> TaskData:
    """The synthetic data set of a run, on the CPU, from its own generator (seed + 1)."""
    g = torch.Generator().manual_seed(seed + 1)
    if task == "teacher":
        # a fixed random tanh teacher, 8 -> 64 -> 64 -> 8; targets standardized per output
        d, hid = TEACHER_DIM, 64
        x = torch.randn(n, d, generator=g)
        w1 = torch.randn(hid, d, generator=g) / math.sqrt(d)
        w2 = torch.randn(hid, hid, generator=g) / math.sqrt(hid)
        w3 = torch.randn(d, hid, generator=g) / math.sqrt(hid)
        y = torch.tanh(torch.tanh(x @ w1.T) @ w2.T * 2.0) @ w3.T  # (N, 8)
        y = (y - y.mean(0)) / y.std(0)
        return TaskData(x, y, d_in=d, d_out=d, classification=False)
    if task == "spirals":
        # two interleaved spirals, 1.5 turns each, class = which spiral
        half = n // 2
        t = torch.sqrt(torch.rand(n, generator=g)) * 3 * math.pi + 0.5  # (N,) angle
        label = torch.cat([torch.zeros(half), torch.ones(n - half)]).long()
        angle = t + math.pi * label
        x = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], dim=1)
        x = x + 0.3 * torch.randn(n, 2, generator=g)
        x = (x - x.mean(0)) / x.std(0)
        return TaskData(x, label, d_in=2, d_out=2, classification=True)
    raise ValueError(f"unknown task {task!r}")


def batch_indices(seed: int, steps: int, batch_size: int, n: int = N_DATA) -> torch.Tensor:
    """Which examples each step uses, (steps + 1, B); row 0 measures the initialization."""
    g = torch.Generator().manual_seed(seed + 2)
    return torch.randint(0, n, (steps + 1, batch_size), generator=g)


def task_loss(out: torch.Tensor, y: torch.Tensor, classification: bool) -> torch.Tensor:
    """Per-variant mean loss -> (K,).

    MLP: out (K, B, O). Transformer: out (K, B, T, O), a prediction per token: for the
    teacher token t predicts output t (O = 1, T = 8 outputs); for spirals every token
    predicts the class and the loss averages over tokens.
    """
    k, b = out.shape[:2]
    if classification:
        c = out.shape[-1]
        labels = y.view(b, 1).expand(b, out.numel() // (k * b * c)).reshape(-1)  # (B*T,)
        ce = F.cross_entropy(out.reshape(-1, c), labels.repeat(k), reduction="none")
        return ce.view(k, -1).mean(dim=1)
    return (out.reshape(k, b, -1) - y).square().mean(dim=(1, 2))  # MSE
