"""Decoding the small language model: how temperature, top-k / top-p truncation and beam
search change what it writes, measured on the server's trained model (app/demo/lm).

Engines live in app/demo/engines/lm_decoding.py and lm_decoding_beam.py.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from app.demo.claims import RUN, Claim, metric
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.params import ExperimentParams

FAMILY = "language-model"
_ENGINES = "app.demo.engines.lm_decoding"

# Glossary-like prompts every run decodes from, after the user's own prompt.
PROMPTS = ("A neural network", "Gradient descent", "The softmax")
# A forward pass of the full model on a batch of a few one-token rows (KV cache), measured
# at ~0.6 ms on the reference CPU; the estimates below take 1.5 ms. Past the context window
# every other step re-runs the last block - 1 tokens: ~2.7 ms a step measured, 4 ms taken.
STEP_S = 1.5e-3
SLIDING_STEP_S = 4e-3
BLOCK = 64  # the model's context (FULL and TINY)


def decode_seconds(n_tokens: int) -> float:
    """Estimated time to continue every prompt by n_tokens, all variants batched."""
    per_prompt = min(n_tokens, BLOCK) * STEP_S + max(0, n_tokens - BLOCK) * SLIDING_STEP_S
    return 0.05 + (len(PROMPTS) + 1) * per_prompt


def _prompt_field(default: str) -> str:
    return Field(
        default,
        min_length=1,
        max_length=200,
        description="The text the model continues (any Unicode; decoded from its last tokens).",
    )


# ----------------------------------------------------------------------------- temperature

# Temperature of each variant: 1 + k * spread.
TEMPERATURE_STEPS = (("coldest", -1.5), ("cold", -1.0), ("neutral", 0.0), ("hot", 1.0))


class TemperatureParams(ExperimentParams):
    budget_param: ClassVar[str] = "n_tokens"

    prompt: str = _prompt_field("The learning rate")
    spread: float = Field(
        0.5,
        ge=0,
        le=0.6,
        description="Step between temperatures: 1 - 1.5 s, 1 - s, 1 and 1 + s.",
    )
    n_tokens: int = Field(48, ge=1, le=300, description="Tokens sampled per prompt and variant.")

    def temperatures(self) -> list[float]:
        return [round(1 + k * self.spread, 6) for _, k in TEMPERATURE_STEPS]

    def estimate_seconds(self) -> float:
        return decode_seconds(self.n_tokens)


TEMPERATURE = Experiment(
    name="temperature",
    title="Temperature: how sharp the next-token distribution is",
    family=FAMILY,
    description=(
        "The model's logits after a prompt are divided by a temperature T before the softmax. "
        "Below 1 this sharpens the distribution toward the top tokens, above 1 it flattens "
        "it; the ranking never changes. For four temperatures the model continues the same "
        "prompts (the same random seed for each), and at every step we measure the entropy of "
        "the distribution it samples from, in bits: a uniform choice between two tokens is 1 "
        "bit. Entropy should rise with temperature, and the cold samples should read as the "
        "model's most predictable text while the hot ones drift into odd bytes."
    ),
    citation="Ackley, Hinton and Sejnowski, 1985; Holtzman et al., 2020",
    terms=("temperature",),
    variants=tuple(
        VariantSpec(name, f"T = 1 {'+' if k > 0 else '-'} {abs(k):g} x spread", "")
        if k
        else VariantSpec(name, "T = 1", "The model's own distribution, unchanged.")
        for name, k in TEMPERATURE_STEPS
    ),
    params=TemperatureParams,
    charts=(
        ChartSpec("entropy", "bar", "Mean entropy of the next-token distribution"),
        ChartSpec("next-token", "bar", "The 10 likeliest next tokens after the prompt"),
    ),
    claims=(
        Claim(
            "entropy-rises",
            "Each step up in temperature raises the mean entropy by more than 0.02 bits "
            "(the smallest rise between consecutive temperatures)",
            metric(RUN, "min_entropy_rise_bits"),
            ">",
            0.02,
        ),
        Claim(
            "cold-concentrates",
            "After the prompt, the coldest temperature gives the top token more probability "
            "than the hottest (their ratio above 1.05)",
            metric(RUN, "top_prob_coldest_over_hottest"),
            ">",
            1.05,
        ),
    ),
    counterfactual={"spread": 0},
    engine=f"{_ENGINES}:run_temperature",
    fixed={"prompts": "the prompt, then " + ", ".join(repr(p) for p in PROMPTS)},
    needs_model=True,
)


# ----------------------------------------------------------------------------- top-k, top-p


class TruncationParams(ExperimentParams):
    budget_param: ClassVar[str] = "n_tokens"

    prompt: str = _prompt_field("The model")
    top_k: int = Field(5, ge=1, le=261, description="Tokens the top-k variant keeps per step.")
    top_p: float = Field(
        0.9, ge=0.01, le=1, description="Probability mass the top-p (nucleus) variant keeps."
    )
    n_tokens: int = Field(64, ge=8, le=250, description="Tokens generated per prompt.")

    def estimate_seconds(self) -> float:
        return 1.3 * decode_seconds(self.n_tokens)  # truncation sorts the vocabulary per step


TOP_K_TOP_P = Experiment(
    name="top-k-top-p",
    title="Greedy, top-k, top-p and plain sampling: how often the text repeats itself",
    family=FAMILY,
    description=(
        "Four ways to choose the next token from the same model: always the likeliest "
        "(greedy), a sample from the k likeliest (top-k), a sample from the smallest set whose "
        "probability reaches p (top-p, the nucleus), and a sample from the whole distribution. "
        "Each continues the same prompts; we count the fraction of each text's byte 4-grams "
        "that already occurred earlier in the same text. Greedy decoding falls into loops, so "
        "its text repeats itself far more than sampled text; the nucleus grows and shrinks "
        "with the model's uncertainty, from one token where it is sure to many where it is not."
    ),
    citation="Holtzman et al., 2020; Fan, Lewis and Dauphin, 2018",
    terms=("top-k-sampling", "top-p-sampling", "greedy-decoding"),
    variants=(
        VariantSpec("greedy", "Greedy", "The likeliest token at every step."),
        VariantSpec("top-k", "Top-k", "A sample from the top_k likeliest tokens."),
        VariantSpec("top-p", "Top-p (nucleus)", "A sample from the top_p probability nucleus."),
        VariantSpec("sampling", "Sampling (T = 1)", "A sample from the whole distribution."),
    ),
    params=TruncationParams,
    charts=(
        ChartSpec("repetition", "bar", "Repeated byte 4-grams in the generated text"),
        ChartSpec("nucleus", "line", "Tokens kept by top-p at each step"),
    ),
    claims=(
        Claim(
            "greedy-repeats",
            "Greedy text repeats itself more than nucleus-sampled text: its repeated 4-gram "
            "rate is over 0.1 higher",
            metric(RUN, "greedy_minus_top_p_repeats"),
            ">",
            0.1,
        ),
        Claim(
            "nucleus-adapts",
            "The nucleus changes size with the model's certainty: its largest holds at least "
            "5 tokens more than its smallest",
            metric(RUN, "nucleus_range"),
            ">=",
            5,
        ),
        Claim(
            "nucleus-small",
            "The nucleus keeps on average at least one token and under a quarter of the "
            "261-token vocabulary",
            metric("top-p", "nucleus_size"),
            "between",
            1,
            65,
        ),
    ),
    counterfactual={"top_p": 0.01},
    engine=f"{_ENGINES}:run_truncation",
    fixed={"prompts": "the prompt, then " + ", ".join(repr(p) for p in PROMPTS)},
    needs_model=True,
)


# ----------------------------------------------------------------------------- beam search

BEAM_WIDTHS = (2, 4, 8)


class BeamParams(ExperimentParams):
    budget_param: ClassVar[str] = "n_tokens"

    prompt: str = _prompt_field("The learning rate")
    n_tokens: int = Field(
        24, ge=1, le=48, description="Tokens in every continuation (within one context window)."
    )

    def estimate_seconds(self) -> float:
        return 0.05 + (len(PROMPTS) + 1) * self.n_tokens * STEP_S * (1 + len(BEAM_WIDTHS))


GREEDY_VS_BEAM = Experiment(
    name="greedy-vs-beam",
    title="Greedy decoding vs beam search: the probability of the text found",
    family=FAMILY,
    description=(
        "Greedy decoding takes the likeliest token at each step; beam search keeps the width "
        "best partial continuations and extends all of them, so it can pass over a likely "
        "first token whose continuations are poor. For a few prompts each method writes a "
        "continuation of the same length, and we score every continuation again with the "
        "model, as log p(continuation | prompt) in nats. Wider beams should find more probable "
        "text than greedy decoding; with a single token to write, the two are the same. The "
        "search is still approximate: a wider beam usually, not always, beats a narrower one, "
        "and on some prompt a narrow beam can even end below greedy."
    ),
    citation="Graves, 2012; Sutskever, Vinyals and Le, 2014",
    terms=("beam-search", "greedy-decoding"),
    variants=(VariantSpec("greedy", "Greedy", "The likeliest token at every step."),)
    + tuple(
        VariantSpec(f"beam-{w}", f"Beam, width {w}", f"The best of {w} beams, no length penalty.")
        for w in BEAM_WIDTHS
    ),
    params=BeamParams,
    charts=(
        ChartSpec("logprob", "bar", "Log-probability of the continuation, mean over prompts"),
        ChartSpec("per-prompt", "bar", "Gain over greedy for each prompt"),
    ),
    claims=(
        Claim(
            "beam-beats-greedy",
            f"The widest beam ({BEAM_WIDTHS[-1]}) finds continuations more probable than "
            "greedy's: a mean gain above 0.05 nats",
            metric(RUN, "widest_mean_gain_nats"),
            ">",
            0.05,
        ),
        Claim(
            "beam-never-worse",
            "For every prompt the widest beam's continuation is at least as probable as "
            "greedy's (the smallest gain, within 1e-4 nats)",
            metric(RUN, "widest_min_gain_nats"),
            ">=",
            -1e-4,
        ),
    ),
    counterfactual={"n_tokens": 1},
    engine=f"{_ENGINES}_beam:run",
    fixed={
        "prompts": "the prompt, then " + ", ".join(repr(p) for p in PROMPTS),
        "length penalty": "none",
        "seed": "unused: greedy decoding and beam search are deterministic",
    },
    needs_model=True,
)


EXPERIMENTS = (TEMPERATURE, TOP_K_TOP_P, GREEDY_VS_BEAM)
