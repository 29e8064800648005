"""Chat-template and stop-sequence engines, on the server's trained language model.

chat: the same system prompt and user message as the chat template renders them (special
tokens framing each turn, an open assistant turn) and as plain lines of text; the model
replies to each until <|end|> or max_tokens. stop: the same prompt continued with the same
random draws, with and without a stop string watched for in the decoded output.
"""

from __future__ import annotations

import torch

from app.demo.engines.common import fmt
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.lm_formats import ChatParams, StopParams
from app.demo.lm.generate import Sampling, generate
from app.demo.lm.text import (
    ASSISTANT,
    BOS,
    BYTE_VOCAB,
    END,
    SPECIAL_IDS,
    decode,
    encode,
    render_chat,
    token_name,
)
from app.demo.result import Chart, Number, Series, TextSample, VariantResult


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- chat template


def chat_prompts(params: ChatParams) -> dict[str, list[int]]:
    turns = [("system", params.system), ("user", params.user)]
    templated = encode(render_chat(turns, open_reply=True), specials=True)
    plain = encode(f"{params.system}\n{params.user}\n")
    return {"with-template": templated, "plain-text": plain}


def expected_specials(roles: list[str]) -> list[int]:
    """What a well-framed prompt's special ids are: bos, (role, end) per turn, assistant."""
    ids = [BOS]
    for role in roles:
        ids += [SPECIAL_IDS[f"<|{role}|>"], END]
    return ids + [ASSISTANT]


def chat(experiment: Experiment, params: ChatParams, ctx: RunContext) -> EngineOutput:
    model = ctx.lm.model
    prompts = chat_prompts(params)
    want = expected_specials(["system", "user"])
    sampling = Sampling(temperature=params.temperature)
    results: list[VariantResult] = []
    samples: list[TextSample] = []
    total = len(experiment.variants)
    for k, v in enumerate(experiment.variants):
        ctx.check(k, total)
        prompt = prompts[v.name]
        specials = [i for i in prompt if i >= BYTE_VOCAB]
        reply = generate(
            model,
            prompt,
            params.max_tokens,
            sampling,
            _generator(params.seed),
            stop=lambda out: out[-1] == END,
        )
        ended = bool(reply) and reply[-1] == END
        metrics: dict[str, Number] = {
            "special_tokens": float(len(specials)),
            "prompt_tokens": float(len(prompt)),
            "framed": 1.0 if specials == want else 0.0,
            "ended_turn": 1.0 if ended else 0.0,
            "reply_tokens": float(len(reply)),
        }
        results.append(VariantResult(name=v.name, label=v.label, metrics=metrics))
        samples.append(
            TextSample(
                variant=v.name,
                label=f"{v.label}: the prompt as the model sees it ({len(prompt)} tokens)",
                text=decode(prompt),
                tokens=[token_name(i) for i in prompt],
                note=f"{len(specials)} special tokens: "
                + (" ".join(token_name(i) for i in specials) or "none"),
            )
        )
        samples.append(
            TextSample(
                variant=v.name,
                label=f"{v.label}: the model's reply",
                prompt=decode(prompt),
                text=decode(reply),
                note="ended its turn with <|end|>"
                if ended
                else f"did not end its turn within {params.max_tokens} tokens",
            )
        )
        ctx.progress(k + 1, total)
    by = {r.name: r.metrics for r in results}
    chart = Chart(
        id="tokens",
        kind="bar",
        title="Prompt tokens and special tokens",
        x_label="prompt",
        y_label="tokens",
        categories=[v.label for v in experiment.variants],
        series=[
            Series(
                label=name,
                points=[(float(i), by[v.name][key]) for i, v in enumerate(experiment.variants)],
            )
            for name, key in (("prompt tokens", "prompt_tokens"), ("special", "special_tokens"))
        ],
        finding=(
            f"The template adds {fmt(by['with-template']['special_tokens'])} special tokens, "
            f"{fmt(_extra_ids(by))} ids more than the plain text."
        ),
    )
    t = by["with-template"]
    summary = (
        f"The templated prompt has {fmt(t['special_tokens'])} special tokens "
        + ("framing every turn" if t["framed"] else "that do NOT frame the turns as designed")
        + "; the model's reply "
        + ("ended its turn with <|end|>" if t["ended_turn"] else "did not end its turn")
        + " after the template, and "
        + ("did" if by["plain-text"]["ended_turn"] else "did not")
        + " after the plain text."
    )
    return EngineOutput(variants=results, charts=[chart], summary=summary, samples=samples)


def _extra_ids(by: dict[str, dict[str, Number]]) -> float:
    return (by["with-template"]["prompt_tokens"] or 0) - (by["plain-text"]["prompt_tokens"] or 0)


# ----------------------------------------------------------------------------- stop sequence


def ran_past(text: str, stop: str) -> bool:
    """Text was written after the first occurrence of stop."""
    at = text.find(stop)
    return at >= 0 and len(text) > at + len(stop)


def stop(experiment: Experiment, params: StopParams, ctx: RunContext) -> EngineOutput:
    model = ctx.lm.model
    prompt = encode(params.prompt, specials=True)
    sampling = Sampling(temperature=params.temperature)
    lengths: dict[str, list[float]] = {}
    results: list[VariantResult] = []
    samples: list[TextSample] = []
    total = len(experiment.variants) * params.samples
    for k, v in enumerate(experiment.variants):
        watch = (lambda out: params.stop in decode(out)) if v.name == "stop" else None
        lengths[v.name] = []
        past = 0
        for s in range(params.samples):
            ctx.check(k * params.samples + s, total)
            out = generate(
                model,
                prompt,
                params.max_tokens,
                sampling,
                _generator(params.seed * 1000 + s),
                stop=watch,
            )
            text = decode(out)
            lengths[v.name].append(float(len(out)))
            past += ran_past(text, params.stop)
            if s < 2:
                samples.append(
                    TextSample(
                        variant=v.name,
                        label=f"{v.label}, continuation {s + 1} ({len(out)} tokens)",
                        prompt=params.prompt,
                        text=text,
                        note="ran past the stop string"
                        if ran_past(text, params.stop)
                        else ("ended at the stop string" if params.stop in text else "no stop"),
                    )
                )
        metrics: dict[str, Number] = {
            "generated_tokens": sum(lengths[v.name]) / params.samples,
            "ran_past_stop": past / params.samples,
        }
        results.append(VariantResult(name=v.name, label=v.label, metrics=metrics))
        ctx.progress((k + 1) * params.samples, total)
    by = {r.name: r.metrics for r in results}
    chart = Chart(
        id="length",
        kind="bar",
        title="Generated tokens per continuation",
        x_label="continuation",
        y_label="tokens",
        categories=[str(s + 1) for s in range(params.samples)],
        series=[
            Series(
                label=v.label,
                variant=v.name,
                points=[(float(i), n) for i, n in enumerate(lengths[v.name])],
            )
            for v in experiment.variants
        ],
        finding=(
            f"Mean length {fmt(by['no-stop']['generated_tokens'])} tokens without the stop, "
            f"{fmt(by['stop']['generated_tokens'])} with it."
        ),
    )
    summary = (
        f"Stopping at {params.stop!r} cut continuations from "
        f"{fmt(by['no-stop']['generated_tokens'])} to {fmt(by['stop']['generated_tokens'])} "
        f"tokens; without it {fmt(by['no-stop']['ran_past_stop'])} of them wrote on past it."
    )
    return EngineOutput(variants=results, charts=[chart], summary=summary, samples=samples)
