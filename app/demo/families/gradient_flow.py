"""Gradient flow: how much gradient reaches each layer of a deep network, and what keeps it.

K variants of a deep MLP (or of transformer blocks) train together on the same data from the
same seed; the engine (app/demo/engines/gradient_flow.py) records every layer's gradient
norms at initialization and at a few later steps. Claims compare the first layer's gradient
with the last layer's.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.demo.claims import RUN, Claim, metric
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.families.gradient_flow_params import (
    ActivationParams,
    InitializationParams,
    NormalizationParams,
    PlacementParams,
    ResidualParams,
    VanishingParams,
)

FAMILY = "gradient-flow"
ENGINE = "app.demo.engines.gradient_flow:run"


@dataclass(frozen=True)
class GradientVariant(VariantSpec):
    """A network of the comparison; None fields take the run's value."""

    residual: bool | None = None  # MLP: h + s*f(h) instead of f(h)
    activation: str | None = None
    init: str | None = None
    norm: str | None = None
    block: str | None = None  # transformer only: "post-ln" | "pre-ln" | "no-residual"


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
