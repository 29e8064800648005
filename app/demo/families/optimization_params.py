"""The optimization family's parameter models (no torch): bounds, defaults and budgets.

Each model's estimate_seconds() is the run's wall time on the reference machine (2-core CPU,
one torch thread), measured with some margin, so the compute budget refuses runs far beyond
the defaults.
"""

from __future__ import annotations

from pydantic import Field

from app.demo.params import ExperimentParams

FAMILY = "optimization"
ENGINES = "app.demo.engines.optimization"


def _steps(default: int, high: int) -> int:
    return Field(default, ge=1, le=high, description="Optimizer steps.")


def _lr(default: float, low: float, high: float, what: str = "Learning rate.") -> float:
    return Field(default, ge=low, le=high, description=what)


class OptimizersParams(ExperimentParams):
    """A 2-D least-squares valley and the optimizers' settings."""

    condition_number: float = Field(
        50.0,
        ge=1.0,
        le=1000.0,
        description="How many times steeper the valley is along w2 than along w1.",
    )
    lr: float = _lr(1.5, 1e-3, 3.0, "Learning rate of GD, SGD and momentum (GD diverges above 2).")
    momentum: float = Field(
        0.9, ge=0.0, le=0.99, description="Momentum coefficient beta of the heavy ball."
    )
    adam_lr: float = _lr(
        0.3, 1e-3, 2.0, "Adam's learning rate (about its step size per coordinate)."
    )
    batch_size: int = Field(16, ge=1, le=256, description="SGD's minibatch, of 256 examples.")
    steps: int = _steps(100, 2000)

    def estimate_seconds(self) -> float:
        """Four optimizers, about 0.1 ms per step each, and the contour grid."""
        return 0.05 + self.steps * 4e-4


class SweepParams(ExperimentParams):
    """The sweep's range and the MLP it trains."""

    lr_min: float = _lr(1e-3, 1e-5, 1.0, "Smallest learning rate of the sweep.")
    lr_max: float = _lr(3.0, 1e-4, 100.0, "Largest learning rate of the sweep.")
    points: int = Field(
        8, ge=3, le=16, description="Learning rates in the sweep, evenly spaced on a log scale."
    )
    hidden: int = Field(32, ge=4, le=128, description="Hidden units of the MLP.")
    steps: int = _steps(100, 2000)

    def estimate_seconds(self) -> float:
        """About 0.2 ms per step and copy at 32 hidden units, on 128 examples."""
        return 0.05 + self.steps * self.points * 2e-4 * max(1.0, self.hidden / 32)


class EdgeParams(ExperimentParams):
    """Full-batch GD on an MLP memorizing random targets."""

    lr: float = _lr(
        0.2, 1e-3, 1.0, "Learning rate of full-batch gradient descent; the edge is 2/lr."
    )
    width: int = Field(32, ge=4, le=128, description="Units in each of the two tanh hidden layers.")
    examples: int = Field(64, ge=8, le=512, description="Training examples (random targets).")
    steps: int = _steps(400, 4000)

    def estimate_seconds(self) -> float:
        """A gradient and, every 10 steps, four Hessian-vector products: about 1.2 ms a step
        at the defaults, growing with examples x width^2 beyond them."""
        size = max(1.0, self.examples * self.width**2 / (64 * 32**2))
        return 0.05 + self.steps * 1.2e-3 * size


class ClippingParams(ExperimentParams):
    """A tanh RNN with stretching recurrent weights, trained by full-batch gradient descent."""

    recurrent_gain: float = Field(
        2.0,
        ge=0.1,
        le=4.0,
        description="Scale of the initial recurrent weights, W ~ gain * N(0, 1/H); above 1 "
        "they stretch.",
    )
    seq_len: int = Field(20, ge=2, le=100, description="Time steps per sequence.")
    lr: float = _lr(1.0, 1e-3, 10.0)
    max_norm: float = Field(
        0.5, ge=1e-3, le=1e3, description="Clipping threshold on the global gradient norm."
    )
    steps: int = _steps(150, 2000)

    def estimate_seconds(self) -> float:
        """Two RNNs of 32 units on 32 sequences: about 0.1 ms per time step and step."""
        return 0.05 + (self.steps + 1) * self.seq_len * 1.2e-4


class SchedulesParams(ExperimentParams):
    """SGD on a noisy linear regression, at one peak learning rate for every schedule."""

    lr: float = _lr(0.5, 1e-3, 1.5, "Peak learning rate, shared by every schedule.")
    batch_size: int = Field(
        8,
        ge=1,
        le=256,
        description="Minibatch size; 256 (all the data) is full-batch gradient descent.",
    )
    steps: int = _steps(200, 5000)

    def estimate_seconds(self) -> float:
        """About 0.1 ms a step for the three schedules together."""
        return 0.05 + self.steps * 2e-4 * max(1.0, self.batch_size / 64)


class NoiseScaleParams(ExperimentParams):
    """SGD on a small classifier; per-example gradients at about 11 points of training."""

    lr: float = _lr(0.2, 1e-4, 5.0)
    batch_size: int = Field(16, ge=1, le=512, description="SGD's minibatch size.")
    examples: int = Field(
        128, ge=16, le=1024, description="Training examples (the set SGD samples from)."
    )
    hidden: int = Field(32, ge=4, le=128, description="Hidden units of the tanh MLP.")
    steps: int = _steps(300, 5000)

    def estimate_seconds(self) -> float:
        """About 0.3 ms per SGD step, and per measurement a per-example gradient pass."""
        per_measure = 0.004 + 4e-5 * self.examples * max(1.0, self.hidden / 32)
        return 0.1 + self.steps * 3e-4 + 11 * per_measure


class WarmupParams(ExperimentParams):
    """A small transformer trained by Adam at a large learning rate."""

    lr: float = _lr(2e-2, 1e-5, 0.1, "Adam's (peak) learning rate, the same for every variant.")
    warmup_steps: int = Field(
        30, ge=1, le=1000, description="Steps of the linear warm-up from lr/warmup_steps to lr."
    )
    depth: int = Field(3, ge=1, le=8, description="Transformer blocks (attention and MLP).")
    batch_size: int = Field(16, ge=1, le=128, description="Sequences per Adam step.")
    steps: int = _steps(120, 1000)  # 150 held too, at about 1.2 s

    def estimate_seconds(self) -> float:
        """Three variants of width 16 on 8 tokens: about 1.8 ms a block and step (0.8 s at the
        defaults, the family's slowest), more for large batches."""
        return 0.1 + self.steps * self.depth * 1.8e-3 * max(1.0, self.batch_size / 32)
