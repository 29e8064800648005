"""Optimization: how the optimizer, the learning rate and its schedule shape training.

Each experiment trains the same problem, from the same start and the same data, under the
settings it compares (optimizers, learning rates, schedules, clipping, warm-up); its engine is
one of app/demo/engines/optimization*.py. The claims check the published effect on the run's
own losses, sharpness or gradient norms.
"""

from __future__ import annotations

from pydantic import Field

from app.demo.claims import RUN, Claim, metric
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.params import ExperimentParams

FAMILY = "optimization"
ENGINES = "app.demo.engines.optimization"


def _steps(default: int, high: int) -> int:
    return Field(default, ge=1, le=high, description="Optimizer steps.")


def _lr(default: float, low: float, high: float, what: str = "Learning rate.") -> float:
    return Field(default, ge=low, le=high, description=what)


# ----------------------------------------------------------------------------- optimizers


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


_OPTIMIZER_VARIANTS = (
    VariantSpec("gd", "GD", "Full-batch gradient descent: w -= lr * grad."),
    VariantSpec("sgd", "SGD", "The same update on the gradient of a random minibatch."),
    VariantSpec("momentum", "Momentum", "Heavy ball: v = beta*v + grad; w -= lr * v."),
    VariantSpec(
        "adam",
        "Adam",
        "Adam (beta1 0.9, beta2 0.999): each coordinate scaled by its gradient's RMS.",
    ),
)

OPTIMIZERS = Experiment(
    name="optimizers",
    title="Gradient descent, SGD, momentum and Adam in an ill-conditioned valley",
    family=FAMILY,
    description=(
        "Four optimizers minimize the same two-weight least-squares loss from the same start. "
        "The valley is much steeper along w2 than along w1, so gradient descent zig-zags "
        "across it and crawls along it. Momentum accumulates the small, consistent gradient "
        "along the valley and gets much further in the same number of steps; Adam divides "
        "each coordinate's step by the size of its own gradient, which undoes this axis-"
        "aligned stretch. SGD follows GD's path but with minibatch noise, so its loss jitters "
        "and goes up on many steps."
    ),
    citation="Polyak, 1964; Kingma and Ba, 2014",
    terms=("gradient-descent", "stochastic-gradient-descent", "adam"),
    variants=_OPTIMIZER_VARIANTS,
    params=OptimizersParams,
    charts=(
        ChartSpec("paths", "contour", "Paths on the loss surface"),
        ChartSpec("excess_loss", "line", "Loss above the minimum by step"),
    ),
    claims=(
        Claim(
            "momentum-beats-gd",
            "In the ill-conditioned valley momentum ends below 1/10 of gradient descent's loss "
            "above the minimum, at the same learning rate",
            lambda m: m[RUN]["momentum_over_gd_excess"],
            "<",
            0.1,
            citation="Polyak, 1964",
        ),
        Claim(
            "adam-beats-gd",
            "Adam, scaling each coordinate by its own gradient's size, also ends below 1/10 of "
            "gradient descent's loss above the minimum",
            lambda m: m[RUN]["adam_over_gd_excess"],
            "<",
            0.1,
            citation="Kingma and Ba, 2014",
        ),
        Claim(
            "adam-step-bounded",
            "Adam's largest step in any coordinate is about its learning rate or less, though "
            "the gradients along the two axes differ many times over",
            lambda m: m[RUN]["adam_max_step_over_lr"],
            "<=",
            1.05,
            citation="Kingma and Ba, 2014",
        ),
        Claim(
            "sgd-is-noisy",
            "SGD's minibatch gradient is noisy: its loss goes up on at least 1 step in 5, "
            "where full-batch gradient descent's goes down on every step",
            lambda m: m[RUN]["sgd_rise_fraction"],
            ">=",
            0.2,
            citation="Robbins and Monro, 1951",
        ),
        Claim(
            "gd-descends",
            "Full-batch gradient descent with a learning rate below 2 / (the largest curvature) "
            "lowers the loss on every step",
            metric("gd", "rise_fraction"),
            "<=",
            0.0,
        ),
    ),
    counterfactual={"condition_number": 1.0},
    engine=f"{ENGINES}:run",
    fixed={"examples": 256, "target_noise": 0.5, "start": "(-4, 1)"},
)


# ----------------------------------------------------------------------------- learning rate


class SweepParams(ExperimentParams):
    """The sweep's range and the MLP it trains."""

    budget_param = "steps"
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


SWEEP = Experiment(
    name="learning-rate-sweep",
    title="Too small, about right, too large: a learning-rate sweep",
    family=FAMILY,
    description=(
        "The same small MLP (8 inputs, one tanh hidden layer) is trained by full-batch "
        "gradient descent at learning rates spaced evenly on a log scale, from the same "
        "initialization on the same data. Too small a rate barely moves in the steps given; "
        "the loss falls faster as the rate grows, until past some rate the steps overshoot "
        "and the loss blows up. The final loss is U-shaped in the learning rate, with the "
        "best rate just below the one that diverges."
    ),
    citation="Goodfellow et al., 2016; LeCun et al., 1998",
    terms=("learning-rate",),
    variants=(
        VariantSpec("smallest", "Smallest", "The smallest learning rate of the sweep."),
        VariantSpec("best", "Best", "The rate with the lowest final validation loss."),
        VariantSpec("largest", "Largest", "The largest learning rate of the sweep."),
    ),
    params=SweepParams,
    charts=(
        ChartSpec("sweep", "line", "Final loss against the learning rate"),
        ChartSpec("loss", "line", "Training loss by step at each learning rate"),
    ),
    claims=(
        Claim(
            "u-shaped",
            "The final validation loss is U-shaped in the learning rate: at both ends of the "
            "sweep it is at least twice the best rate's",
            lambda m: m[RUN]["ends_over_best_val"],
            ">=",
            2.0,
        ),
        Claim(
            "too-small-is-slow",
            "The smallest rate is too slow: its final training loss is over 5x the best rate's",
            lambda m: m[RUN]["smallest_over_best_train"],
            ">",
            5.0,
        ),
        Claim(
            "too-large-diverges",
            "The largest rate overshoots: it diverges or ends at over 10x the best rate's "
            "training loss (best / largest below 0.1; 0 when it diverged)",
            lambda m: m[RUN]["best_over_largest_train"],
            "<",
            0.1,
        ),
    ),
    counterfactual={"lr_max": 0.01},
    engine=f"{ENGINES}_sweep:run",
    fixed={"examples": 128, "optimizer": "full-batch gradient descent", "label_noise": 0.1},
)


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


EDGE = Experiment(
    name="edge-of-stability",
    title="Edge of stability: gradient descent's sharpness settles at 2/lr",
    family=FAMILY,
    description=(
        "Full-batch gradient descent on a small tanh MLP, with its sharpness (the largest "
        "eigenvalue of the loss's Hessian, by power iteration on Hessian-vector products) "
        "measured every 10 steps. Classical analysis says GD is stable only while the "
        "sharpness stays below 2/lr. In practice the sharpness rises during training "
        "(progressive sharpening) until it reaches 2/lr, overshoots a little, and then hovers "
        "there while the loss keeps falling over the long run, though not on every step. "
        "At a small learning rate 2/lr is far away and the sharpness stays well below it."
    ),
    citation="Cohen et al., 2021",
    terms=("learning-rate",),
    variants=(
        VariantSpec("gd", "Full-batch GD", "Gradient descent on all the examples at every step."),
    ),
    params=EdgeParams,
    charts=(
        ChartSpec("sharpness", "line", "Sharpness by step, and 2/lr"),
        ChartSpec("loss", "line", "Training loss by step"),
    ),
    claims=(
        Claim(
            "hovers-at-edge",
            "Over the last quarter of training the sharpness averages within 15% of 2/lr",
            lambda m: m[RUN]["late_sharpness_over_edge"],
            "between",
            0.85,
            1.15,
        ),
        Claim(
            "progressive-sharpening",
            "It got there by rising: over the last quarter it averages at least 1.5x its value "
            "at initialization",
            lambda m: m[RUN]["late_over_initial_sharpness"],
            ">=",
            1.5,
        ),
        Claim(
            "non-monotone-loss",
            "At the edge the loss goes up on at least 1 step in 100 (a quadratic model with "
            "sharpness below 2/lr would lower it on every step)",
            lambda m: m[RUN]["loss_rise_fraction"],
            ">=",
            0.01,
        ),
        Claim(
            "loss-still-falls",
            "Yet over the run the loss falls to under 1/10 of its initial value",
            lambda m: m[RUN]["final_over_initial_loss"],
            "<",
            0.1,
        ),
    ),
    counterfactual={"lr": 0.05},
    engine=f"{ENGINES}_eos:run",
    fixed={"inputs": 8, "hidden_layers": 2, "targets": "random N(0, 1)", "measure_every": 10},
)


# ----------------------------------------------------------------------------- clipping


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
    steps: int = _steps(100, 2000)

    def estimate_seconds(self) -> float:
        """Two RNNs of 32 units on 32 sequences: about 0.2 ms per time step and step."""
        return 0.05 + (self.steps + 1) * self.seq_len * 2.5e-4


CLIPPING = Experiment(
    name="gradient-clipping",
    title="Exploding gradients in a recurrent net, with and without clipping",
    family=FAMILY,
    description=(
        "A small tanh recurrent network whose recurrent weights start with gain 2: going back "
        "through time each step multiplies the gradient by a Jacobian that stretches it, so "
        "the gradient grows toward the early time steps and its norm is large. Two copies "
        "train from the same weights on the same sequences at the same learning rate. "
        "Without clipping the first oversized steps throw the weights into saturation, where "
        "the tanh passes almost no gradient and the loss stays high; clipping rescales the "
        "gradient to a fixed norm whenever it is larger, keeping its direction, so the steps "
        "stay small and the loss falls."
    ),
    citation="Pascanu et al., 2013",
    terms=("gradient-clipping", "exploding-gradient"),
    variants=(
        VariantSpec("unclipped", "Unclipped", "Plain gradient descent on the raw gradient."),
        VariantSpec(
            "clipped", "Clipped", "The gradient rescaled to norm max_norm when it is larger."
        ),
    ),
    params=ClippingParams,
    charts=(
        ChartSpec("loss", "line", "Training loss by step"),
        ChartSpec("grad_norm", "line", "Global gradient norm by step"),
        ChartSpec("through_time", "line", "Gradient reaching each time step at initialization"),
    ),
    claims=(
        Claim(
            "clipping-saves-the-run",
            "The clipped run ends below 1/4 of the unclipped run's loss (0 when the unclipped "
            "loss is not finite)",
            lambda m: m[RUN]["clipped_over_unclipped_loss"],
            "<",
            0.25,
        ),
        Claim(
            "gradient-explodes-through-time",
            "At initialization the gradient grows going back in time: at the first time step "
            "it is over 1.5x its size at the last",
            lambda m: m[RUN]["first_over_last_step_gradient"],
            ">",
            1.5,
            citation="Bengio et al., 1994; Pascanu et al., 2013",
        ),
        Claim(
            "unclipped-saturates",
            "The unclipped run's oversized steps leave over half of its hidden states saturated "
            "(|h| > 0.99), where the tanh passes almost no gradient",
            metric("unclipped", "saturated_fraction"),
            ">",
            0.5,
        ),
        Claim(
            "clipped-run-learns",
            "The clipped run's loss falls to under 1/10 of its initial value",
            lambda m: m[RUN]["clipped_final_over_initial"],
            "<",
            0.1,
        ),
    ),
    counterfactual={"lr": 0.1},
    engine=f"{ENGINES}_clip:run",
    fixed={
        "hidden": 32,
        "sequences": 32,
        "readout": "fixed random",
        "optimizer": "full-batch gradient descent",
    },
)


# ----------------------------------------------------------------------------- schedules


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


SCHEDULES = Experiment(
    name="learning-rate-schedules",
    title="Constant, step-decay and cosine learning-rate schedules",
    family=FAMILY,
    description=(
        "Minibatch SGD on the same noisy linear regression, from the same start with the "
        "same minibatches, at the same peak learning rate: held constant, divided by 10 at "
        "half and three quarters of training, or annealed along half a cosine to zero. At a "
        "constant rate the minibatch noise keeps the weights jittering around the minimum, "
        "so the loss stops falling at a noise floor; lowering the rate late in training "
        "shrinks the jitter and the loss settles much closer to the minimum. Without the "
        "noise (full-batch steps) the constant rate, having taken the largest steps, wins."
    ),
    citation="Loshchilov and Hutter, 2016; Robbins and Monro, 1951",
    terms=("learning-rate-schedule",),
    variants=(
        VariantSpec("constant", "Constant", "The peak rate at every step."),
        VariantSpec(
            "step",
            "Step decay",
            "The peak rate, divided by 10 at 50% and again at 75% of the steps.",
        ),
        VariantSpec("cosine", "Cosine", "lr * (1 + cos(pi * t / T)) / 2: from the peak to 0."),
    ),
    params=SchedulesParams,
    charts=(
        ChartSpec("lr", "line", "Learning rate by step"),
        ChartSpec("loss", "line", "Training loss above the minimum by step"),
    ),
    claims=(
        Claim(
            "decay-beats-constant",
            "Both decaying schedules end with under half the constant rate's training loss "
            "above the minimum",
            lambda m: m[RUN]["worse_decay_over_constant_excess"],
            "<",
            0.5,
        ),
        Claim(
            "constant-hits-noise-floor",
            "At a constant rate the loss stalls at SGD's noise floor: its mean excess over the "
            "last quarter is over half that of the second quarter",
            lambda m: m[RUN]["constant_late_over_early"],
            ">",
            0.5,
            citation="Robbins and Monro, 1951",
        ),
    ),
    counterfactual={"batch_size": 256},
    engine=f"{ENGINES}_schedules:run",
    fixed={"examples": 256, "features": 16, "label_noise": 0.5, "start": "w = 0"},
)


EXPERIMENTS: tuple[Experiment, ...] = (OPTIMIZERS, SWEEP, EDGE, CLIPPING, SCHEDULES)
