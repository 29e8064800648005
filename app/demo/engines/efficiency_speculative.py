"""Speculative decoding, greedy: an n-gram draft proposes, the model verifies in one pass.

The draft is a byte n-gram model counted from the glossary's training text (what the model
learned from): for each context of up to order - 1 bytes, the byte that most often follows
it; an unseen context backs off to a shorter one, down to the most frequent byte overall.
speculate() keeps the model's KV cache for the accepted text only: after each check the
keys and values of rejected draft tokens are cut off.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from app.demo.engines.common import fmt, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.efficiency_decoding import (
    PROMPT_TOKENS,
    SPEC_PROMPTS,
    SPEC_REPEATS,
    SpeculativeParams,
)
from app.demo.lm.gpt import GPT, KV
from app.demo.lm.text import VOCAB_SIZE, decode, encode, glossary_text, token_name
from app.demo.result import Chart, Number, Series, TextSample, VariantResult

Before = Callable[[], None]  # called before every forward pass of the model (cancellation)


@dataclass(frozen=True)
class NGramDraft:
    """tables[c] maps a context of c tokens (as one integer, base VOCAB_SIZE, oldest token
    first) to the token that most often follows it in the text."""

    tables: tuple[dict[int, int], ...]

    @property
    def order(self) -> int:
        return len(self.tables)

    def next_token(self, ids: list[int]) -> int:
        for c in range(min(self.order - 1, len(ids)), -1, -1):  # longest context first
            key = 0
            for t in ids[len(ids) - c :]:
                key = key * VOCAB_SIZE + t
            token = self.tables[c].get(key)
            if token is not None:
                return token
        raise ValueError("the draft has no unigram table")  # tables[0] holds key 0 always

    def propose(self, ids: list[int], k: int) -> list[int]:
        """k tokens continuing ids, each from the draft's own previous guesses."""
        context = list(ids)
        for _ in range(k):
            context.append(self.next_token(context))
        return context[len(ids) :]


def count_ngrams(train: list[int], order: int) -> NGramDraft:
    """The draft of the given order (1: unigram) counted from the token ids in train."""
    ids = torch.tensor(train, dtype=torch.long)
    tables: list[dict[int, int]] = []
    for c in range(order):  # contexts of c tokens
        n = len(ids) - c
        key = torch.zeros(n, dtype=torch.long)  # the context before each position, as one int
        for j in range(c):
            key = key * VOCAB_SIZE + ids[j : j + n]
        # (context, next token) as one int: below 261**order, within int64 up to order 7
        pairs, counts = torch.unique(key * VOCAB_SIZE + ids[c : c + n], return_counts=True)
        # most frequent first; among equals the smaller token (unique sorts pairs ascending)
        pairs = pairs[torch.argsort(counts, descending=True, stable=True)]
        contexts, tokens = (pairs // VOCAB_SIZE).tolist(), (pairs % VOCAB_SIZE).tolist()
        table: dict[int, int] = {}
        for context, token in zip(contexts, tokens, strict=True):
            table.setdefault(context, token)  # the first seen is the most frequent
        tables.append(table)
    return NGramDraft(tuple(tables))


@functools.cache
def ngram_draft(order: int) -> NGramDraft:
    """The draft counted from the glossary's training text, once per process and order."""
    return count_ngrams(glossary_text().train, order)


@dataclass
class Decoded:
    """One greedy continuation and what producing it took."""

    tokens: list[int]
    passes: int = 0  # forward passes of the model
    proposed: int = 0  # draft tokens offered to the model's check
    accepted: int = 0  # of those, the ones that matched the model's own choice
    offered_at: list[int] = field(default_factory=list)  # proposals with a j-th token
    accepted_at: list[int] = field(default_factory=list)  # proposals whose first j all held
    seconds: float = 0.0


def _ids(tokens: list[int], device: str) -> torch.Tensor:
    return torch.tensor([tokens], dtype=torch.long, device=device)  # (1, t)


def greedy(model: GPT, prompt: list[int], n: int, before: Before | None = None) -> Decoded:
    """The model alone: n greedy tokens, one forward pass each, with the KV cache."""
    device = model.head.weight.device
    out: list[int] = []
    past: list[KV] | None = None
    chunk = prompt
    with torch.no_grad():
        for _ in range(n):
            if before is not None:
                before()
            logits, past = model(_ids(chunk, device), past)  # (1, t, vocab)
            out.append(int(logits[0, -1].argmax().item()))
            chunk = out[-1:]
    return Decoded(out, passes=n)


def speculate(
    model: GPT,
    draft: NGramDraft,
    prompt: list[int],
    n: int,
    k: int,
    verify: bool = True,
    before: Before | None = None,
) -> Decoded:
    """n tokens: the draft proposes up to k, the model scores them all in one forward pass
    and keeps the longest prefix that matches its own greedy choices, then its own next
    token. verify=False keeps every draft token (the model still scores them, for the
    acceptance count). The prompt plus n tokens must fit the model's context."""
    device = model.head.weight.device
    ids = list(prompt)
    out = Decoded([], offered_at=[0] * k, accepted_at=[0] * k)
    past: list[KV] | None = None
    with torch.no_grad():
        if len(ids) > 1:  # the cache holds every token but the last, which is fed with the draft
            if before is not None:
                before()
            _, past = model(_ids(ids[:-1], device))
            out.passes += 1
        while len(out.tokens) < n:
            if before is not None:
                before()
            guess = draft.propose(ids, min(k, n - len(out.tokens)))
            logits, past = model(_ids(ids[-1:] + guess, device), past)  # (1, 1 + g, vocab)
            out.passes += 1
            choice = logits[0].argmax(-1).tolist()  # the model's token after each prefix
            agree = 0
            while agree < len(guess) and choice[agree] == guess[agree]:
                agree += 1
            out.proposed += len(guess)
            out.accepted += agree
            for j in range(len(guess)):
                out.offered_at[j] += 1
                out.accepted_at[j] += j < agree
            new = guess[:agree] + [choice[agree]] if verify else guess
            new = new[: n - len(out.tokens)]
            ids += new
            out.tokens += new
            keep = len(ids) - 1  # the cache covers every token but the newest
            past = [(key[:, :, :keep], value[:, :, :keep]) for key, value in past]
    return out


def prompt_ids(text: str) -> list[int]:
    return encode(text, specials=True)[-PROMPT_TOKENS:]


def _clock(device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()  # GPU work is asynchronous: wait for it before reading time
    return time.perf_counter()


VARIANTS = ("target-only", "speculative", "unigram")


def run(experiment: Experiment, params: SpeculativeParams, ctx: RunContext) -> EngineOutput:
    model: GPT = copy.deepcopy(ctx.lm.model).to(ctx.device)  # the served model is shared
    model.eval()
    drafts = {"speculative": ngram_draft(params.draft_order), "unigram": ngram_draft(1)}
    verify = params.verify == "target"
    texts = [params.prompt, *SPEC_PROMPTS]
    prompts = [prompt_ids(t) for t in texts]
    n, k = params.n_tokens, params.draft_tokens
    units = SPEC_REPEATS * len(prompts)
    total = units * len(VARIANTS) * n  # at most one forward pass per token and variant
    step = 0

    def before() -> None:
        nonlocal step
        ctx.check(step, total)
        step += 1

    def decode_with(v: str, prompt: list[int]) -> Decoded:
        if v == "target-only":
            return greedy(model, prompt, n, before)
        return speculate(model, drafts[v], prompt, n, k, verify, before)

    greedy(model, prompts[0], min(n, 4), None)  # untimed warm-up
    # results[v][p]: the last repeat's decoding; seconds[v][p]: the fastest repeat
    results: dict[str, list[Decoded]] = {v: [] for v in VARIANTS}
    seconds: dict[str, list[float]] = {v: [float("inf")] * len(prompts) for v in VARIANTS}
    for r in range(SPEC_REPEATS):
        for p, prompt in enumerate(prompts):
            shift = (r + p) % len(VARIANTS)  # who goes first rotates
            for v in VARIANTS[shift:] + VARIANTS[:shift]:
                t0 = _clock(ctx.device)
                result = decode_with(v, prompt)
                seconds[v][p] = min(seconds[v][p], _clock(ctx.device) - t0)
                if r == 0:
                    results[v].append(result)
            ctx.progress(r * len(prompts) + p + 1, units)

    target = results["target-only"]
    ms = {v: 1000 * sum(seconds[v]) / (n * len(prompts)) for v in VARIANTS}
    same = {
        v: all(a.tokens == b.tokens for a, b in zip(results[v], target, strict=True))
        for v in VARIANTS
    }
    acceptance: dict[str, Number] = {"target-only": None}
    per_pass: dict[str, float] = {}
    at_position: dict[str, list[Number]] = {}
    for v in VARIANTS:
        rs = results[v]
        per_pass[v] = sum(len(d.tokens) for d in rs) / sum(d.passes for d in rs)
        if v != "target-only":
            proposed = sum(d.proposed for d in rs)
            acceptance[v] = sum(d.accepted for d in rs) / proposed
            offered = [sum(d.offered_at[j] for d in rs) for j in range(k)]
            held = [sum(d.accepted_at[j] for d in rs) for j in range(k)]
            at_position[v] = [h / o if o else None for h, o in zip(held, offered, strict=True)]
    labels = {
        "target-only": "Model alone",
        "speculative": f"{params.draft_order}-gram draft",
        "unigram": "Unigram draft",
    }
    variants = [
        VariantResult(
            name=v,
            label=labels[v],
            metrics={
                "acceptance_rate": acceptance[v],
                "ms_per_token": num(ms[v]),
                "identical": 1.0 if same[v] else 0.0,
                "tokens_per_pass": num(per_pass[v]),
                "model_passes": float(sum(d.passes for d in results[v])),
            }
            | ({} if v == "target-only" else {"speedup": num(ms["target-only"] / ms[v])}),
        )
        for v in VARIANTS
    ]
    run_metrics: dict[str, Number] = {
        "identical": 1.0 if same["speculative"] and same["unigram"] else 0.0,
        "acceptance_ngram": acceptance["speculative"],
        "acceptance_unigram": acceptance["unigram"],
        "speedup_ngram": num(ms["target-only"] / ms["speculative"]),
    }
    charts = _charts(labels, at_position, per_pass)
    samples = [
        TextSample(
            variant=v,
            label=labels[v],
            prompt=decode(prompts[0]),
            text=decode(results[v][0].tokens),
            tokens=[token_name(t) for t in results[v][0].tokens],
            note=""
            if v == "target-only"
            else ("the same text" if same[v] else "a different text from the model's own"),
        )
        for v in ("target-only", "speculative")
    ]
    return EngineOutput(
        variants, charts, _summary(params, labels, acceptance, per_pass, ms, same, ctx.device),
        run_metrics, samples,
    )  # fmt: skip


def _charts(
    labels: dict[str, str],
    at_position: dict[str, list[Number]],
    per_pass: dict[str, float],
) -> list[Chart]:
    ngram = [y for y in at_position["speculative"] if y is not None]  # positions reached
    return [
        Chart(
            id="acceptance",
            kind="line",
            title="Acceptance by position in the draft's proposal",
            x_label="position in the proposal",
            y_label="share of proposals with every token up to it accepted",
            series=[
                Series(
                    label=labels[v],
                    variant=v,
                    points=[(float(j + 1), y) for j, y in enumerate(at_position[v])],
                )
                for v in ("speculative", "unigram")
            ],
            finding=f"The {labels['speculative']}'s first token was accepted in "
            f"{fmt(ngram[0])} of its proposals, its first {len(ngram)} in {fmt(ngram[-1])}; the "
            f"unigram draft's first in {fmt(at_position['unigram'][0])}.",
        ),
        Chart(
            id="tokens-per-pass",
            kind="bar",
            title="Tokens written per forward pass of the model",
            x_label="decoding",
            y_label="tokens per forward pass",
            categories=[labels[v] for v in VARIANTS],
            series=[
                Series(
                    label="tokens per pass",
                    points=[(float(i), num(per_pass[v])) for i, v in enumerate(VARIANTS)],
                )
            ],
            finding="Tokens per forward pass of the model: "
            + ", ".join(f"{fmt(per_pass[v])} ({labels[v]})" for v in VARIANTS)
            + ".",
        ),
    ]


def _summary(
    params: SpeculativeParams,
    labels: dict[str, str],
    acceptance: dict[str, Number],
    per_pass: dict[str, float],
    ms: dict[str, float],
    same: dict[str, bool],
    device: str,
) -> str:
    ratio = ms["target-only"] / ms["speculative"]
    pace = f"{fmt(ratio)}x as fast as" if ratio >= 1 else f"{fmt(1 / ratio)}x slower than"
    text = (
        "the same text as the model alone for every prompt"
        if same["speculative"]
        else "a different text from the model's own"
    )
    accepted = "accepted" if params.verify == "target" else "would have accepted (unchecked)"
    return (
        f"The model {accepted} {fmt(acceptance['speculative'])} of the "
        f"{labels['speculative']}'s tokens (unigram draft: {fmt(acceptance['unigram'])}), "
        f"{fmt(per_pass['speculative'])} tokens per forward pass, giving {text}; on the "
        f"{'GPU' if device == 'cuda' else 'CPU'} that took {fmt(ms['speculative'])} ms per "
        f"token, {pace} the model alone ({fmt(ms['target-only'])} ms)."
    )
