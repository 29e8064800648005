"""Byte-pair-encoding engine: merges learned live on the glossary's text (or the user's), and
how many tokens per character the text and a held-out sentence take at several merge counts.

Pure Python (app/demo/lm/bpe.py); no model and no torch is needed.
"""

from __future__ import annotations

import functools

from app.demo.engines.common import and_list, fmt, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.lm_formats import BPEParams
from app.demo.lm import bpe
from app.demo.lm.text import BYTE_VOCAB, decode, glossary_text
from app.demo.result import Chart, Number, Series, TextSample, VariantResult

GLOSSARY_BYTES = 20_000  # training ids of the glossary text to learn on
SHOWN_MERGES = 20


@functools.cache
def learning_text() -> str:
    """The first 20 KB of the model's training text (bytes only; special tokens dropped)."""
    ids = [i for i in glossary_text().train[: GLOSSARY_BYTES * 2] if i < BYTE_VOCAB]
    return decode(ids[:GLOSSARY_BYTES])


def merge_counts(n: int) -> list[int]:
    """0, n/8, n/2, n: one per variant."""
    return [0, n // 8, n // 2, n]


def run(experiment: Experiment, params: BPEParams, ctx: RunContext) -> EngineOutput:
    text = params.text or learning_text()
    ctx.progress(0, params.merges + 1)
    learned = bpe.train(text, params.merges, check=ctx.check)
    counts = [min(n, len(learned.merges)) for n in merge_counts(params.merges)]

    results: list[VariantResult] = []
    samples: list[TextSample] = []
    train_tpc: list[float] = []
    sent_tpc: list[float] = []
    exact = True
    for v, n in zip(experiment.variants, counts, strict=True):
        ctx.check(n, params.merges + 1)
        tok = learned.truncated(n)
        ids_text = tok.encode(text)
        ids_sent = tok.encode(params.sentence)
        exact = exact and tok.decode(ids_text) == text and tok.decode(ids_sent) == params.sentence
        train_tpc.append(len(ids_text) / max(len(text), 1))
        sent_tpc.append(len(ids_sent) / len(params.sentence))
        results.append(
            VariantResult(
                name=v.name,
                label=f"{n} merges",
                metrics={
                    "merges": float(n),
                    "tokens_per_char": num(train_tpc[-1]),
                    "sentence_tokens_per_char": num(sent_tpc[-1]),
                    "sentence_tokens": float(len(ids_sent)),
                    "vocab_size": float(tok.vocab_size),
                },
            )
        )
        samples.append(
            TextSample(
                variant=v.name,
                label=f"The sentence with {n} merges ({len(ids_sent)} tokens)",
                text=params.sentence,
                tokens=tok.pieces(ids_sent),
            )
        )
    table = learned.token_bytes()
    first = [
        f"{_show(table[a])} + {_show(table[b])} -> {_show(table[BYTE_VOCAB + i])} ({c}x)"
        for i, ((a, b), c) in enumerate(
            zip(learned.merges[:SHOWN_MERGES], learned.counts, strict=False)
        )
    ]
    samples.append(
        TextSample(
            label=f"The first {len(first)} merges, most frequent pair first",
            text="\n".join(first) or "(no pair occurs twice: nothing to merge)",
        )
    )
    non_increasing = all(
        b <= a for xs in (train_tpc, sent_tpc) for a, b in zip(xs, xs[1:], strict=False)
    )
    chart = Chart(
        id="compression",
        kind="line",
        title="Tokens per character against merges",
        x_label="merges",
        y_label="tokens per character",
        series=[
            Series(label="training text", points=_points(counts, train_tpc)),
            Series(label="held-out sentence", points=_points(counts, sent_tpc), style="dashed"),
        ],
        finding=(
            f"{counts[-1]} merges take the training text from {fmt(train_tpc[0])} to "
            f"{fmt(train_tpc[-1])} tokens per character, the sentence from "
            f"{fmt(sent_tpc[0])} to {fmt(sent_tpc[-1])}."
        ),
    )
    ctx.progress(params.merges + 1, params.merges + 1, [chart])
    source = "your text" if params.text else f"{len(text):,} characters of the glossary"
    summary = (
        f"Learned {len(learned.merges)} merges on {source}: tokens per character fall "
        + and_list([f"{fmt(x)} ({n} merges)" for n, x in zip(counts, train_tpc, strict=True)])
        + (", and decoding gives the text back exactly." if exact else "; decoding is NOT exact.")
    )
    return EngineOutput(
        variants=results,
        charts=[chart],
        summary=summary,
        run_metrics={
            "round_trip": 1.0 if exact else 0.0,
            "non_increasing": 1.0 if non_increasing else 0.0,
            "merges_learned": float(len(learned.merges)),
        },
        samples=samples,
    )


def _points(xs: list[int], ys: list[float]) -> list[tuple[float, Number]]:
    return [(float(x), num(y)) for x, y in zip(xs, ys, strict=True)]


def _show(raw: bytes) -> str:
    try:
        return repr(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "".join(f"<0x{b:02X}>" for b in raw)
