"""The language model's sizes and its training schedule (no torch here).

FULL is what the server trains (<= 60 s on the reference 2-core CPU, one thread); TINY is what
tests train in a few seconds. Every field is part of the model's identity (service.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from app.demo.lm.text import VOCAB_SIZE

Position = Literal["none", "sinusoidal", "learned", "rotary"]


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = VOCAB_SIZE  # 256 bytes + the special tokens
    block_size: int = 64  # the longest context, in tokens
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 96
    position: Position = "learned"  # how the model knows where a token is


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3  # peak, after a linear warm-up, then cosine decay to lr / 10
    warmup: int = 40
    weight_decay: float = 0.1
    seed: int = 1234
    eval_every: int = 100  # validation loss (and a checkpoint) every this many steps
    eval_batches: int = 8


@dataclass(frozen=True)
class LMSpec:
    """A named model size with its training."""

    name: str
    gpt: GPTConfig = field(default_factory=GPTConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, **asdict(self.gpt), **asdict(self.train)}


FULL = LMSpec("full")
TINY = LMSpec(
    "tiny",
    GPTConfig(block_size=64, n_layer=2, n_head=4, n_embd=64),
    TrainConfig(steps=150, batch_size=16, warmup=10, eval_every=50, eval_batches=2),
)
SPECS = {s.name: s for s in (FULL, TINY)}
