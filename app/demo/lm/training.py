"""Training the language model from a fixed seed: same text, code, torch and seed give the same
weights on the CPU, and the hash of those weights names the model in every result.

AdamW with a linear warm-up and cosine decay; random windows of the training text; the
validation loss and a checkpoint every eval_every steps (the perplexity experiment reads the
checkpoints back).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from app.demo.lm.config import LMSpec
from app.demo.lm.gpt import GPT
from app.demo.lm.text import LMText


@dataclass
class TrainingLog:
    """What the training measured: train loss per step, validation loss per checkpoint."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[tuple[int, float]] = field(default_factory=list)  # (step, nats)
    seconds: float = 0.0


@dataclass
class TrainedLM:
    spec: LMSpec
    model: GPT
    log: TrainingLog
    checkpoints: dict[int, dict[str, torch.Tensor]]  # step -> state_dict
    weights_hash: str


ProgressFn = Callable[[int, int, TrainingLog], None]


def windows(
    ids: torch.Tensor, starts: torch.Tensor, block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) start offsets -> inputs and next-token targets, each (B, block)."""
    offsets = starts[:, None] + torch.arange(block + 1)
    chunk = ids[offsets]
    return chunk[:, :-1], chunk[:, 1:]


def lr_at(step: int, spec: LMSpec) -> float:
    t = spec.train
    if step < t.warmup:
        return t.lr * (step + 1) / t.warmup
    progress = (step - t.warmup) / max(1, t.steps - t.warmup)
    return t.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def eval_starts(n_tokens: int, block: int, count: int) -> torch.Tensor:
    """Evenly spaced windows over the text: the same every evaluation."""
    last = n_tokens - block - 1
    return torch.linspace(0, last, count).long()


def mean_loss(model: GPT, ids: torch.Tensor, starts: torch.Tensor, block: int) -> float:
    """Mean next-token cross-entropy (nats) over the windows at `starts`."""
    was_training = model.training
    model.eval()
    x, y = windows(ids, starts, block)
    with torch.no_grad():
        losses = [
            float(model.loss(x[i : i + 32], y[i : i + 32]).item()) * len(x[i : i + 32])
            for i in range(0, len(x), 32)
        ]
    model.train(was_training)
    return sum(losses) / len(x)


def loss_without_grad(model: GPT, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean next-token cross-entropy (nats) of (B, T) windows, no autograd graph kept."""
    with torch.no_grad():
        return float(model.loss(x, y).item())


def weights_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 of every tensor's name, shape, dtype and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def train(
    spec: LMSpec,
    text: LMText,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainedLM:
    """Train spec's model on text's training split (CPU, float32, deterministic)."""
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(spec.train.seed)
    torch.manual_seed(spec.train.seed)  # nn.Module init draws from the global generator
    model = GPT(spec.gpt)
    tc, block = spec.train, spec.gpt.block_size
    if min(len(text.train), len(text.val)) < 2 * block:
        raise ValueError(
            f"too little text to train on: {len(text.train)} training and {len(text.val)} "
            f"held-out tokens, each must be at least {2 * block}"
        )
    train_ids = torch.tensor(text.train, dtype=torch.long)
    val_ids = torch.tensor(text.val, dtype=torch.long)
    val_starts = eval_starts(len(val_ids), block, tc.eval_batches * 16)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": tc.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=tc.lr,
        betas=(0.9, 0.95),
    )
    log = TrainingLog()
    checkpoints: dict[int, dict[str, torch.Tensor]] = {}

    def checkpoint(step: int) -> None:
        log.val_loss.append((step, mean_loss(model, val_ids, val_starts, block)))
        checkpoints[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    checkpoint(0)
    model.train()
    for step in range(tc.steps):
        if should_stop is not None and should_stop():
            raise InterruptedError(f"training stopped at step {step} of {tc.steps}")
        for group in opt.param_groups:
            group["lr"] = lr_at(step, spec)
        starts = torch.randint(0, len(train_ids) - block - 1, (tc.batch_size,), generator=g)
        x, y = windows(train_ids, starts, block)
        loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        log.train_loss.append(loss.item())
        if (step + 1) % tc.eval_every == 0 or step + 1 == tc.steps:
            checkpoint(step + 1)
        if on_progress is not None:
            on_progress(step + 1, tc.steps, log)
    model.eval()
    log.seconds = time.perf_counter() - t0
    return TrainedLM(spec, model, log, checkpoints, weights_hash(model.state_dict()))


def loaded(spec: LMSpec, payload: dict[str, Any]) -> TrainedLM:
    """A TrainedLM from a stored payload (weights.py), its hash checked against the weights."""
    model = GPT(spec.gpt)
    model.load_state_dict(payload["state"])
    model.eval()
    found = weights_hash(model.state_dict())
    if found != payload["weights_hash"]:
        raise ValueError(f"stored weights hash {payload['weights_hash'][:12]} != {found[:12]}")
    log = TrainingLog(
        train_loss=list(payload["train_loss"]),
        val_loss=[(int(s), float(v)) for s, v in payload["val_loss"]],
        seconds=float(payload["seconds"]),
    )
    return TrainedLM(spec, model, log, dict(payload["checkpoints"]), found)
