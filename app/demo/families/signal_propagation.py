"""Signal propagation: what happens to a signal (tokens, inputs, gradients) across depth.

Most experiments measure networks at initialization: the same input and weights go through
every variant, which differ only by the idea (a skip, an MLP, orthogonal weights, a norm).
Engines: app/demo/engines/signal_propagation_<part>.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from app.demo.claims import RUN, Claim, metric, ratio
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.params import ExperimentParams

FAMILY = "signal-propagation"
_ENGINES = "app.demo.engines.signal_propagation"


@dataclass(frozen=True)
class BlockVariant(VariantSpec):
    """A stack of attention layers, with or without an MLP and skip connections."""

    mlp: bool = False  # an MLP after each attention layer
    skip: bool = False  # x + f(x) around the attention (and the MLP)


@dataclass(frozen=True)
class DepthVariant(VariantSpec):
    """A plain or residual ReLU network; depth None takes the run's."""

    residual: bool = False
    depth: int | None = None


# ----------------------------------------------------------------------------- rank collapse


class RankCollapseParams(ExperimentParams):
    budget_param: ClassVar[str] = "depth"

    depth: int = Field(6, ge=1, le=64, description="Attention layers stacked.")
    tokens: int = Field(32, ge=2, le=256, description="Tokens in the sequence.")
    heads: int = Field(4, ge=1, le=16, description="Attention heads per layer.")
    head_dim: int = Field(
        16, ge=2, le=64, description="Dimensions per head (width = heads x head_dim)."
    )
    layernorm: Literal["pre", "none"] = Field(
        "pre", description="LayerNorm on the input of each attention and MLP (pre-LN), or none."
    )

    def estimate_seconds(self) -> float:
        """Per layer: 4 variants' float64 matmuls at 10 GFLOP/s (2x the time measured here)."""
        n, d = self.tokens, self.heads * self.head_dim
        flops = 2 * (12 * n * d * d + 2 * n * n * d)  # per variant and layer
        return 0.05 + self.depth * (1e-3 + 4 * flops / 1e10)


RANK_COLLAPSE = Experiment(
    name="rank-collapse",
    title="Rank collapse in pure self-attention",
    family=FAMILY,
    description=(
        "Random tokens pass through a stack of self-attention layers at initialization. "
        "Attention averages tokens, so with attention alone every token becomes the same "
        "vector (the token matrix collapses to rank 1) and it does so doubly exponentially: "
        "each layer roughly cubes the distance from rank 1. An MLP after each layer does not "
        "stop it; skip connections do, because they carry each token past the averaging."
    ),
    citation="Dong et al., 2021",
    terms=(
        "self-attention",
        "attention",
        "multi-head-attention",
        "feed-forward-network",
        "transformer",
    ),
    variants=(
        BlockVariant("attention", "Attention only", "X = SA(X)."),
        BlockVariant("attention-mlp", "Attention + MLP", "X = MLP(SA(X)), no skips.", mlp=True),
        BlockVariant("attention-skip", "Attention + skip", "X = X + SA(X).", skip=True),
        BlockVariant(
            "transformer", "Full block", "X = X + SA(X); X = X + MLP(X).", mlp=True, skip=True
        ),
    ),
    params=RankCollapseParams,
    charts=(
        ChartSpec("residual", "line", "Distance of the tokens from rank 1, by layer"),
        ChartSpec("spectrum", "line", "Singular values of the tokens after the last layer"),
    ),
    claims=(
        Claim(
            "attention-collapses",
            "With attention alone, the final residual is below 1/1000 of the tokens' norm",
            metric("attention", "final_residual"),
            "<",
            1e-3,
        ),
        Claim(
            "doubly-exponential",
            "Each attention layer roughly cubes the residual: layer 3 removes at least twice as "
            "many orders of magnitude as layer 2 (a constant factor per layer would give 1)",
            metric("attention", "log_shrink_growth"),
            ">=",
            2,
        ),
        Claim(
            "mlp-does-not-prevent",
            "With an MLP after each attention layer but no skips, it still falls below 1/1000",
            metric("attention-mlp", "final_residual"),
            "<",
            1e-3,
        ),
        Claim(
            "skip-prevents",
            "With skip connections the residual stays above 0.25",
            metric("attention-skip", "final_residual"),
            ">",
            0.25,
        ),
        Claim(
            "transformer-keeps-rank",
            "In the full block (attention, MLP and skips) it stays above 0.25",
            metric("transformer", "final_residual"),
            ">",
            0.25,
        ),
    ),
    counterfactual={"depth": 1},
    engine=f"{_ENGINES}_rank:run",
    fixed={"weights": "Gaussian, variance 1/width (MLP: 2/width, ReLU)", "biases": "none"},
)


# ----------------------------------------------------------------------------- shattered gradients


class ShatteredParams(ExperimentParams):
    budget_param: ClassVar[str] = "depth"

    depth: int = Field(50, ge=2, le=100, description="Hidden layers of the deep networks.")
    width: int = Field(128, ge=16, le=256, description="Units per hidden layer.")
    points: int = Field(256, ge=32, le=1024, description="Inputs on the sweep of x over [-2, 2].")

    def estimate_seconds(self) -> float:
        """2 + 2 depth layers, forward and backward, at 30 GFLOP/s (2x the time measured here)."""
        per_layer = 1e-4 + 6 * self.points * self.width**2 / 3e10
        return 0.05 + (2 + 2 * self.depth) * per_layer


SHATTERED_GRADIENTS = Experiment(
    name="shattered-gradients",
    title="Shattered gradients: plain deep networks vs ResNets",
    family=FAMILY,
    description=(
        "A scalar input x sweeps [-2, 2] through random ReLU networks with batch normalization, "
        "and we take the derivative of the output, dy/dx, at every point. In a shallow network "
        "it changes smoothly with x. In a deep plain network it changes sign almost from one "
        "point to the next, like white noise, so a gradient step learns little that carries "
        "to nearby inputs. A ResNet of the same depth keeps its gradient smooth."
    ),
    citation="Balduzzi et al., 2017",
    terms=("resnet",),
    variants=(
        DepthVariant("shallow", "Shallow (2 layers)", "h = ReLU(BN(W h)), 2 layers.", depth=2),
        DepthVariant("plain", "Deep plain", "h = ReLU(BN(W h)) in every layer."),
        DepthVariant("resnet", "Deep ResNet", "h = h + W ReLU(BN(h)).", residual=True),
    ),
    params=ShatteredParams,
    charts=(
        ChartSpec("gradient", "line", "dy/dx along the input"),
        ChartSpec("autocorrelation", "line", "Autocorrelation of dy/dx by lag"),
    ),
    claims=(
        Claim(
            "plain-gradient-shattered",
            "The deep plain network's dy/dx is like white noise: lag-1 autocorrelation near 0",
            metric("plain", "lag1_autocorrelation"),
            "between",
            -0.3,
            0.3,
        ),
        Claim(
            "resnet-gradient-correlated",
            "In the ResNet of the same depth it stays above 0.5",
            metric("resnet", "lag1_autocorrelation"),
            ">",
            0.5,
        ),
        Claim(
            "shallow-gradient-smooth",
            "In the 2-layer network it is above 0.8",
            metric("shallow", "lag1_autocorrelation"),
            ">",
            0.8,
        ),
    ),
    counterfactual={"depth": 2},
    engine=f"{_ENGINES}_shattered:run",
    fixed={"weights": "Gaussian, He (variance 2/width)", "batch norm": "the sweep's statistics"},
)


# ----------------------------------------------------------------------------- dynamical isometry


class IsometryParams(ExperimentParams):
    budget_param: ClassVar[str] = "depth"

    depth: int = Field(64, ge=1, le=256, description="Tanh layers.")
    width: int = Field(128, ge=8, le=256, description="Units per layer (J is width x width).")
    gain: float = Field(1.0, ge=0.25, le=4.0, description="Weight scale (1: critical for tanh).")

    def estimate_seconds(self) -> float:
        """2 x depth float64 N^3 products and 32 SVDs (1.3-2x the time measured here)."""
        n = self.width
        svds = min(16, self.depth) * 2 * (2e-4 + 10 * n**3 / 1e10)
        return 0.02 + 2 * self.depth * (2e-5 + 2 * n**3 / 4e9) + svds


DYNAMICAL_ISOMETRY = Experiment(
    name="dynamical-isometry",
    title="Dynamical isometry: orthogonal vs Gaussian initialization",
    family=FAMILY,
    description=(
        "The input-output Jacobian of a deep tanh network at initialization, with Gaussian or "
        "orthogonal weights at gain 1, the critical gain for tanh (between order, where signals "
        "die out, and chaos). Its singular values say how much each input direction is "
        "stretched: with Gaussian weights they spread over many orders of magnitude with depth; "
        "orthogonal weights keep them close together (dynamical isometry), which is what lets "
        "very deep networks train."
    ),
    citation="Saxe et al., 2014; Pennington et al., 2017",
    terms=("weight-initialization",),
    variants=(
        VariantSpec("gaussian", "Gaussian", "W ~ N(0, gain^2 / width)."),
        VariantSpec("orthogonal", "Orthogonal", "W = gain x Q, Q from the same Gaussian draw."),
    ),
    params=IsometryParams,
    charts=(
        ChartSpec("spectrum", "line", "Singular values of the input-output Jacobian"),
        ChartSpec("spread", "line", "Spread of the singular values by depth"),
    ),
    claims=(
        Claim(
            "gaussian-spreads",
            "With Gaussian weights the Jacobian's largest singular value is over 100x its median",
            metric("gaussian", "spread"),
            ">",
            100,
        ),
        Claim(
            "orthogonal-isometric",
            "With orthogonal weights it is under 10 times the median",
            metric("orthogonal", "spread"),
            "<",
            10,
        ),
    ),
    counterfactual={"depth": 2},
    engine=f"{_ENGINES}_isometry:run",
    fixed={"activation": "tanh", "biases": "none", "input": "one Gaussian vector, unit variance"},
)


# ----------------------------------------------------------------------------- RMSNorm


class NormParams(ExperimentParams):
    offset: float = Field(
        0.0, ge=0, le=50, description="Std of a random constant added to an input's features."
    )
    width: int = Field(32, ge=8, le=256, description="Units per hidden layer.")
    steps: int = Field(200, ge=0, le=3000, description="Training steps (Adam).")
    batch_size: int = Field(128, ge=16, le=1024, description="Examples per step.")
    lr: float = Field(1e-2, ge=1e-4, le=0.1, description="Learning rate.")

    def estimate_seconds(self) -> float:
        """2 variants' steps and evaluations at 15 GFLOP/s (1.5-2.5x the time measured here)."""
        macs = 16 * self.width + self.width**2  # per example
        per_step = 1.2e-3 + 6 * self.batch_size * macs / 1.5e10
        evals = (11 * 1024 + 3 * 8192) * 2 * macs / 1.5e10
        return 0.1 + 2 * (self.steps * per_step + evals)


RMSNORM = Experiment(
    name="rmsnorm-vs-layernorm",
    title="RMSNorm vs LayerNorm",
    family=FAMILY,
    description=(
        "RMSNorm keeps LayerNorm's re-scaling (divide by the root mean square) and drops its "
        "re-centering (subtract the mean), saving one statistic per vector. The same small "
        "network trains with either on the same data: RMSNorm trains as well. Both ignore a "
        "scaled input, but only LayerNorm ignores a constant added to every feature: give "
        "each input a large random offset and RMSNorm falls behind."
    ),
    citation="Zhang and Sennrich, 2019",
    terms=("rmsnorm",),
    variants=(
        VariantSpec("layernorm", "LayerNorm", "(x - mean) / std, then a gain and a bias."),
        VariantSpec("rmsnorm", "RMSNorm", "x / rms(x), then a gain."),
    ),
    params=NormParams,
    charts=(
        ChartSpec("loss", "line", "Training and validation loss by step"),
        ChartSpec("invariance", "bar", "Output change under shifted and scaled inputs"),
    ),
    claims=(
        Claim(
            "rmsnorm-trains-as-well",
            "RMSNorm's final validation loss is at most 1.25x LayerNorm's",
            metric(RUN, "rms_over_ln_val_loss"),
            "<=",
            1.25,
        ),
        Claim(
            "rmsnorm-not-shift-invariant",
            "Adding 1 to every input moves the RMSNorm network's output by over 5%",
            metric("rmsnorm", "shift_change"),
            ">",
            0.05,
        ),
    ),
    counterfactual={"offset": 30},
    engine=f"{_ENGINES}_norms:run",
    fixed={"network": "norm-Linear-ReLU-norm-Linear-ReLU-Linear", "inputs": 16, "task": "teacher"},
)


# ----------------------------------------------------------------------------- softmax


class SoftmaxParams(ExperimentParams):
    max_scale: float = Field(40, ge=1, le=1000, description="Largest logit scale on the sweep.")
    tokens: int = Field(64, ge=4, le=1024, description="Keys each query attends over.")
    head_dim: int = Field(64, ge=4, le=256, description="Dimensions of queries and keys.")

    def estimate_seconds(self) -> float:
        """17 softmaxes of n x n and the n x d x d projections, float64 at 1 GFLOP/s."""
        n, d = self.tokens, self.head_dim
        return 0.02 + (17 * 2 * 20 * n * n + 8 * n * d * d + 4 * d**3) / 1e9


SOFTMAX_TEMPERATURE = Experiment(
    name="softmax-temperature",
    title="Softmax temperature and attention entropy collapse",
    family=FAMILY,
    description=(
        "Attention weights are a softmax of logits; a logit scale s is a temperature of 1/s. "
        "As the scale grows (in training, as the query and key weights grow), attention "
        "concentrates on fewer keys and its entropy falls from near ln(n), uniform, toward 0: "
        "entropy collapse, which goes with unstable training. Dividing each weight matrix by "
        "its spectral norm (sigma-reparam) keeps the logits from growing with the weights."
    ),
    citation="Zhai et al., 2023",
    terms=("softmax",),
    variants=(
        VariantSpec("attention", "Attention", "softmax(s (X W_Q)(X W_K)^T / sqrt(d))."),
        VariantSpec("sigma-reparam", "Sigma-reparam", "W_Q, W_K divided by their spectral norms."),
    ),
    params=SoftmaxParams,
    charts=(
        ChartSpec("entropy", "line", "Mean attention entropy by logit scale"),
        ChartSpec("weights", "line", "One query's attention weights at three scales"),
    ),
    claims=(
        Claim(
            "entropy-collapses",
            "At the largest scale the mean attention entropy is below 1 nat",
            metric("attention", "entropy_at_max_scale"),
            "<",
            1,
        ),
        Claim(
            "near-uniform-at-scale-1",
            "At scale 1 it is above 80% of ln(n), the entropy of uniform attention",
            ratio(metric("attention", "entropy_at_unit_scale"), metric(RUN, "max_entropy")),
            ">",
            0.8,
        ),
        Claim(
            "one-key-dominates",
            "At the largest scale each query gives over half its attention to one key",
            metric("attention", "top_weight_at_max_scale"),
            ">",
            0.5,
        ),
    ),
    counterfactual={"max_scale": 2},
    engine=f"{_ENGINES}_softmax:run",
    fixed={"weights": "Gaussian, variance 1/head_dim", "tokens": "Gaussian"},
)


EXPERIMENTS = (RANK_COLLAPSE, SHATTERED_GRADIENTS, DYNAMICAL_ISOMETRY, RMSNORM, SOFTMAX_TEMPERATURE)
