"""Optimization: how the optimizer and the learning rate move the weights.

Each experiment trains the same problem, from the same start and the same data, under the
settings it compares (optimizers, learning rates); its engine is one of
app/demo/engines/optimization*.py, its parameter models are in optimization_params.py. The
claims check the published effect on the run's own losses and sharpness. The training
experiments (clipping, schedules, noise scale) are in optimization_training.py; EXPERIMENTS
below lists the whole family.
"""

from __future__ import annotations

from app.demo.claims import RUN, Claim, metric
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.families.optimization_params import (
    ENGINES,
    FAMILY,
    EdgeParams,
    OptimizersParams,
    SweepParams,
)
from app.demo.families.optimization_training import CLIPPING, NOISE_SCALE, SCHEDULES, WARMUP

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
    terms=("gradient-descent", "stochastic-gradient-descent", "adam", "loss-landscape", "momentum"),
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
        # (Adam's step being at most about lr is left out: its first step equals lr by
        # construction, so such a claim could not fail.)
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
    terms=("learning-rate", "hyperparameter"),
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


EXPERIMENTS: tuple[Experiment, ...] = (
    OPTIMIZERS,
    SWEEP,
    EDGE,
    CLIPPING,
    SCHEDULES,
    WARMUP,
    NOISE_SCALE,
)
