"""Perplexity along training: every checkpoint of the server model scored on the same
held-out windows, perplexity computed from the true tokens' probabilities and checked
against exp of torch's cross-entropy."""

from __future__ import annotations

import copy
import math

import torch
from torch.nn import functional as F

from app.demo.engines.common import curve, fmt, loss_chart, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.lm_internals import CHECKPOINTS, PerplexityParams
from app.demo.lm.gpt import GPT
from app.demo.lm.text import VOCAB_SIZE, glossary_text
from app.demo.lm.training import eval_starts, windows
from app.demo.result import Chart, Number, Series, VariantResult


def score(model: GPT, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(perplexity from the probabilities of the true tokens, torch's mean cross-entropy)."""
    with torch.no_grad():
        logits, _ = model(x)
    flat, target = logits.reshape(-1, logits.size(-1)), y.reshape(-1)
    ce = float(F.cross_entropy(flat, target).item())
    p = flat.double().softmax(-1).gather(1, target[:, None])  # float64, no log_softmax
    return math.exp(-float(p.log().mean().item())), ce


def pick(steps: list[int]) -> list[int]:
    """The checkpoints shown as variants: first, the one after it, the middle, the last."""
    return [steps[0], steps[min(1, len(steps) - 1)], steps[len(steps) // 2], steps[-1]]


def run(experiment: Experiment, params: PerplexityParams, ctx: RunContext) -> EngineOutput:
    model: GPT = copy.deepcopy(ctx.lm.model)  # the served model is shared: load into a copy
    model.eval()
    block = model.config.block_size
    if params.evaluate_on == "validation":
        ids = torch.tensor(glossary_text().val, dtype=torch.long)
    else:
        g = torch.Generator().manual_seed(params.seed)
        ids = torch.randint(0, 256, (block * params.windows * 2,), generator=g)
    x, y = windows(ids, eval_starts(len(ids), block, params.windows), block)
    steps = sorted(ctx.lm.checkpoints)
    ppl: dict[int, float] = {}
    ce: dict[int, float] = {}
    for i, step in enumerate(steps):
        ctx.check(i, len(steps))
        model.load_state_dict(ctx.lm.checkpoints[step])
        ppl[step], ce[step] = score(model, x, y)
        ctx.progress(i + 1, len(steps))
    rel = max(abs(ppl[s] - math.exp(ce[s])) / math.exp(ce[s]) for s in steps)
    shown = pick(steps)
    variants = [
        VariantResult(
            name=name,
            label=f"{label}: step {step}",
            metrics={
                "step": float(step),
                "perplexity": num(ppl[step]),
                "cross_entropy": num(ce[step]),
                "perplexity_over_vocab": num(ppl[step] / VOCAB_SIZE),
            },
        )
        for (name, label), step in zip(CHECKPOINTS, shown, strict=True)
    ]
    first, last = ppl[steps[0]], ppl[steps[-1]]
    run_metrics: dict[str, Number] = {
        "first_over_last": num(first / last),
        "max_relative_difference": num(rel),
        "vocab_size": float(VOCAB_SIZE),
    }
    text = "held-out glossary entries" if params.evaluate_on == "validation" else "random bytes"
    log = ctx.lm.log
    charts = [
        Chart(
            id="perplexity",
            kind="line",
            title="Held-out perplexity by training step",
            x_label="training step",
            y_label="perplexity",
            y_log=True,
            series=[
                Series(
                    label=f"perplexity on {text}", points=[(float(s), num(ppl[s])) for s in steps]
                ),
                Series(
                    label="vocabulary size",
                    points=[
                        (float(steps[0]), float(VOCAB_SIZE)),
                        (float(steps[-1]), float(VOCAB_SIZE)),
                    ],
                    style="dashed",
                ),
            ],
            finding=f"Perplexity went from {fmt(first)} at step {steps[0]} to {fmt(last)} at "
            f"step {steps[-1]} (vocabulary {VOCAB_SIZE}).",
        ),
        loss_chart(
            "training",
            "The model's training loss",
            [
                curve("training batch", [num(v) for v in log.train_loss]),
                Series(
                    label="validation (training's own)",
                    points=[(float(s), num(v)) for s, v in log.val_loss],
                    style="dashed",
                ),
            ],
            finding=f"Training loss {fmt(log.train_loss[0] if log.train_loss else None)} at the "
            f"first step, {fmt(log.train_loss[-1] if log.train_loss else None)} at the last "
            "(nats).",
            y_log=True,
        ),
    ]
    summary = (
        f"On {params.windows} windows of {block} tokens of {text} the perplexity went from "
        f"{fmt(first)} untrained to {fmt(last)} after {steps[-1]} steps ({fmt(first / last)} "
        f"times lower); exp(cross-entropy) matched it to {fmt(rel)} relative."
    )
    return EngineOutput(variants, charts, summary, run_metrics)
