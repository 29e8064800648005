"""Adapting the small language model: LoRA against full fine-tuning on text it never saw, and a
small student distilled from it against the same student trained on the data alone.

Engines live in app/demo/engines/adaptation_lora.py and adaptation_distillation.py.
"""

from __future__ import annotations

from pydantic import Field

from app.demo.claims import RUN, Claim, metric, ratio
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.lm.config import GPTConfig
from app.demo.params import ExperimentParams

FAMILY = "adaptation"
_ENGINES = "app.demo.engines.adaptation_"

# ----------------------------------------------------------------------------- LoRA

LORA_RANKS = (1, 4, 16)
CLAIM_RANK = 4  # the rank the main claim is about: the middle one
VAL_EVERY = 4  # every 4th formula, in slug order, is held out for validation
# One Adam step on the full model, one thread, measured at ~3.5 ms plus ~1.8 ms a 64-token
# window (LoRA a little less); scoring the 16 validation windows ~11 ms, done 3 times a
# variant. The estimate takes 4 ms + 2 ms a window, 40 ms of scoring a variant, 0.2 s set-up.
STEP_S, WINDOW_S, SCORING_S = 4e-3, 2e-3, 0.04


class LoraParams(ExperimentParams):
    steps: int = Field(12, ge=1, le=100, description="Adam steps of every variant.")
    batch_size: int = Field(4, ge=1, le=32, description="64-token windows in each step's batch.")
    lora_lr: float = Field(
        1e-2, ge=1e-5, le=0.1, description="Learning rate of the LoRA variants (Adam)."
    )
    full_lr: float = Field(
        3e-3, ge=1e-5, le=0.1, description="Learning rate of full fine-tuning (Adam)."
    )
    alpha: float = Field(
        16.0, ge=0.25, le=256, description="LoRA's alpha: the update B A is scaled by alpha / r."
    )

    def estimate_seconds(self) -> float:
        variants = len(LORA_RANKS) + 1
        return 0.2 + variants * (SCORING_S + self.steps * (STEP_S + WINDOW_S * self.batch_size))


LORA = Experiment(
    name="lora",
    title="LoRA: fine-tuning through a few low-rank matrices",
    family=FAMILY,
    description=(
        "The glossary's language model has never seen a LaTeX formula: its training text "
        "holds no backslash. We adapt it to the glossary's own formulas, training on three in "
        "four and measuring the loss on the rest. Full fine-tuning updates every weight. LoRA "
        "freezes them all and learns, for each adapted matrix W, a low-rank update "
        "(alpha / r) B A, with A random and B zero at the start so the adapted model begins "
        "exactly as the original. Here the adapters sit on each attention layer's two "
        "projections and on the token embedding, which this model shares with its output "
        "layer. With the same steps and batches, LoRA at rank 4 should recover most of what "
        "full fine-tuning gains while training a few percent of the weights, and its update "
        "can be added into W afterwards, so the adapted model runs as fast as the original. "
        "LoRA needs a larger learning rate than full fine-tuning: at a tenth of full "
        "fine-tuning's it barely moves in a run this short."
    ),
    citation="Hu et al., 2021",
    terms=("lora", "fine-tuning", "parameter-efficient-fine-tuning"),
    variants=tuple(
        VariantSpec(
            f"lora-r{r}", f"LoRA, rank {r}", f"Frozen weights plus rank-{r} adapters (B A)."
        )
        for r in LORA_RANKS
    )
    + (VariantSpec("full", "Full fine-tuning", "Every weight of the model trained."),),
    params=LoraParams,
    charts=(
        ChartSpec("val-loss", "line", "Validation loss on held-out formulas during adaptation"),
        ChartSpec("params", "bar", "Trainable parameters of each variant"),
    ),
    claims=(
        Claim(
            "lora-gets-most-of-the-gain",
            f"LoRA at rank {CLAIM_RANK} gets most of full fine-tuning's gain: its drop in "
            "validation loss over full fine-tuning's drop is above 0.5",
            metric(RUN, f"r{CLAIM_RANK}_share_of_full_gain"),
            ">",
            0.5,
        ),
        Claim(
            "lora-trains-few-parameters",
            f"LoRA at rank {CLAIM_RANK} trains fewer than 1/20 of the parameters full "
            "fine-tuning trains",
            ratio(
                metric(f"lora-r{CLAIM_RANK}", "trainable_params"),
                metric("full", "trainable_params"),
            ),
            "<",
            1 / 20,
        ),
        Claim(
            "lora-starts-at-the-base-model",
            "Before training, every LoRA model computes the same logits as the original model "
            "(largest difference below 1e-6), because B starts at zero",
            metric(RUN, "max_logit_change_at_init"),
            "<",
            1e-6,
        ),
        Claim(
            "lora-merges-into-the-weights",
            f"After training, adding (alpha / r) B A into the weights gives a plain model with "
            f"the same logits as rank {CLAIM_RANK}'s adapters (largest difference below 1e-3)",
            metric(RUN, "max_merged_logit_difference"),
            "<",
            1e-3,
        ),
    ),
    counterfactual={"lora_lr": 3e-4},
    engine=f"{_ENGINES}lora:run",
    fixed={
        "text": f"the glossary's LaTeX formulas, each after its term's title; every "
        f"{VAL_EVERY}th (in slug order) held out for validation",
        "LoRA targets": "each attention layer's qkv and output projections, and the token "
        "embedding shared with the output layer",
        "LoRA initialization": "A uniform in +-1/sqrt(fan-in) (B for the embedding: normal, "
        "std 0.02), the other factor zero",
        "learning rates": "Adam, no weight decay; defaults from a sweep on the served model "
        "(full 1e-3 to 1e-2, LoRA 3e-3 to 3e-2): each kind's best at the default steps",
        "window": "64 tokens; the same batches, in the same order, for every variant",
    },
    needs_model=True,
)


# ----------------------------------------------------------------------------- distillation

STUDENT = GPTConfig(n_layer=1, n_head=2, n_embd=32)  # block_size: the teacher's
STUDENT_BATCH = 4  # windows per step
# A student step (1 layer, n_embd 32, 4 windows of 64 tokens, fused Adam) measured at
# ~2.1-2.6 ms with one thread; the teacher's forward pass ~0.7 ms a window, once. A default
# run measured 0.7 s; the estimate takes 3.5 ms a step and 1.5 ms a window.
STUDENT_STEP_S, TEACHER_WINDOW_S = 3.5e-3, 1.5e-3


class DistillationParams(ExperimentParams):
    steps: int = Field(60, ge=1, le=600, description="Adam steps of each student.")
    train_windows: int = Field(
        16,
        ge=STUDENT_BATCH,
        le=1024,
        description="64-token windows of the glossary the students train on (the transfer set).",
    )
    temperature: float = Field(
        1.0, ge=0.5, le=20, description="T: teacher and student logits are divided by T."
    )
    alpha: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Weight of the soft-target loss (the rest goes to the true next tokens).",
    )

    def estimate_seconds(self) -> float:
        return 0.2 + 2 * self.steps * STUDENT_STEP_S + self.train_windows * TEACHER_WINDOW_S


DISTILLATION = Experiment(
    name="knowledge-distillation",
    title="Knowledge distillation: a small student learns from the model's soft targets",
    family=FAMILY,
    description=(
        "A student far smaller than the glossary's language model (one layer, 32 wide, "
        "about a tenth of its parameters) learns to predict the next byte from a few windows "
        "of the glossary. Trained on the data alone, it is told only which token came next. "
        "Distilled, it learns to match the teacher's whole next-token distribution at every "
        "position: the KL divergence between their softmaxes at a temperature T (T = 1 is the "
        "teacher's own distribution, a larger T flattens it), times T squared, mixed with the "
        "true tokens by a weight alpha. Both students start from the same weights and see the "
        "same windows in the same order; both are scored on held-out glossary entries against "
        "the true next tokens. With this little text the data-only student memorizes it, while "
        "the soft targets carry far more information per token and act as a regularizer: the "
        "distilled student should end with a lower held-out loss. Give both hundreds of "
        "windows and the advantage shrinks in a run this short."
    ),
    citation="Hinton et al., 2015",
    terms=("knowledge-distillation",),
    variants=(
        VariantSpec("distilled", "Distilled student", "Trained on the teacher's soft targets."),
        VariantSpec("data-only", "Data-only student", "Trained on the true next tokens only."),
    ),
    params=DistillationParams,
    charts=(ChartSpec("val-loss", "line", "Held-out loss of each student during training"),),
    claims=(
        Claim(
            "distilled-student-generalizes-better",
            "The distilled student ends with a lower held-out loss than the data-only student, "
            "by more than 0.02 nats",
            metric(RUN, "val_loss_gain"),
            ">",
            # 0.04-0.09 across five models trained from different seeds on the same
            # glossary; alpha = 0 (the counterfactual) gives exactly 0
            0.02,
        ),
        Claim(
            "distilled-student-imitates-the-teacher",
            "On held-out text the distilled student is closer to the teacher: its KL "
            "divergence from the teacher's next-token distribution is under 0.97 of the "
            "data-only student's",
            metric(RUN, "kl_ratio"),
            "<",
            0.97,  # 0.92-0.96 across those five models; exactly 1 at alpha = 0
        ),
    ),
    counterfactual={"alpha": 0},
    engine=f"{_ENGINES}distillation:run",
    fixed={
        "student": "GPT, 1 layer, 2 heads, n_embd 32, learned positions, 64-token context",
        "teacher": "the served model, frozen; its logits on the transfer set computed once",
        "optimizer": "Adam, lr 3e-2, no weight decay",
        "batch": f"{STUDENT_BATCH} windows, cycling through the transfer set",
        "evaluation": "32 windows of the held-out glossary entries, true next tokens",
    },
    needs_model=True,
)


EXPERIMENTS = (LORA, DISTILLATION)
