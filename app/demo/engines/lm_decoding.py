"""Decoding engines: temperature and top-k / top-p truncation on the server's trained model.

decode_rows() continues one prompt under several decoding rules at once, one batch row per
rule, with a KV cache and generate.py's sliding window; each row draws from its own
generator seeded alike, so rules that coincide give the same text token for token (what
generate() gives for that rule and seed). Every step records the entropy of the
distribution sampled from and how many tokens the truncation kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from app.demo.engines.common import and_list, fmt, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.lm_decoding import (
    PROMPTS,
    TEMPERATURE_STEPS,
    TemperatureParams,
    TruncationParams,
)
from app.demo.lm.generate import Sampling, entropy_bits, truncate
from app.demo.lm.gpt import GPT, KV
from app.demo.lm.text import VOCAB_SIZE, decode, encode, token_name
from app.demo.result import Chart, Number, Series, TextSample, VariantResult


@dataclass
class Row:
    """What one decoding rule produced from one prompt."""

    tokens: list[int] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)  # bits, of the distribution sampled
    kept: list[int] = field(default_factory=list)  # tokens left after truncation


def prompt_ids(text: str) -> list[int]:
    return encode(text, specials=True)


def decode_rows(
    model: GPT,
    prompt: list[int],
    rules: list[Sampling],
    n_tokens: int,
    seed: int,
    ctx: RunContext | None = None,
    step0: int = 0,
    total: int = 0,
) -> list[Row]:
    """n_tokens new tokens after prompt for each rule (temperature 0: greedy)."""
    block = model.config.block_size
    gens = [torch.Generator().manual_seed(seed) for _ in rules]
    rows = [Row() for _ in rules]
    ids = [list(prompt) for _ in rules]
    past: list[KV] | None = None

    def run(chunk: list[list[int]]) -> torch.Tensor:
        nonlocal past
        logits, past = model(torch.tensor(chunk, dtype=torch.long), past)
        return logits[:, -1]  # (rows, vocab)

    with torch.no_grad():
        logits = run([r[-block:] for r in ids])
        for step in range(n_tokens):
            if ctx is not None:
                ctx.check(step0 + step, total)
            nxt: list[int] = []
            for i, rule in enumerate(rules):
                if rule.temperature == 0:
                    z = logits[i]
                    token = int(z.argmax().item())
                    kept = 1
                else:
                    z = truncate(logits[i], rule)
                    kept = int(torch.isfinite(z).sum().item())
                    token = int(torch.multinomial(z.softmax(-1), 1, generator=gens[i]).item())
                rows[i].entropy.append(0.0 if rule.temperature == 0 else entropy_bits(z))
                rows[i].kept.append(kept)
                rows[i].tokens.append(token)
                ids[i].append(token)
                nxt.append(token)
            if step == n_tokens - 1:
                break
            cached = 0 if past is None else past[0][0].size(2)
            if cached + 1 > block:  # slide, as generate.Stepper does
                past = None
                logits = run([r[-(block - 1) :] for r in ids])
            else:
                logits = run([[t] for t in nxt])
    return rows


def repeated_ngram_rate(tokens: list[int], n: int = 4) -> Number:
    """The fraction of the n-grams of tokens that already occurred earlier in them."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return None
    seen: set[tuple[int, ...]] = set()
    repeats = 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    return repeats / len(grams)


def mean(xs: list[float]) -> Number:
    return num(sum(xs) / len(xs)) if xs else None


def _sample(variant: str, label: str, prompt: str, tokens: list[int], note: str) -> TextSample:
    return TextSample(
        variant=variant,
        label=label,
        prompt=prompt,
        text=decode(tokens),
        tokens=[token_name(t) for t in tokens],
        note=note,
    )


# ----------------------------------------------------------------------------- temperature


def run_temperature(
    experiment: Experiment, params: TemperatureParams, ctx: RunContext
) -> EngineOutput:
    """Each temperature continues every prompt; entropy of softmax(logits / T) per step."""
    model: GPT = ctx.lm.model
    temps = params.temperatures()
    rules = [Sampling(temperature=t) for t in temps]
    prompts = [params.prompt, *PROMPTS]
    total = len(prompts) * params.n_tokens
    entropies: list[list[float]] = [[] for _ in temps]
    samples: list[TextSample] = []

    # the distribution right after the user's prompt, at each temperature
    first = prompt_ids(params.prompt)
    with torch.no_grad():
        logits, _ = model(torch.tensor([first[-model.config.block_size :]], dtype=torch.long))
    z = logits[0, -1]
    probs = [(z / t).softmax(-1) for t in temps]
    top = torch.topk(z, 10).indices.tolist()  # the same ranking at every temperature

    for j, text in enumerate(prompts):
        rows = decode_rows(
            model, prompt_ids(text), rules, params.n_tokens, params.seed + j, ctx,
            j * params.n_tokens, total,
        )  # fmt: skip
        for i, row in enumerate(rows):
            entropies[i] += row.entropy
            if j == 0:
                samples.append(
                    _sample(
                        TEMPERATURE_STEPS[i][0],
                        f"T = {temps[i]:g}",
                        text,
                        row.tokens,
                        f"mean entropy {fmt(mean(row.entropy))} bits per token",
                    )
                )
        ctx.progress((j + 1) * params.n_tokens, total)

    ent = [mean(e) for e in entropies]
    rises = [b - a for a, b in zip(ent, ent[1:], strict=False) if a is not None and b is not None]
    top_prob = [float(p[top[0]].item()) for p in probs]
    variants = [
        VariantResult(
            name=name,
            label=f"T = {t:g}",
            metrics={
                "temperature": t,
                "entropy_bits": ent[i],
                "prompt_entropy_bits": num(entropy_bits(z / t)),
                "top_token_prob": num(top_prob[i]),
            },
        )
        for i, ((name, _), t) in enumerate(zip(TEMPERATURE_STEPS, temps, strict=True))
    ]
    run_metrics: dict[str, Number] = {
        "min_entropy_rise_bits": num(min(rises)) if len(rises) == len(temps) - 1 else None,
        "top_prob_coldest_over_hottest": num(top_prob[0] / top_prob[-1])
        if top_prob[-1] > 0
        else None,
    }
    labels = [f"T = {t:g}" for t in temps]
    ent_text = and_list([f"{fmt(e)} bits at {lab}" for e, lab in zip(ent, labels, strict=True)])
    charts = [
        Chart(
            id="entropy",
            kind="bar",
            title="Mean entropy of the next-token distribution",
            x_label="temperature",
            y_label="entropy (bits)",
            categories=labels,
            series=[
                Series(
                    label="mean entropy",
                    points=[(float(i), e) for i, e in enumerate(ent)],
                )
            ],
            finding=f"Mean entropy per generated token: {ent_text}.",
        ),
        Chart(
            id="next-token",
            kind="bar",
            title="The 10 likeliest next tokens after the prompt",
            x_label="token",
            y_label="probability",
            categories=[token_name(t) for t in top],
            series=[
                Series(
                    label=labels[i],
                    variant=TEMPERATURE_STEPS[i][0],
                    points=[(float(k), num(float(p[t].item()))) for k, t in enumerate(top)],
                )
                for i, p in enumerate(probs)
            ],
            finding=(
                f"The top token {token_name(top[0])!r} gets {fmt(top_prob[0])} at "
                f"{labels[0]} and {fmt(top_prob[-1])} at {labels[-1]}."
            ),
        ),
    ]
    rise = run_metrics["min_entropy_rise_bits"]
    summary = (
        f"Mean entropy of the next-token distribution went from {fmt(ent[0])} bits at "
        f"{labels[0]} to {fmt(ent[-1])} bits at {labels[-1]}; the smallest rise between "
        f"consecutive temperatures was {fmt(rise)} bits."
    )
    return EngineOutput(variants, charts, summary, run_metrics, samples)


# ----------------------------------------------------------------------------- top-k, top-p

TRUNCATION_VARIANTS = ("greedy", "top-k", "top-p", "sampling")


def run_truncation(
    experiment: Experiment, params: TruncationParams, ctx: RunContext
) -> EngineOutput:
    """Greedy, top-k, top-p and plain sampling continue every prompt; repeats, nucleus."""
    model: GPT = ctx.lm.model
    rules = [
        Sampling(temperature=0),
        Sampling(top_k=params.top_k),
        Sampling(top_p=params.top_p),
        Sampling(),
    ]
    prompts = [params.prompt, *PROMPTS]
    total = len(prompts) * params.n_tokens
    rates: list[list[float]] = [[] for _ in rules]
    kept: list[list[int]] = [[] for _ in rules]
    samples: list[TextSample] = []
    labels = [v.label for v in experiment.variants]
    for j, text in enumerate(prompts):
        rows = decode_rows(
            model, prompt_ids(text), rules, params.n_tokens, params.seed + j, ctx,
            j * params.n_tokens, total,
        )  # fmt: skip
        for i, row in enumerate(rows):
            r = repeated_ngram_rate(row.tokens)
            if r is not None:
                rates[i].append(r)
            kept[i] += row.kept
            if j == 0:
                samples.append(
                    _sample(
                        TRUNCATION_VARIANTS[i],
                        labels[i],
                        text,
                        row.tokens,
                        f"repeated 4-grams {fmt(r)}; {fmt(mean([float(k) for k in row.kept]))}"
                        " tokens kept per step",
                    )
                )
        ctx.progress((j + 1) * params.n_tokens, total)

    rate_mean = [mean(r) for r in rates]
    size = [mean([float(k) for k in ks]) for ks in kept]
    variants: list[VariantResult] = []
    for i, name in enumerate(TRUNCATION_VARIANTS):
        metrics: dict[str, Number] = {"repeated_ngram_rate": rate_mean[i], "mean_kept": size[i]}
        if name == "top-k":
            metrics["top_k"] = params.top_k
        if name == "top-p":
            metrics |= {"top_p": params.top_p, "nucleus_size": size[i]}
        variants.append(VariantResult(name=name, label=labels[i], metrics=metrics))
    nucleus = kept[2]
    greedy_rate, top_p_rate = rate_mean[0], rate_mean[2]
    run_metrics: dict[str, Number] = {
        "greedy_minus_top_p_repeats": None
        if greedy_rate is None or top_p_rate is None
        else num(greedy_rate - top_p_rate),
        "nucleus_range": max(nucleus) - min(nucleus),
        "nucleus_min": min(nucleus),
        "nucleus_max": max(nucleus),
    }
    rate_text = and_list([f"{fmt(r)} ({lab})" for r, lab in zip(rate_mean, labels, strict=True)])
    first = nucleus[: params.n_tokens]  # the user's prompt
    charts = [
        Chart(
            id="repetition",
            kind="bar",
            title="Repeated byte 4-grams in the generated text",
            x_label="decoding",
            y_label="fraction of 4-grams seen before",
            categories=labels,
            series=[
                Series(
                    label="repeated 4-grams",
                    points=[(float(i), r) for i, r in enumerate(rate_mean)],
                )
            ],
            finding=f"Repeated 4-gram rate: {rate_text}.",
        ),
        Chart(
            id="nucleus",
            kind="line",
            title="Tokens kept by top-p at each step",
            x_label="generated token",
            y_label="tokens in the nucleus",
            y_log=True,
            series=[
                Series(
                    label=f"top-p = {params.top_p:g}, first prompt",
                    variant="top-p",
                    points=[(float(i), float(k)) for i, k in enumerate(first)],
                ),
                Series(
                    label=f"top-k = {params.top_k}",
                    variant="top-k",
                    points=[(float(i), float(k)) for i, k in enumerate(kept[1][: params.n_tokens])],
                    style="dashed",
                ),
            ],
            finding=(
                f"The nucleus kept {min(nucleus)} to {max(nucleus)} tokens, "
                f"{fmt(size[2])} on average, of {VOCAB_SIZE}."
            ),
        ),
    ]
    summary = (
        f"Greedy text repeated {fmt(greedy_rate)} of its byte 4-grams against {fmt(top_p_rate)} "
        f"for nucleus sampling (top-p {params.top_p:g}), {fmt(rate_mean[1])} for "
        f"top-{params.top_k} and {fmt(rate_mean[3])} for plain sampling; the nucleus held "
        f"{fmt(size[2])} tokens on average."
    )
    return EngineOutput(variants, charts, summary, run_metrics, samples)
