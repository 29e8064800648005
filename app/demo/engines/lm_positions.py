"""Positional encoding: four copies of the small GPT (app/demo/lm/gpt.py) that differ only in
how positions enter, trained on a digit task that needs order (copy) or not (sort)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from app.demo.engines.common import and_list, curve, fmt, loss_chart, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.lm_internals import POSITIONS, PositionParams
from app.demo.lm.config import GPTConfig
from app.demo.lm.gpt import GPT
from app.demo.result import Chart, Number, Series, VariantResult

DIGITS, SEP = 10, 10  # tokens 0-9, then the separator
BATCH, TEST, LR = 32, 256, 2e-2
SINUSOID_SCALE = 0.2  # at full size (+-1) the table drowns token embeddings drawn at std 0.02


def sequences(task: str, n: int, length: int, g: torch.Generator) -> torch.Tensor:
    """(n, 2 length + 1): digits, the separator, then the answer."""
    d = torch.randint(0, DIGITS, (n, length), generator=g)
    answer = d if task == "copy" else d.sort(dim=1).values
    return torch.cat([d, torch.full((n, 1), SEP), answer], dim=1)


def accuracy(model: GPT, seq: torch.Tensor, length: int) -> float:
    """Per-digit accuracy of the greedy next token over the answer (teacher forced)."""
    with torch.no_grad():
        logits, _ = model(seq[:, :-1])
    return float((logits[:, length:].argmax(-1) == seq[:, length + 1 :]).float().mean().item())


def run(experiment: Experiment, params: PositionParams, ctx: RunContext) -> EngineOutput:
    n = params.length
    test = sequences(params.task, TEST, n, torch.Generator().manual_seed(params.seed + 10_000))
    total = len(POSITIONS) * params.steps
    losses: list[list[Number]] = []
    accs: list[float] = []
    for k, (position, _, _) in enumerate(POSITIONS):
        g = torch.Generator().manual_seed(params.seed)  # the same batches for every model
        torch.manual_seed(params.seed)  # the same initialization draws
        config = GPTConfig(
            vocab_size=DIGITS + 1, block_size=2 * n, n_layer=1, n_head=2, n_embd=16,
            position=position,
        )  # fmt: skip
        model = GPT(config)
        if position == "sinusoidal":
            model.table.mul_(SINUSOID_SCALE)
        opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
        curve_k: list[Number] = []
        for step in range(params.steps):
            ctx.check(k * params.steps + step, total)
            seq = sequences(params.task, BATCH, n, g)
            logits, _ = model(seq[:, :-1])
            loss = F.cross_entropy(
                logits[:, n:].reshape(-1, DIGITS + 1), seq[:, n + 1 :].reshape(-1)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            curve_k.append(num(loss.item()))
        model.eval()
        losses.append(curve_k)
        accs.append(accuracy(model, test, n))
        ctx.progress((k + 1) * params.steps, total)
    labels = [label for _, label, _ in POSITIONS]
    variants = [
        VariantResult(
            name=name,
            label=label,
            metrics={"accuracy": num(accs[k]), "final_loss": losses[k][-1] if losses[k] else None},
            loss=losses[k],
        )
        for k, (name, label, _) in enumerate(POSITIONS)
    ]
    gain = min(accs[1:]) - accs[0]
    run_metrics: dict[str, Number] = {"min_gain": num(gain), "none_accuracy": num(accs[0])}
    acc_text = and_list([f"{fmt(a)} ({lab})" for a, lab in zip(accs, labels, strict=True)])
    charts = [
        loss_chart(
            "loss",
            "Training loss of each model",
            [curve(labels[k], losses[k], name) for k, (name, _, _) in enumerate(POSITIONS)],
            finding="Final training loss: "
            + and_list([f"{fmt(c[-1])} ({lab})" for c, lab in zip(losses, labels, strict=True)])
            + ".",
        ),
        Chart(
            id="accuracy",
            kind="bar",
            title="Accuracy on held-out sequences",
            x_label="positions",
            y_label="per-digit accuracy",
            categories=labels,
            series=[Series(label="accuracy", points=[(float(i), a) for i, a in enumerate(accs)])],
            finding=f"Held-out per-digit accuracy: {acc_text}.",
        ),
    ]
    summary = (
        f"On the {params.task} task ({n} digits, {params.steps} steps) the model without "
        f"positions got {fmt(accs[0])} of the answer digits right; with positions the worst "
        f"got {fmt(min(accs[1:]))} ({acc_text})."
    )
    return EngineOutput(variants, charts, summary, run_metrics)
