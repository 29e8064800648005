"""Static against continuous batching of greedy decoding on the trained model.

Every request keeps its own KV cache (its prompt ran alone: the prefill). A batched step
feeds each active request its last token at that request's own position; the requests'
caches have different lengths, so they are right-padded into one tensor and the padding is
masked out of attention. That way batching changes nothing a request computes, which the run
checks by scoring each request's text again in one plain forward pass.

The two schedules differ only in who sits in the batch: static batching keeps a batch until
its longest request is done (the finished rows still compute, uselessly); continuous batching
(Yu et al. 2022) lets a waiting request take a slot as soon as one is freed.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from app.demo.engines.common import fmt, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.efficiency_batching import MAX_OUTPUT, PROMPTS, BatchingParams
from app.demo.lm.gpt import GPT, KV, rotate
from app.demo.lm.text import decode, encode
from app.demo.result import Chart, Number, Series, TextSample, VariantResult

SCHEDULES = ("static", "continuous")


@dataclass
class Request:
    prompt: list[int]
    wanted: int  # tokens the request asks for
    tokens: list[int] = field(default_factory=list)  # emitted so far (past `wanted`: waste)
    cache: list[KV] = field(default_factory=list)  # per layer: (1, nh, t, hs)
    logits: torch.Tensor | None = None  # (vocab,) for the next token
    used_logits: list[torch.Tensor] = field(default_factory=list)  # what chose each token
    done_at: int = 0  # the step after which the request had all its tokens

    @property
    def finished(self) -> bool:
        return len(self.tokens) >= self.wanted

    def emit(self) -> None:
        """Take the likeliest next token (kept only while the request still wants tokens)."""
        assert self.logits is not None
        if not self.finished:
            self.used_logits.append(self.logits)
        self.tokens.append(int(self.logits.argmax()))


def requested_lengths(params: BatchingParams) -> list[int]:
    """Each request's length, uniform in mean x (1 -/+ spread), from the run's seed."""
    g = torch.Generator().manual_seed(params.seed)
    lo = max(1, round(params.mean_length * (1 - params.length_spread)))
    hi = min(MAX_OUTPUT, round(params.mean_length * (1 + params.length_spread)))
    drawn: list[int] = torch.randint(lo, hi + 1, (params.requests,), generator=g).tolist()
    return drawn


def new_requests(params: BatchingParams) -> list[Request]:
    lengths = requested_lengths(params)
    return [Request(encode(PROMPTS[i % len(PROMPTS)]), n) for i, n in enumerate(lengths)]


def prefill(model: GPT, request: Request, device: str) -> None:
    """The prompt alone, in one forward pass; the request's first token."""
    logits, request.cache = model(torch.tensor([request.prompt], device=device))
    request.logits = logits[0, -1]
    request.emit()


def batched_step(model: GPT, batch: list[Request], device: str) -> None:
    """One token for every request in the batch, each at its own position, in one pass."""
    c, nh = model.config.n_embd, model.config.n_head
    hs = c // nh
    last = torch.tensor([[r.tokens[-1]] for r in batch], device=device)  # (B, 1)
    pos = torch.tensor([len(r.prompt) + len(r.tokens) - 1 for r in batch], device=device)
    x = model.wte(last)  # (B, 1, C)
    if model.wpe is not None:
        x = x + model.wpe(pos)[:, None]
    elif model.config.position == "sinusoidal":
        x = x + model.table[pos][:, None]
    for i, block in enumerate(model.blocks):
        attn = block.attn
        q, k, v = attn.qkv(block.ln_1(x)).split(c, dim=2)  # (B, 1, C) each
        q, k, v = (z.view(len(batch), 1, nh, hs).transpose(1, 2) for z in (q, k, v))
        if attn.rotary:  # each row at its own position
            q = torch.cat([rotate(q[b : b + 1], int(p)) for b, p in enumerate(pos)])
            k = torch.cat([rotate(k[b : b + 1], int(p)) for b, p in enumerate(pos)])
        for b, r in enumerate(batch):  # each request's cache grows by its new key and value
            old_k, old_v = r.cache[i]
            r.cache[i] = (torch.cat((old_k, k[b : b + 1]), 2), torch.cat((old_v, v[b : b + 1]), 2))
        lengths = [r.cache[i][0].size(2) for r in batch]
        longest = max(lengths)
        keys = x.new_zeros(len(batch), nh, longest, hs)  # right-padded: (B, nh, T, hs)
        values = x.new_zeros(len(batch), nh, longest, hs)
        for b, r in enumerate(batch):
            keys[b, :, : lengths[b]], values[b, :, : lengths[b]] = (
                r.cache[i][0][0],
                r.cache[i][1][0],
            )
        real = (
            torch.arange(longest, device=device)[None]
            < torch.tensor(lengths, device=device)[:, None]
        )
        att = (q @ keys.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, 1, T)
        att = att.masked_fill(~real[:, None, None, :], float("-inf")).softmax(dim=-1)
        y = (att @ values).transpose(1, 2).reshape(len(batch), 1, c)
        x = x + attn.proj(y)
        x = x + block.mlp(block.ln_2(x))
    logits = model.head(model.ln_f(x))[:, 0]  # (B, vocab)
    for b, r in enumerate(batch):
        r.logits = logits[b]
        r.emit()


@dataclass
class Served:
    """One schedule's run: its requests, the useful rows of every step, its wall time."""

    requests: list[Request]
    occupancy: list[int]
    seconds: float

    @property
    def steps(self) -> int:
        return len(self.occupancy)


def serve(
    model: GPT, params: BatchingParams, schedule: str, device: str, check: Callable[[], None]
) -> Served:
    queue = new_requests(params)
    waiting, batch, occupancy = list(queue), [], []  # type: list[Request], list[Request], list[int]
    t0 = time.perf_counter()
    with torch.no_grad():
        while waiting or batch:
            check()
            if schedule == "continuous":  # a finished request leaves; its slot is free now
                batch = [r for r in batch if not r.finished]
            if schedule == "continuous" or not batch:  # static refills only an empty batch
                while waiting and len(batch) < params.slots:
                    newcomer = waiting.pop(0)
                    prefill(model, newcomer, device)
                    batch.append(newcomer)
            active = [r for r in batch if not r.finished]
            if not active:  # static: the whole batch is done (or newcomers wanted 1 token)
                batch = []
                continue
            occupancy.append(len(active))
            batched_step(model, batch, device)
            for r in active:
                if r.finished:
                    r.done_at = len(occupancy)
    if device == "cuda":
        torch.cuda.synchronize()
    return Served(queue, occupancy, time.perf_counter() - t0)


def max_logit_difference(model: GPT, served: Served, device: str) -> float:
    """Each request's text scored again alone, in one forward pass: the largest difference
    from the logits that chose its tokens in the batch."""
    worst = 0.0
    with torch.no_grad():
        for r in served.requests:
            ids = r.prompt + r.tokens[: r.wanted - 1]
            logits, _ = model(torch.tensor([ids], device=device))  # (1, T, vocab)
            alone = logits[0, len(r.prompt) - 1 :]  # the logits before each wanted token
            batched = torch.stack(r.used_logits)
            worst = max(worst, float((alone - batched).abs().max()))
    return worst


def run(experiment: Experiment, params: BatchingParams, ctx: RunContext) -> EngineOutput:
    model: GPT = copy.deepcopy(ctx.lm.model).to(ctx.device)  # the served model is shared
    model.eval()
    done = [0]
    total = 2 * params.requests * params.mean_length // max(1, params.slots) + params.requests

    def check() -> None:
        ctx.check(done[0], total)
        done[0] += 1

    served = {s: serve(model, params, s, ctx.device, check) for s in SCHEDULES}
    worst = max(max_logit_difference(model, served[s], ctx.device) for s in SCHEDULES)
    labels = {v.name: v.label for v in experiment.variants}
    useful = sum(r.wanted for r in served["static"].requests)
    variants, wasted = [], {}
    for s in SCHEDULES:
        out = served[s]
        capacity = params.slots * out.steps
        # slot-steps that wrote no wanted token (the prefill writes each request's first)
        wasted[s] = 1 - sum(out.occupancy) / capacity if capacity else 0.0
        variants.append(
            VariantResult(
                name=s,
                label=labels[s],
                metrics={
                    "steps": float(out.steps),
                    "wasted_fraction": num(wasted[s]),
                    "ms_per_token": num(1000 * out.seconds / useful),
                    "mean_latency_steps": num(
                        sum(r.done_at for r in out.requests) / len(out.requests)
                    ),
                    "tokens": float(useful),
                },
            )
        )
    steps = {s: served[s].steps for s in SCHEDULES}
    run_metrics: dict[str, Number] = {
        "step_ratio": num(steps["static"] / steps["continuous"]) if steps["continuous"] else None,
        "max_logit_difference": num(worst),
        "requests": float(params.requests),
        "slots": float(params.slots),
    }
    first = served["continuous"].requests[0]
    samples = [
        TextSample(
            variant="continuous",
            label=f"Request 1 of {params.requests} (asked for {first.wanted} tokens)",
            prompt=decode(first.prompt),
            text=decode(first.tokens[: first.wanted]),
            note="the same text in both schedules"
            if served["static"].requests[0].tokens[: first.wanted] == first.tokens[: first.wanted]
            else "static batching wrote different text",
        )
    ]
    summary = (
        f"{params.requests} requests of {min(r.wanted for r in served['static'].requests)} to "
        f"{max(r.wanted for r in served['static'].requests)} tokens on {params.slots} slots: "
        f"static batching took {steps['static']} steps and left {fmt(100 * wasted['static'])}% "
        f"of its slot-steps without a wanted token, continuous batching {steps['continuous']} "
        f"steps and {fmt(100 * wasted['continuous'])}%; every request's logits matched "
        f"decoding it alone to {fmt(worst)}."
    )
    return EngineOutput(
        variants, _charts(served, wasted, labels, params.slots), summary, run_metrics, samples
    )


def _charts(
    served: dict[str, Served], wasted: dict[str, float], labels: dict[str, str], slots: int
) -> list[Chart]:
    longest = max(s.steps for s in served.values())
    return [
        Chart(
            id="occupancy",
            kind="line",
            title="Slots doing useful work at each step",
            x_label="decoding step",
            y_label="requests still writing wanted tokens",
            series=[
                *(
                    Series(
                        label=labels[s],
                        points=[
                            (float(i + 1), float(n)) for i, n in enumerate(served[s].occupancy)
                        ],
                        variant=s,
                    )
                    for s in SCHEDULES
                ),
                Series(
                    label="slots",
                    points=[(1.0, float(slots)), (float(longest), float(slots))],
                    style="dashed",
                ),
            ],
            finding=f"Static batching ran {served['static'].steps} steps, continuous "
            f"batching {served['continuous'].steps}; a static batch's slots empty out as its "
            "shorter requests finish, until its longest is done.",
        ),
        Chart(
            id="steps",
            kind="bar",
            title="Decoding steps and wasted slot-steps",
            x_label="schedule",
            y_label="count",
            categories=[labels[s] for s in SCHEDULES],
            series=[
                Series(
                    label="decoding steps",
                    points=[(float(i), float(served[s].steps)) for i, s in enumerate(SCHEDULES)],
                ),
                Series(
                    label="slot-steps without a wanted token",
                    points=[
                        (float(i), float(slots * served[s].steps - sum(served[s].occupancy)))
                        for i, s in enumerate(SCHEDULES)
                    ],
                ),
            ],
            finding=f"{fmt(100 * wasted['static'])}% of static batching's slot-steps wrote "
            f"nothing wanted, against {fmt(100 * wasted['continuous'])}% for continuous "
            "batching.",
        ),
    ]
