"""Training efficiently: a mixture-of-experts layer whose routing collapses without a
load-balancing loss, and mixed-precision gradients that underflow in float16 unless the loss
is scaled. Both run on the server's trained language model (app/demo/lm).

Engines live in app/demo/engines/efficiency_moe.py and efficiency_precision.py.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from app.demo.claims import RUN, Claim, metric
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.params import ExperimentParams

FAMILY = "efficiency"
_ENGINES = "app.demo.engines.efficiency_"

# ----------------------------------------------------------------------------- mixture of experts

N_EXPERTS = 8
TRAIN_WINDOWS = 128  # 64-token windows of training text whose hidden states the layer learns on
EVAL_WINDOWS = 16  # held-out windows the final load and loss are measured on
BATCH_TOKENS = 256  # tokens drawn for each step
# Adam. The router learns 10x faster than the experts: with equal rates (or faster experts)
# the imbalance built up more slowly, and on some seeds stayed mild within a default run.
EXPERT_LR = 1e-3
ROUTER_LR = 1e-2
IDLE_SHARE = 0.25  # an expert getting under a quarter of an even share of tokens is idle
# On the reference CPU with the full model: the hidden states and references ~0.15 s, then
# ~3.5-4.5 ms a step (router, batched experts, the frozen head, backward, Adam) measured;
# the estimate takes 5 ms per step and variant.
MOE_STEP_S = 5e-3


class MoEParams(ExperimentParams):
    budget_param: ClassVar[str] = "steps"

    steps: int = Field(
        80, ge=0, le=400, description="Training steps of each layer (0: the untrained router)."
    )
    balance_coef: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Weight of the load-balancing loss in the balanced variant (Switch used "
        "0.01 over far longer training).",
    )

    def estimate_seconds(self) -> float:
        """Hidden states once, then both variants' steps."""
        return 0.15 + 2 * self.steps * MOE_STEP_S


MOE = Experiment(
    name="mixture-of-experts",
    title="Mixture of experts: routing collapses without a load-balancing loss",
    family=FAMILY,
    description=(
        "We replace the last block's feed-forward network of the server's language model by a "
        "mixture of 8 small experts (each an eighth of its width) and a learned router that "
        "sends every token to one expert, scaled by the router's probability for it (the "
        "Switch Transformer's top-1 routing). Only the new layer trains, to predict the next "
        "token of the glossary text through the rest of the frozen model. The router starts "
        "at zero with learned noise added to its scores (Shazeer et al.'s noisy gating), so "
        "the first tokens spread evenly. Trained on the task alone, the router comes to "
        "favour some experts and starve others: the imbalance Shazeer et al. found to be "
        "self-reinforcing, since favoured experts train faster and are chosen even more. "
        "Several experts are left with almost no tokens. The same layer trained with the "
        "Switch Transformer's auxiliary loss (8 x the sum over experts of the share of tokens "
        "each receives times its mean router probability, smallest when both are even) keeps "
        "every expert in use. Both variants start from the same weights and see the same "
        "batches and noise."
    ),
    citation="Shazeer et al., 2017; Fedus et al., 2021",
    terms=("mixture-of-experts", "switch-transformer"),
    variants=(
        VariantSpec("balanced", "With the balancing loss", "Task loss + coef x balancing loss."),
        VariantSpec("no-balance", "Without the balancing loss", "The task loss alone."),
    ),
    params=MoEParams,
    charts=(
        ChartSpec("load", "bar", "Share of held-out tokens routed to each expert"),
        ChartSpec("max-load", "line", "Busiest expert's share of each batch, along training"),
    ),
    claims=(
        Claim(
            "routing-collapses",
            "Without the balancing loss the routing collapses onto fewer experts: the entropy "
            "of the load falls below 2.5 bits (3 bits when all 8 experts share the held-out "
            "tokens evenly, 2 bits when only 4 do)",
            metric("no-balance", "load_entropy_bits"),
            "<",
            2.5,
            citation="Shazeer et al., 2017",
        ),
        Claim(
            "balanced-stays-even",
            "With the balancing loss the load stays near even: its entropy stays above 2.5 bits",
            metric("balanced", "load_entropy_bits"),
            ">",
            2.5,
            citation="Fedus et al., 2021",
        ),
        Claim(
            "balance-is-cheap",
            "Balancing costs the task little: the balanced layer's held-out loss is less than "
            "0.05 nats above the collapsed one's",
            metric(RUN, "loss_cost_of_balance"),
            "<",
            0.05,
            citation="Fedus et al., 2021",
        ),
    ),
    counterfactual={"steps": 0},
    engine=f"{_ENGINES}moe:run",
    fixed={
        "experts": f"{N_EXPERTS}, top-1, each a GELU MLP of width 4 x n_embd / {N_EXPERTS}",
        "router": "zero at start, learned Gaussian noise on its scores (noisy gating)",
        "data": f"hidden states of {TRAIN_WINDOWS} training windows of 64 tokens; "
        f"{BATCH_TOKENS} tokens a step; measured on {EVAL_WINDOWS} held-out windows",
        "optimizer": f"Adam, learning rate {EXPERT_LR:g} (experts), {ROUTER_LR:g} (router)",
    },
    needs_model=True,
)


# ----------------------------------------------------------------------------- mixed precision

# float16's smallest positive numbers: below SUBNORMAL / 2 a value rounds to zero, and below
# NORMAL it keeps fewer than float16's 11 significant bits.
FLOAT16_SUBNORMAL = 2.0**-24  # ~6.0e-8
FLOAT16_NORMAL = 2.0**-14  # ~6.1e-5
FLOAT16_MAX = 65504.0
# The four variants' forward and backward passes of the full model over one 64-token window,
# measured together on the reference CPU: ~43 ms, most of it float16's (the CPU has no native
# float16 arithmetic); 1.4x taken.
PRECISION_WINDOW_S = 0.06


class PrecisionParams(ExperimentParams):
    budget_param: ClassVar[str] = "windows"

    loss_scale: float = Field(
        16384.0,
        ge=1,
        le=2.0**24,
        description="What the float16-scaled variant multiplies the loss by before the "
        "backward pass (its gradients are divided by it again in float32; 1: no scaling).",
    )
    windows: int = Field(
        4,
        ge=1,
        le=32,
        description="64-token windows of training text in the batch (the loss is their mean).",
    )

    def estimate_seconds(self) -> float:
        return 0.1 + self.windows * PRECISION_WINDOW_S


PRECISION_VARIANTS = (
    ("float32", "float32", "The reference: every gradient as float32 computes it."),
    ("float16", "float16", "The model cast to float16, the loss backpropagated as it is."),
    (
        "float16-scaled",
        "float16, loss scaled",
        "The same float16 model, the loss multiplied by loss_scale before the backward pass.",
    ),
    ("bfloat16", "bfloat16", "The model cast to bfloat16: float32's range, 8 significant bits."),
)

MIXED_PRECISION = Experiment(
    name="mixed-precision",
    title="Mixed precision: float16 gradients underflow unless the loss is scaled",
    family=FAMILY,
    description=(
        "We run one forward and backward pass of the server's language model on the same "
        "batch four times: in float32, in float16, in float16 with the loss multiplied by a "
        "large scale before the backward pass, and in bfloat16. Each gradient entry (of every "
        "weight, and of the logits) is compared with the float32 one. float16's smallest "
        "positive number is about 6e-8; anything below half of it rounds to zero. Many "
        "gradients are that small, since the loss is a mean over every token of the batch and "
        "unlikely tokens' probabilities are tiny. Scaling the loss lifts the gradients into "
        "float16's range, and dividing them by the same scale afterwards, in float32, gives "
        "them back; only the very smallest are still lost, and too large a scale would "
        "overflow float16's largest number instead. bfloat16 keeps float32's range, so almost "
        "nothing underflows, but with 8 significant bits instead of float16's 11 its "
        "gradients are less exact."
    ),
    citation="Micikevicius et al., 2018",
    terms=("mixed-precision-training",),
    variants=tuple(VariantSpec(n, label, d) for n, label, d in PRECISION_VARIANTS),
    params=PrecisionParams,
    charts=(
        ChartSpec("histogram", "line", "Gradient magnitudes in float32, and float16's range"),
        ChartSpec("underflow", "bar", "Share of gradient entries flushed to zero"),
    ),
    claims=(
        Claim(
            "scaling-keeps-gradients",
            "Loss scaling keeps what float16 loses: of the gradient entries float16 flushes to "
            "zero, over 90% survive with scaling (at least 10 times fewer lost)",
            metric(RUN, "kept_by_scaling"),
            ">",
            0.9,
        ),
        Claim(
            "float16-underflows",
            "Without scaling, float16 flushes over 1% of the gradient entries (non-zero in "
            "float32) to zero",
            metric("float16", "underflow_fraction"),
            ">",
            0.01,
        ),
        Claim(
            "bfloat16-keeps-range",
            "bfloat16 loses almost none to underflow: under 0.1% of the entries",
            metric("bfloat16", "underflow_fraction"),
            "<",
            0.001,
        ),
        Claim(
            "bfloat16-less-exact",
            "bfloat16 pays in precision: its weight gradients' relative error is over twice "
            "scaled float16's",
            metric(RUN, "bfloat16_over_float16_error"),
            ">",
            2,
        ),
        Claim(
            "scaled-stays-finite",
            "The scaled gradients stay finite: no entry overflows float16's largest number "
            "(65,504)",
            metric("float16-scaled", "overflow_entries"),
            "<",
            1,
        ),
    ),
    counterfactual={"loss_scale": 1},
    engine=f"{_ENGINES}precision:run",
    fixed={
        "pass": "one forward and backward pass; the loss in float32 (as autocast computes it)",
        "compared": "every weight's gradient and the logits' gradient, against float32",
    },
    needs_model=True,
)

EXPERIMENTS = (MOE, MIXED_PRECISION)
