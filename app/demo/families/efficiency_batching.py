"""Serving many requests at once: static batching against continuous (iteration-level)
batching, on the trained language model.

The engine lives in app/demo/engines/efficiency_batching.py.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from app.demo.claims import RUN, Claim, metric, ratio
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.params import ExperimentParams

FAMILY = "efficiency"

# The requests' prompts: short, so that prompt + the longest output fit the 64-token context.
PROMPTS = (
    "Dropout",
    "A transformer",
    "The learning rate",
    "Attention",
    "Gradient descent",
    "A token",
    "The loss",
    "Layer norm",
)
PROMPT_TOKENS = 17  # the longest prompt above, in bytes
MAX_OUTPUT = 64 - PROMPT_TOKENS  # what the context leaves for the output
# A batched decoding step of the full model on the reference CPU (one thread): about 0.8 ms,
# plus 0.1 ms per row (each row's cache is grown and padded on its own); the estimate takes
# 1.5x both.
STEP_S, ROW_S = 1.2e-3, 1.5e-4


class BatchingParams(ExperimentParams):
    budget_param: ClassVar[str] = "requests"

    requests: int = Field(24, ge=2, le=64, description="Requests waiting to be served.")
    slots: int = Field(4, ge=1, le=16, description="Sequences the server decodes at once.")
    mean_length: int = Field(
        24,
        ge=2,
        le=MAX_OUTPUT,
        description=f"Mean number of tokens a request asks for (no request asks for more than "
        f"the {MAX_OUTPUT} the context leaves after the prompt).",
    )
    length_spread: float = Field(
        0.8,
        ge=0,
        le=1,
        description="How much the requested lengths differ: each is drawn uniformly from "
        "mean x (1 - spread) to mean x (1 + spread); 0 makes them all the same.",
    )

    def estimate_seconds(self) -> float:
        """Static batching takes up to requests x (longest length) / slots steps, continuous
        about requests x mean / slots; each request also has a prefill and is scored again
        alone (a forward pass of its prompt and of its text: ~4 ms together)."""
        longest = min(MAX_OUTPUT, self.mean_length * (1 + self.length_spread))
        steps = self.requests * (longest + self.mean_length) / self.slots
        return 0.1 + (STEP_S + ROW_S * self.slots) * steps + 4e-3 * self.requests


CONTINUOUS_BATCHING = Experiment(
    name="continuous-batching",
    title="Continuous batching: a freed slot takes the next request at once",
    family=FAMILY,
    description=(
        "A server decodes several requests together, one token for each in every step, "
        "because a batched step costs little more than a single one. With static batching "
        "it takes a batch of requests and runs it until its longest request is done: the "
        "rows that finished early keep their slot and compute tokens nobody reads. With "
        "continuous batching the schedule is decided at every step: a request that finishes "
        "leaves, and the next waiting one takes its slot in the same step. We serve the same "
        "requests, with lengths that differ, both ways on the trained model, with each "
        "request's keys and values kept in its own cache and masked so that batching changes "
        "nothing a request computes. Continuous batching should need fewer steps and waste "
        "fewer slots; when every request asks for the same length, the two are the same."
    ),
    citation="Yu et al., 2022",
    terms=("continuous-batching",),
    variants=(
        VariantSpec(
            "static",
            "Static batching",
            "Batches of `slots` requests in arrival order, each run until its longest is done.",
        ),
        VariantSpec(
            "continuous",
            "Continuous batching",
            "A finished request's slot goes to the next waiting request at the next step.",
        ),
    ),
    params=BatchingParams,
    charts=(
        ChartSpec("occupancy", "line", "Slots doing useful work at each step"),
        ChartSpec("steps", "bar", "Decoding steps and wasted slot-steps"),
    ),
    claims=(
        Claim(
            "fewer-steps",
            "Continuous batching serves the same requests in fewer batched steps: static "
            "batching needs over 1.15 times as many",
            metric(RUN, "step_ratio"),
            ">",
            1.15,
        ),
        Claim(
            "fewer-wasted-slots",
            "Continuous batching leaves under 0.6 times the share of slot-steps idle that "
            "static batching does (its only idle slots are at the end, when no request is left "
            "to take them)",
            ratio(metric("continuous", "wasted_fraction"), metric("static", "wasted_fraction")),
            "<",
            0.6,
        ),
        Claim(
            "same-computation",
            "Batching changes nothing a request computes: its next-token logits in the batch "
            "match decoding it alone (largest difference below 1e-4)",
            metric(RUN, "max_logit_difference"),
            "<",
            1e-4,
        ),
    ),
    counterfactual={"length_spread": 0},
    engine="app.demo.engines.efficiency_batching:run",
    fixed={
        "decoding": "greedy; each request stops at its requested length",
        "prompts": ", ".join(repr(p) for p in PROMPTS) + ", in turn",
        "prefill": "each newcomer's prompt runs alone, then it joins the batched steps",
        "requested lengths": "drawn from the seed",
    },
    needs_model=True,
)

EXPERIMENTS = (CONTINUOUS_BATCHING,)
