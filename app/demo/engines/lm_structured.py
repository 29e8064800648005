"""Structured-output engine: free sampling vs decoding constrained by the record's schema.

The prompt is '{"term": "'; the rest of a valid record is a term string (printable ASCII,
no quotes or backslashes, 1 to max_term bytes), then exactly '", "category": "', one of the
glossary's categories, and '"}'. JsonRecordConstraint is that grammar as a state machine
over bytes: given the bytes generated so far it returns the mask of tokens that keep the
output a prefix of a valid record (None once the record is complete).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch

from app.demo.engines.common import fmt
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.lm_formats import StructuredParams
from app.demo.lm.generate import Sampling, generate
from app.demo.lm.text import END, VOCAB_SIZE, decode, encode, glossary_text
from app.demo.result import Chart, Number, Series, TextSample, VariantResult

PROMPT = '{"term": "'
MIDDLE = '", "category": "'
TERM_BYTES = tuple(b for b in range(0x20, 0x7F) if b not in (ord('"'), ord("\\")))


def categories() -> tuple[str, ...]:
    return glossary_text().categories


def valid_record(text: str, cats: Sequence[str]) -> bool:
    """text parses as {"term": non-empty string, "category": one of cats}, nothing else."""
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    return (
        isinstance(doc, dict)
        and set(doc) == {"term", "category"}
        and isinstance(doc["term"], str)
        and bool(doc["term"])
        and doc["category"] in cats
    )


class JsonRecordConstraint:
    """Allowed next bytes after PROMPT: term bytes, '"', MIDDLE, a category, '"}'."""

    def __init__(self, cats: Sequence[str], max_term: int, vocab: int = VOCAB_SIZE) -> None:
        self.tails = [c.encode() + b'"}' for c in cats]
        self.middle = MIDDLE.encode()
        self.max_term = max_term
        self.vocab = vocab
        self._term = self._mask(TERM_BYTES)
        self._term_or_close = self._mask((*TERM_BYTES, ord('"')))
        self._masks: dict[tuple[int, ...], torch.Tensor] = {}

    def _mask(self, allowed: Sequence[int]) -> torch.Tensor:
        m = torch.zeros(self.vocab, dtype=torch.bool)
        m[list(allowed)] = True
        return m

    def _one(self, byte: int) -> torch.Tensor:
        key = (byte,)
        if key not in self._masks:
            self._masks[key] = self._mask(key)
        return self._masks[key]

    def allowed_bytes(self, out: Sequence[int]) -> list[int] | None:
        """The bytes that may follow out (None: complete; [] cannot happen for a prefix)."""
        n = 0
        while n < len(out) and out[n] != ord('"'):
            n += 1
        if n == len(out):  # inside the term
            if n == 0:
                return list(TERM_BYTES)
            if n >= self.max_term:
                return [ord('"')]
            return [*TERM_BYTES, ord('"')]
        rest = bytes(out[n:])  # from the closing quote of the term on
        if len(rest) < len(self.middle):
            return [self.middle[len(rest)]]
        tail = rest[len(self.middle) :]
        if any(t == tail for t in self.tails):
            return None
        return sorted(
            {t[len(tail)] for t in self.tails if t.startswith(tail) and len(t) > len(tail)}
        )

    def __call__(self, out: list[int]) -> torch.Tensor | None:
        allowed = self.allowed_bytes(out)
        if allowed is None:
            return None
        if len(allowed) == 1:
            return self._one(allowed[0])
        if len(allowed) == len(TERM_BYTES) + 1 and allowed[-1] == ord('"'):
            return self._term_or_close
        if len(allowed) == len(TERM_BYTES) and not out:
            return self._term
        return self._mask(allowed)

    def complete(self, out: Sequence[int]) -> bool:
        return self.allowed_bytes(out) is None


def run(experiment: Experiment, params: StructuredParams, ctx: RunContext) -> EngineOutput:
    model = ctx.lm.model
    cats = categories()
    prompt = encode(PROMPT)
    sampling = Sampling(temperature=params.temperature)
    results: list[VariantResult] = []
    samples: list[TextSample] = []
    valid: dict[str, list[bool]] = {}
    total = len(experiment.variants) * params.samples
    for k, v in enumerate(experiment.variants):
        valid[v.name] = []
        lengths = []
        for s in range(params.samples):
            ctx.check(k * params.samples + s, total)
            g = torch.Generator().manual_seed(params.seed * 1000 + s)
            if v.name == "constrained":
                c = JsonRecordConstraint(cats, params.max_term)
                out = generate(
                    model,
                    prompt,
                    params.max_tokens,
                    sampling,
                    g,
                    stop=c.complete,
                    constraint=c,
                )
            else:
                out = generate(
                    model,
                    prompt,
                    params.max_tokens,
                    sampling,
                    g,
                    stop=lambda o: o[-1] in (ord("\n"), ord("}"), END),
                )
            text = PROMPT + decode(out).rstrip("\n")
            ok = valid_record(text, cats)
            valid[v.name].append(ok)
            lengths.append(len(out))
            if s < 3:
                samples.append(
                    TextSample(
                        variant=v.name,
                        label=f"{v.label}, document {s + 1}",
                        prompt=PROMPT,
                        text=text[len(PROMPT) :],
                        note="valid" if ok else "invalid: does not parse or match the schema",
                    )
                )
        metrics: dict[str, Number] = {
            "valid_fraction": sum(valid[v.name]) / params.samples,
            "mean_tokens": sum(lengths) / params.samples,
        }
        results.append(VariantResult(name=v.name, label=v.label, metrics=metrics))
        ctx.progress((k + 1) * params.samples, total)
    by = {r.name: r.metrics for r in results}
    chart = Chart(
        id="validity",
        kind="bar",
        title="Valid documents",
        x_label="decoding",
        y_label="share valid",
        categories=[v.label for v in experiment.variants],
        series=[
            Series(
                label="valid",
                points=[
                    (float(i), by[v.name]["valid_fraction"])
                    for i, v in enumerate(experiment.variants)
                ],
            )
        ],
        finding=(
            f"{fmt(by['constrained']['valid_fraction'])} of constrained documents are valid, "
            f"{fmt(by['free']['valid_fraction'])} of free ones."
        ),
    )
    summary = (
        f"Of {params.samples} documents at temperature {fmt(params.temperature)}, "
        f"{sum(valid['free'])} sampled freely and {sum(valid['constrained'])} constrained "
        "parse and match the schema."
    )
    return EngineOutput(variants=results, charts=[chart], summary=summary, samples=samples)
