"""Gradient flow: how much gradient reaches each layer of a deep network, and what keeps it.

K variants of a deep MLP (or of transformer blocks) train together on the same data from the
same seed; the engine (app/demo/engines/gradient_flow.py) records every layer's gradient
norms at initialization and at a few later steps. Claims compare the first layer's gradient
with the last layer's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from app.demo.claims import RUN, Claim, metric
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.params import BUDGET_S, ExperimentParams

FAMILY = "gradient-flow"
ENGINE = "app.demo.engines.gradient_flow:run"
TRANSFORMER_TOKENS = 16  # tokens per example of the teacher task (spirals has 2)

Activation = Literal["relu", "tanh", "sigmoid", "gelu"]
Init = Literal["default", "xavier", "kaiming"]  # default = torch's own nn.Linear init
Norm = Literal["none", "layernorm", "batchnorm"]
BranchScale = Literal["1/sqrt(depth)", "1"]  # residual h + s*f(h)
Task = Literal["teacher", "spirals"]


@dataclass(frozen=True)
class GradientVariant(VariantSpec):
    """A network of the comparison; None fields take the run's value."""

    residual: bool | None = None  # MLP: h + s*f(h) instead of f(h)
    activation: str | None = None
    init: str | None = None
    norm: str | None = None
    block: str | None = None  # transformer only: "post-ln" | "pre-ln" | "no-residual"


# ----------------------------------------------------------------------------- parameters


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
        return 0.1 + (steps + 1) * self.n_variants * self.depth * per_layer

    def max_steps(self) -> int:
        """The most steps the compute budget allows at this size."""
        one = self.estimate_seconds(0)
        per_step = self.estimate_seconds(1) - one
        return max(0, math.floor((BUDGET_S - one) / per_step))

    def budget_problem(self) -> tuple[str, str] | None:
        if self.estimate_seconds() <= BUDGET_S:
            return None
        size = f"depth={self.depth}, width={self.width} and batch_size={self.batch_size}"
        if self.estimate_seconds(0) > BUDGET_S:
            # even initialization alone is too big: blame the size furthest above its default
            fields = type(self).model_fields
            param = max(
                ("batch_size", "width", "depth"),
                key=lambda n: getattr(self, n) / float(fields[n].default),
            )
            return param, (
                f"{size} are too large together for the compute budget of about "
                f"{BUDGET_S:g} s per run, even with steps=0; lower {param} "
                f"(now {getattr(self, param)})"
            )
        return "steps", (
            f"steps must be at most {self.max_steps()} for {size} to stay within the compute "
            f"budget of about {BUDGET_S:g} s per run, got {self.steps}; lower steps, "
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
    batch_size: int = _batch(64)
    activation: Activation = Field("tanh", description=_ACT_HELP)
    init: Init = Field("default", description=_INIT_HELP)


class PlacementParams(GradientFlowParams):
    arch: ClassVar[Literal["mlp", "transformer"]] = "transformer"
    n_variants: ClassVar[int] = 3
    depth: int = _depth(12)
    width: int = _width(32, high=128)
    steps: int = _steps(50)
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


# ----------------------------------------------------------------------------- experiments
# Metrics per variant (engine): wg_first_over_last and ag_first_over_last (layer 1's weight /
# input gradient over the last layer's, at initialization), ag_per_layer (the geometric-mean
# factor per layer toward the input), last_wg, initial_loss, final_loss.

_CHARTS = (
    ChartSpec("weight_gradients", "line", "Weight gradient norm by layer at initialization"),
    ChartSpec("input_gradients", "line", "Gradient reaching each layer at initialization"),
    ChartSpec("loss", "line", "Training loss by step"),
)


def _within(variant: str, key: str, factor: float, what: str, cid: str) -> Claim:
    return Claim(
        cid,
        f"In the {what}, layer 1's {'weight' if key.startswith('wg') else 'input'} gradient is "
        f"within {factor:g}x of the last layer's",
        metric(variant, key),
        "between",
        1 / factor,
        factor,
    )


EXPERIMENTS = (
    Experiment(
        name="residual-vs-plain",
        title="Residual connections vs a plain deep network",
        family=FAMILY,
        description=(
            "The same deep MLP with and without residual connections h + s*f(h). In the plain "
            "network the gradient shrinks layer by layer toward the input, so its first layers "
            "barely learn; the identity path of the residual network carries the gradient "
            "back to every layer at nearly the same size."
        ),
        citation="He et al., 2016",
        terms=("residual-connection",),
        variants=(
            GradientVariant("plain", "Plain", "h = f(h) in every layer.", residual=False),
            GradientVariant(
                "residual", "Residual", "h = h + s*f(h) in every layer.", residual=True
            ),
        ),
        params=ResidualParams,
        charts=_CHARTS,
        claims=(
            Claim(
                "plain-gradient-vanishes",
                "In the plain network, layer 1's weight gradient is below 1/1000 of the last "
                "layer's",
                metric("plain", "wg_first_over_last"),
                "<",
                1e-3,
            ),
            _within(
                "residual", "wg_first_over_last", 3, "residual network", "residual-gradient-kept"
            ),
            Claim(
                "residual-trains-better",
                "The residual network ends with under half the plain network's training loss",
                lambda m: m[RUN]["residual_over_plain_final_loss"],
                "<",
                0.5,
            ),
        ),
        counterfactual={"depth": 2},
        engine=ENGINE,
    ),
    Experiment(
        name="vanishing-gradient",
        title="Vanishing gradients in a deep sigmoid network",
        family=FAMILY,
        description=(
            "A deep plain MLP with sigmoid, tanh or ReLU units. With sigmoid the gradient "
            "shrinks by a roughly constant factor at every layer, so it decays geometrically "
            "toward the input; tanh and ReLU lose much less per layer."
        ),
        citation="Glorot and Bengio, 2010",
        terms=("vanishing-gradient", "backpropagation"),
        variants=(
            GradientVariant("sigmoid", "Sigmoid", "Logistic sigmoid units.", activation="sigmoid"),
            GradientVariant("tanh", "Tanh", "Hyperbolic tangent units.", activation="tanh"),
            GradientVariant("relu", "ReLU", "Rectified linear units.", activation="relu"),
        ),
        params=VanishingParams,
        charts=_CHARTS,
        claims=(
            Claim(
                "sigmoid-gradient-vanishes",
                "With sigmoid units the gradient reaching layer 1 is below 1/1000 of the one "
                "reaching the last layer",
                metric("sigmoid", "ag_first_over_last"),
                "<",
                1e-3,
            ),
            Claim(
                "sigmoid-constant-factor",
                "It shrinks by a factor of about 0.14 per layer (sigmoid's slope is at most "
                "1/4), between 0.05 and 0.25",
                metric("sigmoid", "ag_per_layer"),
                "between",
                0.05,
                0.25,
            ),
            Claim(
                "sigmoid-loses-most",
                "Sigmoid's per-layer factor is at most half of tanh's and ReLU's",
                lambda m: m[RUN]["sigmoid_over_best_other_factor"],
                "<=",
                0.5,
            ),
        ),
        counterfactual={"depth": 2},
        engine=ENGINE,
        fixed={"norm": "none", "residual": "no"},
    ),
    Experiment(
        name="normalization",
        title="Normalization layers in a deep network",
        family=FAMILY,
        description=(
            "A deep plain MLP without normalization, with layer normalization and with batch "
            "normalization before every hidden layer. Without it the gradient fades toward "
            "the input; normalizing each layer's input keeps the gradient at a similar scale "
            "across depth, and the normalized networks train faster."
        ),
        citation="Ioffe and Szegedy, 2015; Ba et al., 2016",
        terms=("batch-normalization", "layer-normalization"),
        variants=(
            GradientVariant("none", "No normalization", "Plain layers.", norm="none"),
            GradientVariant(
                "layernorm", "LayerNorm", "Layer normalization (per example).", norm="layernorm"
            ),
            GradientVariant(
                "batchnorm",
                "BatchNorm",
                "Batch normalization (per feature, batch statistics).",
                norm="batchnorm",
            ),
        ),
        params=NormalizationParams,
        charts=_CHARTS,
        claims=(
            Claim(
                "unnormalized-gradient-fades",
                "Without normalization layer 1's weight gradient is below 1/100 of the last "
                "layer's",
                metric("none", "wg_first_over_last"),
                "<",
                1e-2,
            ),
            _within(
                "layernorm", "wg_first_over_last", 10, "LayerNorm network", "layernorm-keeps-scale"
            ),
            _within(
                "batchnorm", "wg_first_over_last", 10, "BatchNorm network", "batchnorm-keeps-scale"
            ),
            Claim(
                "normalized-trains-faster",
                "Both normalized networks end with a lower training loss than the plain one",
                lambda m: m[RUN]["worse_normalized_over_none_final_loss"],
                "<",
                1.0,
            ),
        ),
        counterfactual={"depth": 2},
        engine=ENGINE,
        fixed={"residual": "no"},
    ),
    Experiment(
        name="layernorm-placement",
        title="Post-LN vs Pre-LN transformer blocks",
        family=FAMILY,
        description=(
            "Transformer blocks (self-attention and MLP) with layer normalization after the "
            "residual addition (Post-LN, the original Transformer), inside the residual branch "
            "(Pre-LN), or without a residual path. At initialization the Post-LN blocks near "
            "the output get much larger gradients than Pre-LN's, which is why Post-LN needs a "
            "learning-rate warm-up; Pre-LN gradients are about the same in every block."
        ),
        citation="Xiong et al., 2020",
        terms=("transformer", "layer-normalization"),
        variants=(
            GradientVariant("post-ln", "Post-LN", "x = LN(x + F(x)).", block="post-ln"),
            GradientVariant(
                "pre-ln", "Pre-LN", "x = x + F(LN(x)), final LN before the head.", block="pre-ln"
            ),
            GradientVariant("no-residual", "No residual", "x = LN(F(x)).", block="no-residual"),
        ),
        params=PlacementParams,
        charts=_CHARTS,
        claims=(
            Claim(
                "post-ln-large-near-output",
                "At initialization the last Post-LN block's weight gradient is over 1.5x the "
                "last Pre-LN block's",
                lambda m: m[RUN]["post_over_pre_last_wg"],
                ">",
                1.5,
            ),
            _within("pre-ln", "wg_first_over_last", 2.5, "Pre-LN stack", "pre-ln-flat"),
        ),
        counterfactual={"depth": 2},
        engine=ENGINE,
        fixed={
            "activation": "relu",
            "init": "xavier",
            "tokens": "one per input feature",
            "attention_heads": 1,
            "warmup": "none",
        },
    ),
    Experiment(
        name="activation-functions",
        title="Activation functions in a deep network",
        family=FAMILY,
        description=(
            "The same deep plain MLP with ReLU, tanh, sigmoid and GELU units. With He "
            "(Kaiming) initialization ReLU keeps the gradient at the same scale in every "
            "layer, while sigmoid, whose slope is at most 1/4, loses most of it at each layer."
        ),
        citation="He et al., 2015; Glorot and Bengio, 2010",
        terms=("activation-function", "relu", "gelu"),
        variants=tuple(
            GradientVariant(a, label, f"{label} units.", activation=a)
            for a, label in (
                ("relu", "ReLU"),
                ("tanh", "Tanh"),
                ("sigmoid", "Sigmoid"),
                ("gelu", "GELU"),
            )
        ),
        params=ActivationParams,
        charts=_CHARTS,
        claims=(
            Claim(
                "sigmoid-loses-signal",
                "With sigmoid units the gradient reaching layer 1 is below 1e-6 of the one "
                "reaching the last layer",
                metric("sigmoid", "ag_first_over_last"),
                "<",
                1e-6,
            ),
            Claim(
                "relu-keeps-signal",
                "With ReLU units (and He initialization) it stays within 5x",
                metric("relu", "ag_first_over_last"),
                "between",
                0.2,
                5,
            ),
        ),
        counterfactual={"depth": 2},
        engine=ENGINE,
        fixed={"residual": "no"},
    ),
    Experiment(
        name="initialization",
        title="Weight initialization in a deep network",
        family=FAMILY,
        description=(
            "The same deep plain ReLU MLP with torch's default, Xavier and Kaiming (He) "
            "initialization. Only Kaiming, which doubles the weight variance to make up for "
            "the half of the units ReLU switches off, keeps the gradient at the same scale "
            "across layers; with the others it shrinks at every layer."
        ),
        citation="He et al., 2015; Glorot and Bengio, 2010",
        terms=("weight-initialization",),
        variants=(
            GradientVariant(
                "default",
                "Default",
                "torch's nn.Linear init, U(-1/sqrt(n), 1/sqrt(n)).",
                init="default",
            ),
            GradientVariant(
                "xavier", "Xavier", "Glorot uniform, variance 2/(n_in + n_out).", init="xavier"
            ),
            GradientVariant("kaiming", "Kaiming", "He normal, variance 2/n_in.", init="kaiming"),
        ),
        params=InitializationParams,
        charts=_CHARTS,
        claims=(
            Claim(
                "default-init-shrinks",
                "With torch's default initialization the gradient reaching layer 1 is below "
                "1/100 of the one reaching the last layer",
                metric("default", "ag_first_over_last"),
                "<",
                1e-2,
            ),
            Claim(
                "kaiming-keeps-scale",
                "With Kaiming initialization it stays within 5x",
                metric("kaiming", "ag_first_over_last"),
                "between",
                0.2,
                5,
            ),
            Claim(
                "xavier-halves-variance",
                "With Xavier it shrinks by about 1/sqrt(2) per layer (per-layer factor 0.6-0.8)",
                metric("xavier", "ag_per_layer"),
                "between",
                0.6,
                0.8,
            ),
        ),
        counterfactual={"depth": 2},
        engine=ENGINE,
        fixed={"residual": "no"},
    ),
)
