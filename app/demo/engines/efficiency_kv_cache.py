"""KV cache: greedy decoding with and without the cache, every step timed.

cached_steps() runs the prompt once and then one token per forward pass, passing the keys
and values back in (GPT's `past`); uncached_steps() runs the whole sequence through the model
at every step. The two advance in lockstep, one step of each in turn, so that both see the
same load on the machine; this is repeated, and each step's fastest time is kept: other
processes can only make a step slower, never faster. When the machine is busy every repeat of
some step may still be interrupted; a running median over neighbouring steps (whose true cost
changes smoothly) sets those few aside.
"""

from __future__ import annotations

import copy
import itertools
import statistics
import time
from collections.abc import Callable, Iterator

import torch

from app.demo.engines.common import fmt, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.efficiency_decoding import (
    GPU_ROWS,
    PROMPT_TOKENS,
    KVCacheParams,
    kv_repeats,
)
from app.demo.lm.gpt import GPT
from app.demo.lm.text import decode, encode, token_name
from app.demo.result import Chart, Number, Series, TextSample, VariantResult

VARIANTS = ("cache", "no-cache")
WARM_UP_TOKENS = 4  # an untimed run first: the allocator and caches settle
SMOOTH = 2  # neighbours on each side in the running median of step times
SHORT_FRACTION = 8  # the gain's growth: the longest output against an eighth of it


def prompt_ids(text: str) -> list[int]:
    return encode(text, specials=True)[-PROMPT_TOKENS:]


def cached_steps(model: GPT, prompt: torch.Tensor, n: int) -> Iterator[torch.Tensor]:
    """The (rows, 1) greedy token of each of n steps after prompt (rows, P): the prompt in one
    forward pass, then one token per pass with the cache. Run it under torch.no_grad()."""
    logits, past = model(prompt)  # prefill: (rows, P, vocab) and every layer's keys/values
    token = logits[:, -1:].argmax(-1)  # (rows, 1)
    yield token
    for _ in range(n - 1):
        logits, past = model(token, past)  # (rows, 1, vocab): the new token only
        token = logits[:, -1:].argmax(-1)
        yield token


def uncached_steps(model: GPT, prompt: torch.Tensor, n: int) -> Iterator[torch.Tensor]:
    """What cached_steps() yields, computed by running the whole sequence at every step."""
    ids = prompt
    for _ in range(n):
        logits, _ = model(ids)  # (rows, P + i, vocab): every position again
        token = logits[:, -1:].argmax(-1)
        ids = torch.cat((ids, token), dim=1)
        yield token


STEPS = {"cache": cached_steps, "no-cache": uncached_steps}


def generate(model: GPT, prompt: torch.Tensor, n: int, variant: str) -> torch.Tensor:
    """(rows, n) greedy tokens, untimed."""
    with torch.no_grad():
        return torch.cat(list(STEPS[variant](model, prompt, n)), dim=1)


def _clock(device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()  # GPU work is asynchronous: wait for it before reading time
    return time.perf_counter()


def lockstep(
    model: GPT,
    prompt: torch.Tensor,
    n: int,
    order: tuple[str, ...],
    before: Callable[[], None] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, list[float]]]:
    """Each variant's (rows, n) tokens and every step's seconds, advancing the variants one
    step each in turn (in `order`)."""
    device = prompt.device.type
    gens = {v: STEPS[v](model, prompt, n) for v in order}
    out: dict[str, list[torch.Tensor]] = {v: [] for v in order}
    times: dict[str, list[float]] = {v: [] for v in order}
    with torch.no_grad():
        for _ in range(n):
            for v in order:
                if before is not None:
                    before()
                t0 = _clock(device)
                out[v].append(next(gens[v]))
                times[v].append(_clock(device) - t0)
    return {v: torch.cat(t, dim=1) for v, t in out.items()}, times


def fastest(runs: list[list[float]]) -> list[float]:
    """Each step's fastest time over the repeats, then the median of it and up to SMOOTH
    neighbours on each side (as many on both sides, so a steady rise is left as it is). The
    first step (the prompt's forward pass, a different cost with the cache) stands alone."""
    best = [min(step) for step in zip(*runs, strict=True)]
    rest = best[1:]
    smoothed = []
    for i in range(len(rest)):
        h = min(SMOOTH, i, len(rest) - 1 - i)
        smoothed.append(statistics.median(rest[i - h : i + h + 1]))
    return best[:1] + smoothed


def ms_per_token(step_s: list[float]) -> list[float]:
    """Mean milliseconds per token of the first L tokens, for L = 1 .. len(step_s)."""
    return [1000 * t / (i + 1) for i, t in enumerate(itertools.accumulate(step_s))]


def _charts(
    step_ms: dict[str, list[float]], ms: dict[str, list[float]], labels: dict[str, str]
) -> list[Chart]:
    lengths = range(1, len(ms["cache"]) + 1)
    speedup = [u / c for c, u in zip(ms["cache"], ms["no-cache"], strict=True)]
    step_speedup = [u / c for c, u in zip(step_ms["cache"], step_ms["no-cache"], strict=True)]
    longest = len(lengths)

    def points(ys: list[float]) -> list[tuple[float, Number]]:
        return [(float(n), num(y)) for n, y in zip(lengths, ys, strict=True)]

    return [
        Chart(
            id="ms-per-token",
            kind="line",
            title="Time per token by output length",
            x_label="tokens generated",
            y_label="ms per token",
            series=[
                Series(label=f"{labels[v]}: mean per token", variant=v, points=points(ms[v]))
                for v in VARIANTS
            ]
            + [
                Series(
                    label=f"{labels[v]}: that step alone",
                    variant=v,
                    points=points(step_ms[v]),
                    style="dashed",
                )
                for v in VARIANTS
            ],
            finding=f"For {longest} tokens: {fmt(ms['cache'][-1])} ms per token with the cache, "
            f"{fmt(ms['no-cache'][-1])} ms without; the last step alone took "
            f"{fmt(step_ms['cache'][-1])} and {fmt(step_ms['no-cache'][-1])} ms.",
        ),
        Chart(
            id="speedup",
            kind="line",
            title="Speed-up of the cache by output length",
            x_label="tokens generated",
            y_label="time without / time with the cache",
            series=[
                Series(label="speed-up of the whole output", points=points(speedup)),
                Series(label="speed-up of that step", points=points(step_speedup), style="dashed"),
                Series(
                    label="no gain",
                    points=[(1.0, 1.0), (float(longest), 1.0)],
                    style="dashed",
                ),
            ],
            finding=f"The cache was {fmt(speedup[0])}x as fast for the first token and "
            f"{fmt(speedup[-1])}x over {longest} tokens; the step writing the last token alone "
            f"was {fmt(step_speedup[-1])}x as fast.",
        ),
    ]


def run(experiment: Experiment, params: KVCacheParams, ctx: RunContext) -> EngineOutput:
    model: GPT = copy.deepcopy(ctx.lm.model).to(ctx.device)  # the served model is shared
    model.eval()
    rows = GPU_ROWS if ctx.device == "cuda" else 1
    ids = prompt_ids(params.prompt)
    prompt = torch.tensor([ids] * rows, dtype=torch.long, device=ctx.device)  # (rows, P)
    n = params.n_tokens
    repeats = kv_repeats(n)
    total = len(VARIANTS) * n * repeats
    step = 0

    def before() -> None:
        nonlocal step
        ctx.check(step, total)
        step += 1

    lockstep(model, prompt, min(n, WARM_UP_TOKENS), VARIANTS)  # untimed warm-up
    labels = {v.name: v.label for v in experiment.variants}
    times: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
    tokens: dict[str, torch.Tensor] = {}
    for r in range(repeats):
        order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]  # who goes first alternates
        tokens, t = lockstep(model, prompt, n, order, before)
        for v in VARIANTS:
            times[v].append(t[v])
        if ctx.wants_progress:
            so_far = {v: fastest(times[v]) for v in times}
            ms_so_far = {v: ms_per_token(t) for v, t in so_far.items()}
            step_ms_so_far = {v: [1000 * x for x in t] for v, t in so_far.items()}
            ctx.progress(step, total, _charts(step_ms_so_far, ms_so_far, labels))

    step_s = {v: fastest(times[v]) for v in times}
    step_ms = {v: [1000 * x for x in t] for v, t in step_s.items()}
    ms = {v: ms_per_token(t) for v, t in step_s.items()}
    same = bool(torch.equal(tokens["cache"], tokens["no-cache"]))
    short = max(1, n // SHORT_FRACTION)  # the short output the longest one is compared with
    speedup = {L: ms["no-cache"][L - 1] / ms["cache"][L - 1] for L in (short, n)}
    identical = 1.0 if same else 0.0
    variants = [
        VariantResult(
            name=v,
            label=labels[v],
            metrics={
                "ms_per_token": num(ms[v][-1]),
                "ms_per_token_short": num(ms[v][short - 1]),
                "identical": identical,
                "tokens": float(n),
                "rows": float(rows),
            },
        )
        for v in VARIANTS
    ]
    run_metrics: dict[str, Number] = {
        "speedup_longest": num(speedup[n]),
        "speedup_short": num(speedup[short]),
        "speedup_growth": num(speedup[n] / speedup[short]),
        "step_speedup_last": num(step_s["no-cache"][-1] / step_s["cache"][-1]),
        "identical": identical,
        "prompt_tokens": float(len(ids)),
        "repeats": float(repeats),
    }
    written = tokens["cache"][0].tolist()
    samples = [
        TextSample(
            variant="cache",
            label=labels["cache"],
            prompt=decode(ids),
            text=decode(written),
            tokens=[token_name(t) for t in written],
            note="the same tokens without the cache"
            if same
            else "the run without the cache wrote different tokens",
        )
    ]
    where = "the GPU" if ctx.device == "cuda" else "the CPU"
    summary = (
        f"On {where}, {n} greedy token{'s' if n > 1 else ''} after a {len(ids)}-token prompt took "
        f"{fmt(ms['cache'][-1])} ms per token with the KV cache and {fmt(ms['no-cache'][-1])} ms "
        f"without ({fmt(speedup[n])}x; {fmt(speedup[short])}x for the first {short}); the "
        f"tokens were {'the same' if same else 'different'}."
    )
    return EngineOutput(variants, _charts(step_ms, ms, labels), summary, run_metrics, samples)
