"""Inside the small language model: its perplexity along training, its attention maps and
what attention logits' scale does to them, and why a transformer needs positions.

Engines live in app/demo/engines/lm_perplexity.py, lm_attention.py and lm_positions.py.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from app.demo.claims import RUN, Claim, metric
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.lm.config import Position
from app.demo.params import ExperimentParams

FAMILY = "language-model"
_ENGINES = "app.demo.engines.lm_"
N_LAYER, N_HEAD = 2, 4  # the served model's shape (FULL and TINY)
HEADS = tuple(
    f"L{layer}H{head}" for layer in range(1, N_LAYER + 1) for head in range(1, N_HEAD + 1)
)


# ----------------------------------------------------------------------------- perplexity

# The checkpoints shown as variants: the first, the first after it, the middle one, the last.
CHECKPOINTS = (
    ("untrained", "Untrained (step 0)"),
    ("early", "First checkpoint after step 0"),
    ("middle", "Middle of training"),
    ("final", "End of training"),
)


class PerplexityParams(ExperimentParams):
    budget_param: ClassVar[str] = "windows"

    evaluate_on: Literal["validation", "random"] = Field(
        "validation",
        description="Score the held-out glossary entries, or uniformly random bytes.",
    )
    windows: int = Field(
        24, ge=1, le=128, description="64-token windows of the held-out text scored."
    )

    def estimate_seconds(self) -> float:
        """A forward pass of the full model over a 64-token window, measured at ~2 ms, for
        each of up to 7 checkpoints, plus loading them: ~1.5x the time measured."""
        return 0.15 + 7 * self.windows * 3e-3


PERPLEXITY = Experiment(
    name="perplexity",
    title="Perplexity: the model's surprise on held-out text, along its training",
    family=FAMILY,
    description=(
        "Perplexity is exp of the mean next-token cross-entropy: the number of equally likely "
        "tokens the model is, on average, choosing between. We load the server model's "
        "checkpoints, saved along its training, and score the same held-out glossary entries "
        "(text it never trained on) with each. Untrained, the model spreads its probability "
        "evenly over the 261-token vocabulary, so its perplexity is near 261; training brings "
        "it down to a few tokens. Scored on random bytes instead, training cannot help: the "
        "trained model is surer of itself and more wrong than the untrained one."
    ),
    citation="Jelinek et al., 1977; Shannon, 1948",
    terms=("perplexity",),
    variants=tuple(VariantSpec(name, label, "") for name, label in CHECKPOINTS),
    params=PerplexityParams,
    charts=(
        ChartSpec("perplexity", "line", "Held-out perplexity by training step"),
        ChartSpec("training", "line", "The model's training loss"),
    ),
    claims=(
        Claim(
            "perplexity-falls",
            "Training lowers the perplexity: the untrained checkpoint's over the last one's is "
            "above 2",
            metric(RUN, "first_over_last"),
            ">",
            2,
        ),
        Claim(
            "perplexity-is-exp-cross-entropy",
            "Perplexity (from the probabilities of the true tokens) equals exp of the mean "
            "cross-entropy (torch's cross_entropy) to 1e-4 relative, at every checkpoint",
            metric(RUN, "max_relative_difference"),
            "<",
            1e-4,
        ),
        Claim(
            "untrained-near-vocabulary",
            "The untrained model's perplexity is near the vocabulary size (between a third of "
            "it and three times it)",
            metric("untrained", "perplexity_over_vocab"),
            "between",
            1 / 3,
            3,
            citation="Shannon, 1948",
        ),
    ),
    counterfactual={"evaluate_on": "random"},
    engine=f"{_ENGINES}perplexity:run",
    fixed={"window": "64 tokens", "text": "the held-out glossary entries"},
    needs_model=True,
)


# ----------------------------------------------------------------------------- attention


class AttentionParams(ExperimentParams):
    prompt: str = Field(
        "Attention lets every token look at the others",
        min_length=2,
        max_length=64,
        description="The text whose attention is shown (any Unicode; its last 64 bytes).",
    )
    logit_scale: float = Field(
        1.0, ge=0.05, le=20, description="Multiplies every attention logit in the maps shown."
    )
    scale_range: float = Field(
        64.0,
        ge=1,
        le=400,
        description="The sweep's largest logit scale over its smallest (0.25 to 0.25 x this).",
    )

    def sweep(self) -> list[float]:
        n = SWEEP_POINTS
        return [0.25 * self.scale_range ** (k / (n - 1)) for k in range(n)]

    def estimate_seconds(self) -> float:
        """A forward pass of the full model over 64 tokens (~3 ms) per sweep point."""
        return 0.1 + (SWEEP_POINTS + 1) * 5e-3


SWEEP_POINTS = 9

ATTENTION_MAPS = Experiment(
    name="attention-maps",
    title="Attention maps, and what the scale of the logits does to them",
    family=FAMILY,
    description=(
        "In causal self-attention each token (a query, a row of the map) takes a weighted "
        "average of the tokens before it (keys, the columns); the weights are a softmax of "
        "query-key dot products, so each row sums to 1 and nothing to the right of the "
        "diagonal is seen. The model has several heads per layer, each with its own map. "
        "Multiplying the logits by a scale before the softmax sharpens the maps: as the scale "
        "grows, the attention entropy collapses toward one token per row (at a scale near 0 "
        "every row is uniform over the earlier tokens)."
    ),
    citation="Vaswani et al., 2017; Zhai et al., 2023",
    terms=("attention", "self-attention", "multi-head-attention", "causal-mask"),
    variants=tuple(
        VariantSpec(h, f"Layer {h[1]}, head {h[3]}", "One attention head's map.") for h in HEADS
    ),
    params=AttentionParams,
    charts=(
        *(
            ChartSpec(f"map-{h}", "heatmap", f"Attention of layer {h[1]}, head {h[3]}")
            for h in HEADS
        ),
        ChartSpec("entropy", "bar", "Mean attention entropy of each head"),
        ChartSpec("collapse", "line", "Mean attention entropy by logit scale"),
    ),
    claims=(
        Claim(
            "entropy-collapses",
            "Attention entropy falls as the logit scale grows: over 1 bit lower at the largest "
            "scale of the sweep than at the smallest",
            metric(RUN, "entropy_drop_bits"),
            ">",
            1,
        ),
        Claim(
            "entropy-monotone",
            "It never rises from one scale of the sweep to the next (largest rise at most "
            "1e-6 bits)",
            metric(RUN, "max_entropy_rise_bits"),
            "<=",
            1e-6,
        ),
        Claim(
            "rows-are-distributions",
            "Every attention row sums to 1 (largest deviation below 1e-5)",
            metric(RUN, "max_row_sum_error"),
            "<",
            1e-5,
        ),
        Claim(
            "attention-is-causal",
            "No token attends to a later one (largest weight above the diagonal below 1e-9)",
            metric(RUN, "max_weight_above_diagonal"),
            "<",
            1e-9,
        ),
    ),
    counterfactual={"scale_range": 1},
    engine=f"{_ENGINES}attention:run",
    fixed={"sweep": f"{SWEEP_POINTS} logit scales, geometric from 0.25"},
    needs_model=True,
)


# ----------------------------------------------------------------------------- positions

POSITIONS: tuple[tuple[Position, str, str], ...] = (
    ("none", "No positions", "Token embeddings only: attention sees a set."),
    ("sinusoidal", "Sinusoidal", "Fixed sines and cosines added to the embeddings."),
    ("learned", "Learned", "A trained vector per position added to the embeddings."),
    ("rotary", "Rotary (RoPE)", "Queries and keys rotated by an angle that grows with position."),
)


class PositionParams(ExperimentParams):
    task: Literal["copy", "sort"] = Field(
        "copy",
        description="Repeat the digits in order (needs positions) or sorted (needs only which "
        "digits there are).",
    )
    steps: int = Field(60, ge=1, le=600, description="Training steps of each model (Adam).")
    length: int = Field(4, ge=2, le=12, description="Digits in each sequence.")

    def estimate_seconds(self) -> float:
        """Four one-layer models, ~4 ms a step each measured (sequence 2 x length): 1.5x."""
        return 0.1 + 4 * self.steps * (2e-3 + 5e-4 * self.length)


POSITIONAL = Experiment(
    name="positional-encoding",
    title="Positional encoding: a transformer without positions cannot tell order",
    family=FAMILY,
    description=(
        "Self-attention is a weighted average, so by itself it does not know where a token "
        "is: a model without positions sees its context as a set (with the causal mask, a "
        "growing one). We train the same small GPT four times (same seed, data and "
        "initialization draws) on a task that needs order: read a few random digits, a "
        "separator, then repeat the digits in order. With sinusoidal, learned or rotary "
        "positions the model learns it; without, it can only guess among the digits it saw. "
        "Ask for the digits sorted instead and order no longer matters: the model without "
        "positions can do that too."
    ),
    citation="Vaswani et al., 2017; Su et al., 2021",
    terms=("positional-encoding", "rotary-position-embedding"),
    variants=tuple(VariantSpec(n, label, d) for n, label, d in POSITIONS),
    params=PositionParams,
    charts=(
        ChartSpec("loss", "line", "Training loss of each model"),
        ChartSpec("accuracy", "bar", "Accuracy on held-out sequences"),
    ),
    claims=(
        Claim(
            "no-positions-fails",
            "Without positions the model fails the task: its per-digit accuracy on held-out "
            "sequences is below 0.6",
            metric("none", "accuracy"),
            "<",
            0.6,
        ),
        Claim(
            "positions-help",
            "Every kind of position does much better: the worst of sinusoidal, learned and "
            "rotary beats no positions by over 0.3",
            metric(RUN, "min_gain"),
            ">",
            0.3,
        ),
    ),
    counterfactual={"task": "sort"},
    engine=f"{_ENGINES}positions:run",
    fixed={
        "model": "1 layer, 2 heads, n_embd 16; sinusoidal table scaled by 0.2 to the embeddings",
        "batch": "32 sequences",
        "digits": "0-9",
    },
)

EXPERIMENTS = (PERPLEXITY, ATTENTION_MAPS, POSITIONAL)
