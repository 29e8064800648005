"""Greedy-vs-beam engine: the log-probability of the continuation each search finds.

For every prompt (its last block_size - n_tokens tokens) greedy decoding and beam search of
each width write n_tokens; every continuation is then scored again, independently of the
search's own running scores, by generate.sequence_logprob (natural log).
"""

from __future__ import annotations

from app.demo.engines.common import and_list, fmt, num
from app.demo.engines.lm_decoding import _sample, decode_rows, mean, prompt_ids
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.lm_decoding import BEAM_WIDTHS, PROMPTS, BeamParams
from app.demo.lm.generate import Sampling, beam_search, sequence_logprob
from app.demo.lm.gpt import GPT
from app.demo.result import Chart, Number, Series, TextSample, VariantResult


def run(experiment: Experiment, params: BeamParams, ctx: RunContext) -> EngineOutput:
    model: GPT = ctx.lm.model
    n = params.n_tokens
    keep = model.config.block_size - n
    prompts = [params.prompt, *PROMPTS]
    names = [v.name for v in experiment.variants]
    labels = [v.label for v in experiment.variants]
    scores: list[list[float]] = [[] for _ in names]  # [variant][prompt], nats
    samples: list[TextSample] = []
    total = len(prompts) * len(names)
    for j, text in enumerate(prompts):
        ids = prompt_ids(text)[-keep:]
        ctx.check(j * len(names), total)
        found = [decode_rows(model, ids, [Sampling(temperature=0)], n, params.seed)[0].tokens]
        for k, width in enumerate(BEAM_WIDTHS):
            ctx.check(j * len(names) + 1 + k, total)
            found.append(beam_search(model, ids, n, width)[0][0])
        for i, tokens in enumerate(found):
            lp = sequence_logprob(model, ids, tokens)
            scores[i].append(lp)
            if j == 0:
                samples.append(
                    _sample(names[i], labels[i], text, tokens, f"log p = {fmt(lp)} nats")
                )
        ctx.progress((j + 1) * len(names), total)

    means = [mean(s) for s in scores]
    gains = [[b - g for b, g in zip(s, scores[0], strict=True)] for s in scores]
    variants = [
        VariantResult(
            name=name,
            label=labels[i],
            metrics={
                "sequence_logprob": means[i],
                "width": 1 if i == 0 else BEAM_WIDTHS[i - 1],
                "gain_over_greedy_nats": mean(gains[i]),
                "min_gain_over_greedy_nats": num(min(gains[i])),
            },
        )
        for i, name in enumerate(names)
    ]
    widening = [
        b - a for a, b in zip(means, means[1:], strict=False) if a is not None and b is not None
    ]
    run_metrics: dict[str, Number] = {
        "widest_mean_gain_nats": mean(gains[-1]),
        "widest_min_gain_nats": num(min(gains[-1])),
        "min_widening_gain_nats": num(min(widening)) if widening else None,
    }
    short = [f"p{j + 1}" for j in range(len(prompts))]
    charts = [
        Chart(
            id="logprob",
            kind="bar",
            title="Log-probability of the continuation, mean over prompts",
            x_label="search",
            y_label="log p (nats)",
            categories=labels,
            series=[
                Series(label="mean log p", points=[(float(i), m) for i, m in enumerate(means)])
            ],
            finding="Mean log-probability: "
            + and_list([f"{fmt(m)} ({lab})" for m, lab in zip(means, labels, strict=True)])
            + ".",
        ),
        Chart(
            id="per-prompt",
            kind="bar",
            title="Gain over greedy for each prompt",
            x_label="prompt",
            y_label="log p gain over greedy (nats)",
            categories=[repr(p)[1:-1][:24] for p in prompts],
            series=[
                Series(
                    label=labels[i],
                    variant=names[i],
                    points=[(float(j), num(g)) for j, g in enumerate(gains[i])],
                )
                for i in range(1, len(names))
            ],
            finding=f"The widest beam gained {fmt(min(gains[-1]))} to {fmt(max(gains[-1]))} "
            f"nats over greedy across the prompts ({and_list(short)}).",
        ),
    ]
    summary = (
        f"Over {len(prompts)} prompts and {n} tokens, greedy's continuations had a mean log p of "
        f"{fmt(means[0])} nats and the width-{BEAM_WIDTHS[-1]} beam's {fmt(means[-1])}, a mean "
        f"gain of {fmt(run_metrics['widest_mean_gain_nats'])} nats."
    )
    return EngineOutput(variants, charts, summary, run_metrics, samples)
