"""Gradient-flow parameters: one Pydantic model per experiment (bounds, defaults, budget)."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field

from app.demo.params import ExperimentParams, budget_s

TRANSFORMER_TOKENS = 16  # tokens per example of the teacher task (spirals has 2)

Activation = Literal["relu", "tanh", "sigmoid", "gelu"]
Init = Literal["default", "xavier", "kaiming"]  # default = torch's own nn.Linear init
Norm = Literal["none", "layernorm", "batchnorm"]
BranchScale = Literal["1/sqrt(depth)", "1"]  # residual h + s*f(h)
Task = Literal["teacher", "spirals"]


def _depth(default: int) -> int:
    return Field(
        default,
        ge=2,
        le=64,
        description="Number of hidden layers (blocks); layer 1 is nearest the input.",
    )


def _width(default: int, high: int = 256) -> int:
    return Field(
        default,
        ge=8,
        le=high,
        description="Units per hidden layer (model dimension of the transformer).",
    )


def _steps(default: int) -> int:
    return Field(
        default,
        ge=0,
        le=2000,
        description="Training steps after initialization (0 = initialization only).",
    )


def _batch(default: int) -> int:
    return Field(default, ge=8, le=512, description="Examples per training step.")


def _lr(default: float, high: float = 1.0) -> float:
    return Field(default, ge=1e-5, le=high, description="Learning rate.")


_ACT_HELP = "Nonlinearity after each hidden layer."
_INIT_HELP = "Weight initialization: torch's default, Xavier/Glorot, or Kaiming/He (ReLU gain)."
_NORM_HELP = "Normalization applied to each hidden layer's input (pre-norm)."
_TASK_HELP = "Regression onto a fixed random teacher network, or two-spirals classification."


class GradientFlowParams(ExperimentParams):
    """Sizes and training settings every gradient-flow experiment takes."""

    arch: ClassVar[Literal["mlp", "transformer"]] = "mlp"
    n_variants: ClassVar[int] = 2
    # normalization layers add to every layer's cost (benchmarks/demo.py: 1.55x at 697 steps)
    cost_factor: ClassVar[float] = 1.0

    depth: int = _depth(32)
    width: int = _width(64)
    task: Task = Field("teacher", description=_TASK_HELP)
    steps: int = _steps(100)
    batch_size: int = _batch(32)
    lr: float = _lr(0.02)

    def estimate_seconds(self, steps: int | None = None) -> float:
        """Per step, variant and layer: a fixed cost (dispatch and autograd), a cost per
        activation and a cost per multiply-add; calibrated on the reference machine with some
        margin (benchmarks/demo.py measures the largest runs)."""
        steps = self.steps if steps is None else steps
        w = self.width
        if self.arch == "mlp":
            rows = self.batch_size
            per_layer = 70e-6 + 7e-9 * rows * w + 1e-10 * rows * w * w
        else:
            rows = self.batch_size * TRANSFORMER_TOKENS  # 12 W^2 multiply-adds per token and block
            per_layer = 450e-6 + 2.5e-8 * rows * w + 1.8e-10 * rows * 12 * w * w
        return 0.1 + (steps + 1) * self.n_variants * self.depth * per_layer * self.cost_factor

    def max_steps(self) -> int:
        """The most steps the compute budget allows at this size."""
        one = self.estimate_seconds(0)
        per_step = self.estimate_seconds(1) - one
        return max(0, math.floor((budget_s() - one) / per_step))

    def budget_problem(self) -> tuple[str, str] | None:
        if self.estimate_seconds() <= budget_s():
            return None
        size = f"depth={self.depth}, width={self.width} and batch_size={self.batch_size}"
        if self.estimate_seconds(0) > budget_s():
            # even initialization alone is too big: blame the size furthest above its default
            fields = type(self).model_fields
            param = max(
                ("batch_size", "width", "depth"),
                key=lambda n: getattr(self, n) / float(fields[n].default),
            )
            return param, (
                f"{size} are too large together for the compute budget of about "
                f"{budget_s():g} s per run, even with steps=0; lower {param} "
                f"(now {getattr(self, param)})"
            )
        return "steps", (
            f"steps must be at most {self.max_steps()} for {size} to stay within the compute "
            f"budget of about {budget_s():g} s per run, got {self.steps}; lower steps, "
            "depth, width or batch_size"
        )


class ResidualParams(GradientFlowParams):
    activation: Activation = Field("tanh", description=_ACT_HELP)
    init: Init = Field("default", description=_INIT_HELP)
    norm: Norm = Field("none", description=_NORM_HELP)
    branch_scale: BranchScale = Field(
        "1/sqrt(depth)", description="Scale s of the residual branch in h + s*f(h)."
    )


class VanishingParams(GradientFlowParams):
    n_variants: ClassVar[int] = 3
    depth: int = _depth(10)
    batch_size: int = _batch(64)
    lr: float = _lr(0.1)
    init: Init = Field("default", description=_INIT_HELP)


class NormalizationParams(GradientFlowParams):
    n_variants: ClassVar[int] = 3
    cost_factor: ClassVar[float] = 1.6
    # depth 24 and 50 steps keep a run with BatchNorm and LayerNorm under a second
    depth: int = _depth(24)
    steps: int = _steps(50)
    batch_size: int = _batch(32)
    activation: Activation = Field("tanh", description=_ACT_HELP)
    init: Init = Field("default", description=_INIT_HELP)


class PlacementParams(GradientFlowParams):
    arch: ClassVar[Literal["mlp", "transformer"]] = "transformer"
    n_variants: ClassVar[int] = 3
    depth: int = _depth(12)
    width: int = _width(32, high=128)
    steps: int = _steps(15)  # the claims are about initialization; a few steps show the loss
    batch_size: int = _batch(16)
    lr: float = _lr(1e-3, high=0.1)


class ActivationParams(GradientFlowParams):
    n_variants: ClassVar[int] = 4
    depth: int = _depth(16)
    batch_size: int = _batch(64)
    lr: float = _lr(0.01)
    init: Init = Field("kaiming", description=_INIT_HELP)
    norm: Norm = Field("none", description=_NORM_HELP)


class InitializationParams(GradientFlowParams):
    n_variants: ClassVar[int] = 3
    depth: int = _depth(16)
    batch_size: int = _batch(64)
    activation: Activation = Field("relu", description=_ACT_HELP)
    norm: Norm = Field("none", description=_NORM_HELP)
