"""Faster decoding of the small language model without changing what it writes: the KV cache
and speculative decoding, timed on the server's device with the trained model (app/demo/lm).

Engines live in app/demo/engines/efficiency_kv_cache.py and efficiency_speculative.py.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from app.demo.claims import RUN, Claim, metric
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.params import ExperimentParams

FAMILY = "efficiency"
_ENGINES = "app.demo.engines.efficiency_"

BLOCK = 64  # the model's context (FULL and TINY)
PROMPT_TOKENS = 16  # the prompt's last 16 tokens are kept, so 48 new ones always fit
MAX_NEW = BLOCK - PROMPT_TOKENS
# One forward pass of the full model over one new token with the cache, measured at ~0.42 ms
# on the reference CPU, and over a whole 64-token sequence at ~0.9 ms; the estimates below
# take about 1.5x those.
CACHED_STEP_S = 6e-4
PER_TOKEN_S = 1.2e-5  # what each extra token of a re-run sequence adds to a forward pass


def _prompt_field(default: str) -> str:
    return Field(
        default,
        min_length=1,
        max_length=64,
        description=f"The text the model continues (any Unicode; its last {PROMPT_TOKENS} "
        "byte tokens are used).",
    )


# ----------------------------------------------------------------------------- KV cache

# A GPU runs one short sequence in about the same time whatever its length (the kernels'
# launch cost dominates), so there the same prompt is decoded in this many rows at once: enough
# work for re-running the prefix to cost what it costs at scale.
GPU_ROWS = 4096
# Timed repeats (fastest of them, step by step): at least 5, more for short outputs so a
# run of a few tokens still times about 240 steps per variant.
MIN_REPEATS, TIMED_STEPS, MAX_REPEATS = 5, 240, 32


def kv_repeats(n_tokens: int) -> int:
    return max(MIN_REPEATS, min(MAX_REPEATS, TIMED_STEPS // n_tokens))


class KVCacheParams(ExperimentParams):
    budget_param: ClassVar[str] = "n_tokens"

    prompt: str = _prompt_field("Gradient descent")
    n_tokens: int = Field(
        MAX_NEW,
        ge=1,
        le=MAX_NEW,
        description="New tokens generated greedily: the longest output timed (every length "
        "from 1 to it is measured on the way).",
    )

    def estimate_seconds(self) -> float:
        """Per repeat: a cached step per token, and a re-run of the whole sequence (prompt
        plus the tokens so far) per token; plus a warm-up."""
        n = self.n_tokens
        rerun = n * CACHED_STEP_S + PER_TOKEN_S * n * (PROMPT_TOKENS + n / 2)
        return 0.1 + kv_repeats(n) * (n * CACHED_STEP_S + rerun)


KV_CACHE = Experiment(
    name="kv-cache",
    title="KV cache: the same tokens, without recomputing the prefix at every step",
    family=FAMILY,
    description=(
        "A language model writes one token at a time, and each new token attends to every "
        "token before it. Those earlier tokens' keys and values never change, so they can be "
        "kept (the KV cache) and only the newest token run through the model at each step. "
        "Without the cache, the whole sequence goes through the model again at every step, "
        "and each step costs more than the one before. We generate the same greedy "
        "continuation both ways on this server's device, timing every step, and report the "
        "time per token for each output length. The cache should be faster, more so the "
        "longer the output, and the tokens should be exactly the same: for one token there "
        "is nothing to reuse and the two cost the same."
    ),
    citation="Pope et al., 2022",
    terms=("kv-cache",),
    variants=(
        VariantSpec("cache", "With the KV cache", "The prompt once, then one new token per step."),
        VariantSpec(
            "no-cache",
            "Without a cache",
            "The whole sequence run through the model again at every step.",
        ),
    ),
    params=KVCacheParams,
    charts=(
        ChartSpec("ms-per-token", "line", "Time per token by output length"),
        ChartSpec("speedup", "line", "Speed-up of the cache by output length"),
    ),
    claims=(
        Claim(
            "cache-faster",
            "At the longest output, the cache makes each token at least 1.3 times faster than "
            "re-running the whole sequence",
            metric(RUN, "speedup_longest"),
            ">=",
            1.3,
        ),
        Claim(
            "gain-grows",
            "The gain grows with the output: the speed-up at the longest output is over 1.1 "
            "times the speed-up at an eighth of that length",
            metric(RUN, "speedup_growth"),
            ">",
            1.1,
        ),
        Claim(
            "same-tokens",
            "Both ways write exactly the same tokens (the cache saves work, it changes nothing)",
            metric(RUN, "identical"),
            ">=",
            1,
        ),
    ),
    counterfactual={"n_tokens": 1},
    engine=f"{_ENGINES}kv_cache:run",
    fixed={
        "decoding": "greedy (the likeliest token each step)",
        "timing": f"variants interleaved after an untimed warm-up; each step's fastest of at "
        f"least {MIN_REPEATS} repeats, then a running median over 5 neighbouring steps",
        "batch": f"1 sequence on a CPU, {GPU_ROWS} copies of it on a GPU",
        "seed": "unused: greedy decoding is deterministic",
    },
    needs_model=True,
)


# ----------------------------------------------------------------------------- speculative

# Prompts every run decodes from, after the user's own (more proposals to count).
SPEC_PROMPTS = ("A neural network", "The softmax")
SPEC_REPEATS = 2  # timed repeats per variant and prompt, interleaved; the fastest is kept
DRAFT_STEP_S = 2e-5  # one n-gram look-up in Python


class SpeculativeParams(ExperimentParams):
    budget_param: ClassVar[str] = "n_tokens"

    prompt: str = _prompt_field("Gradient descent")
    n_tokens: int = Field(
        40, ge=1, le=MAX_NEW, description="New tokens generated greedily from each prompt."
    )
    draft_tokens: int = Field(
        4, ge=1, le=8, description="Tokens the draft proposes before each check by the model."
    )
    draft_order: int = Field(
        # 4: across five models trained from different seeds on the same glossary, a 4-gram
        # draft was accepted 47-60% of the time, a bigram's 14-33% (too close to the claim)
        4,
        ge=1,
        le=6,
        description="The draft's n-gram order: it predicts each byte from the previous "
        "order - 1 (1: the most frequent byte, whatever came before).",
    )
    verify: Literal["target", "none"] = Field(
        "target",
        description="Who has the last word: the model checks every proposal (target), or the "
        "draft's tokens are kept unchecked (none).",
    )

    def estimate_seconds(self) -> float:
        """Per prompt and repeat: one cached step per token for the model alone, and for each
        of the two drafts a pass per two tokens (4-gram ~3 tokens a pass, unigram ~1.3), each
        pass over draft_tokens more; plus building the drafts' tables (~0.1 s). Reading the
        glossary's text for them (~1 s) happens once per process and is not counted."""
        n, k = self.n_tokens, self.draft_tokens
        per_pass = CACHED_STEP_S + k * (DRAFT_STEP_S + PER_TOKEN_S)
        per_prompt = n * CACHED_STEP_S + 2 * (n / 2) * per_pass
        return 0.1 + SPEC_REPEATS * (1 + len(SPEC_PROMPTS)) * per_prompt


SPECULATIVE = Experiment(
    name="speculative-decoding",
    title="Speculative decoding: a cheap draft guesses, the model checks several tokens at once",
    family=FAMILY,
    description=(
        "A draft much cheaper than the model proposes the next few tokens; the model then "
        "scores all of them in one forward pass (with its KV cache) and keeps the longest "
        "run it agrees with, plus its own next token. With greedy decoding the text is "
        "exactly what the model would write alone, only reached in fewer forward passes of "
        "the model. Our draft is an n-gram model counted here from the glossary text the "
        "model trained on: by default a 4-gram (each byte guessed from the three before). We "
        "compare it with a unigram draft that always guesses the most frequent byte, and "
        "with the model decoding alone. The 4-gram draft's tokens should often be accepted, "
        "the unigram's rarely, and as the model's passes are few and each costs little more "
        "for five tokens than for one, decoding should be faster. Keep the draft's tokens "
        "without the model's check, and the text is the draft's, not the model's."
    ),
    citation="Leviathan et al., 2023; Chen et al., 2023",
    terms=("speculative-decoding",),
    variants=(
        VariantSpec(
            "target-only", "Model alone", "Greedy decoding, one model forward pass per token."
        ),
        VariantSpec(
            "speculative",
            "n-gram draft",
            "The n-gram draft (draft_order) proposes, the model checks.",
        ),
        VariantSpec(
            "unigram",
            "Unigram draft",
            "A bad draft for contrast: always the most frequent byte.",
        ),
    ),
    params=SpeculativeParams,
    charts=(
        ChartSpec("acceptance", "line", "Acceptance by position in the draft's proposal"),
        ChartSpec("tokens-per-pass", "bar", "Tokens written per forward pass of the model"),
    ),
    claims=(
        Claim(
            "output-identical",
            "With both drafts, greedy speculative decoding writes exactly the tokens the "
            "model writes alone, for every prompt",
            metric(RUN, "identical"),
            ">=",
            1,
        ),
        Claim(
            "draft-accepted",
            "The n-gram draft is a useful guess: the model accepts over 30% of the tokens it "
            "proposes",
            metric("speculative", "acceptance_rate"),
            ">",
            0.3,
        ),
        Claim(
            "fewer-passes-faster",
            "Fewer forward passes of the model make it faster: with the n-gram draft each "
            "token takes at least 1.3 times less time than with the model alone, on this "
            "device",
            metric(RUN, "speedup_ngram"),
            ">=",
            1.3,
        ),
    ),
    counterfactual={"verify": "none"},
    engine=f"{_ENGINES}speculative:run",
    fixed={
        "prompts": "the prompt, then " + ", ".join(repr(p) for p in SPEC_PROMPTS),
        "draft": "byte n-gram counts of the training text, backing off to shorter contexts",
        "decoding": "greedy; the model's check accepts a draft token when it is its own "
        "likeliest next token",
        "timing": f"variants interleaved, the fastest of {SPEC_REPEATS} repeats",
        "seed": "unused: greedy decoding and the draft are deterministic",
    },
    needs_model=True,
)


EXPERIMENTS = (KV_CACHE, SPECULATIVE)
