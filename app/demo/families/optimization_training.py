"""Optimization, training safeguards and statistics: gradient clipping, learning-rate
schedules, warm-up and the gradient noise scale (listed in optimization.py's EXPERIMENTS)."""

from __future__ import annotations

from app.demo.claims import RUN, Claim, metric
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.families.optimization_params import (
    ENGINES,
    FAMILY,
    ClippingParams,
    NoiseScaleParams,
    SchedulesParams,
    WarmupParams,
)

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
    terms=("learning-rate-schedule", "cosine-annealing"),
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


NOISE_SCALE = Experiment(
    name="gradient-noise-scale",
    title="The gradient noise scale grows as the loss falls",
    family=FAMILY,
    description=(
        "A small MLP learns a classification by minibatch SGD. At about eleven points of "
        "training, spaced evenly in log(step), "
        "the gradient of every training example is computed at once (torch.func.vmap over "
        "grad): their mean G is the full-batch gradient and their spread tr(Sigma) the noise "
        "of a one-example gradient. The noise scale B_simple = tr(Sigma) / |G|^2 is the batch "
        "size at which a minibatch's gradient noise is as large as the signal: batches far "
        "below it spend their steps on noise, batches far above it waste examples. As "
        "training proceeds the full gradient shrinks faster than the per-example gradients, "
        "so the noise scale grows, which is why larger batches pay off later in training."
    ),
    citation="McCandlish et al., 2018",
    terms=("stochastic-gradient-descent", "batch-size"),
    variants=(VariantSpec("sgd", "SGD", "Minibatch SGD, the noise scale measured along the way."),),
    params=NoiseScaleParams,
    charts=(
        ChartSpec("noise_scale", "line", "Gradient noise scale by step"),
        ChartSpec("noise_vs_loss", "line", "Noise scale against the training loss"),
        ChartSpec("loss", "line", "Training loss by step"),
    ),
    claims=(
        Claim(
            "noise-scale-grows",
            "The gradient noise scale ends at least 3x its value at initialization",
            lambda m: m[RUN]["noise_scale_growth"],
            ">=",
            3.0,
        ),
        Claim(
            "grows-as-loss-falls",
            "It rises as the loss falls: over the measurements log B_simple and log loss "
            "correlate below -0.7",
            lambda m: m[RUN]["log_noise_scale_vs_log_loss_correlation"],
            "<",
            -0.7,
        ),
        Claim(
            "loss-falls",
            "The training loss falls to under half its initial value",
            lambda m: m[RUN]["final_over_initial_loss"],
            "<",
            0.5,
        ),
    ),
    counterfactual={"lr": 0.001},
    engine=f"{ENGINES}_noise:run",
    fixed={"inputs": 8, "loss": "cross-entropy", "measurements": 11},
)

WARMUP = Experiment(
    name="learning-rate-warmup",
    title="Learning-rate warm-up for a Post-LN transformer",
    family=FAMILY,
    description=(
        "Three copies of a small transformer (3 blocks of attention and MLP) learn the same "
        "sequence task by Adam at a large learning rate, from the same initialization on the "
        "same batches. With layer normalization after each residual addition (Post-LN, the "
        "original Transformer) and the full rate from the first step, the early Adam steps, "
        "each about lr in every weight, leave the network stuck at a high loss; the same "
        "network warmed up linearly over the first steps trains. Pre-LN blocks, with the "
        "normalization inside the residual branch, train without warm-up much better than "
        "Post-LN does (though at this small size warm-up still helps them too)."
    ),
    citation="Xiong et al., 2020; Liu et al., 2020",
    terms=("learning-rate-warmup",),
    variants=(
        VariantSpec(
            "post-ln", "Post-LN, no warm-up", "x = LN(x + F(x)); the full rate from step 1."
        ),
        VariantSpec(
            "post-ln-warmup",
            "Post-LN, warm-up",
            "The same blocks; the rate rises linearly to lr over warmup_steps.",
        ),
        VariantSpec("pre-ln", "Pre-LN, no warm-up", "x = x + F(LN(x)); the full rate from step 1."),
    ),
    params=WarmupParams,
    charts=(
        ChartSpec("lr", "line", "Learning rate by step"),
        ChartSpec("loss", "line", "Training loss by step"),
    ),
    claims=(
        Claim(
            "warmup-rescues-post-ln",
            "Without warm-up the Post-LN transformer ends at over 1.5x the training loss it "
            "reaches with warm-up",
            lambda m: m[RUN]["none_over_warmup_post_ln"],
            ">",
            1.5,
        ),
        Claim(
            "pre-ln-trains-without-warmup",
            "Pre-LN blocks without warm-up end below half of Post-LN's loss without warm-up",
            lambda m: m[RUN]["pre_ln_over_post_ln_none"],
            "<",
            0.5,
            citation="Xiong et al., 2020",
        ),
        Claim(
            "warmed-up-run-learns",
            "With warm-up the Post-LN loss falls below half its initial value",
            lambda m: m[RUN]["warmup_final_over_initial"],
            "<",
            0.5,
        ),
    ),
    counterfactual={"lr": 1e-3},
    engine=f"{ENGINES}_warmup:run",
    fixed={"tokens": 8, "width": 16, "heads": 1, "optimizer": "Adam (0.9, 0.999)"},
)
