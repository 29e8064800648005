"""LoRA against full fine-tuning: copies of the served model adapted to the glossary's LaTeX
formulas (text its training never contained), with the same batches for every variant.

LoRALinear wraps a frozen nn.Linear with a trainable low-rank update; TiedLoRA does the same
for the token embedding, which the GPT shares with its output layer, so one update serves
both. merge() folds every update into the weights and returns a plain GPT.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from app.content import read_corpus
from app.demo.engines.common import and_list, fmt, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.adaptation import CLAIM_RANK, LORA_RANKS, VAL_EVERY, LoraParams
from app.demo.lm.gpt import GPT
from app.demo.lm.text import DATA_DIR, encode
from app.demo.lm.training import eval_starts, loss_without_grad, windows
from app.demo.result import Chart, Number, Series, VariantResult

TARGETS = ("qkv", "proj")  # the attention's Linear layers that get adapters
EMBED_STD = 0.02  # the GPT's own init std, for the embedding adapter's random factor
EVAL_WINDOWS = 16  # 64-token windows of the held-out formulas (~1,600 tokens in all)
CHECK_WINDOWS = 4  # of them, for the exact-equality checks (at init, after merging)
EVAL_POINTS = 3  # validation loss measured this many times along adaptation, after step 0


@functools.cache
def formula_text() -> tuple[list[int], list[int]]:
    """Token ids of the glossary's formulas, each as 'title, formula, blank line':
    (adaptation-train, validation), every VAL_EVERY-th formula in slug order held out."""
    terms = read_corpus(DATA_DIR).terms
    train: list[int] = []
    val: list[int] = []
    slugs = [s for s in sorted(terms) if terms[s].formula]
    for i, slug in enumerate(slugs):
        ids = encode(f"{terms[slug].title}\n{terms[slug].formula}\n\n")
        (val if i % VAL_EVERY == VAL_EVERY - 1 else train).extend(ids)
    return train, val


class LoRALinear(nn.Module):  # type: ignore[misc]  # torch is untyped here
    """h = W x + b + (alpha / r) B A x: W and b frozen, A (r, k) random, B (d, r) zero."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, g: torch.Generator) -> None:
        super().__init__()
        d, k = base.weight.shape
        bound = 1 / math.sqrt(k)  # nn.Linear's own init range for a fan-in of k
        self.base, self.scale = base, alpha / rank
        a = torch.empty(rank, k).uniform_(-bound, bound, generator=g)
        self.A = nn.Parameter(a.to(base.weight.device))
        self.B = nn.Parameter(torch.zeros(d, rank, device=base.weight.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, k) -> (B, T, d)
        return self.base(x) + self.scale * (x @ self.A.T) @ self.B.T

    def delta(self) -> torch.Tensor:
        return self.scale * self.B @ self.A  # (d, k)


class TiedLoRA(nn.Module):  # type: ignore[misc]
    """The token embedding E (V, d), frozen, plus (alpha / r) A B: A (V, r) zero, B (r, d)
    random (the factor indexed by token starts at zero, as in Hu et al.'s embedding layer)."""

    def __init__(self, wte: nn.Embedding, rank: int, alpha: float, g: torch.Generator) -> None:
        super().__init__()
        v, d = wte.weight.shape
        self.wte, self.scale = wte, alpha / rank
        self.A = nn.Parameter(torch.zeros(v, rank, device=wte.weight.device))
        b = torch.randn(rank, d, generator=g) * EMBED_STD
        self.B = nn.Parameter(b.to(wte.weight.device))

    def delta(self) -> torch.Tensor:
        return self.scale * self.A @ self.B  # (V, d)

    def weight(self) -> torch.Tensor:
        return self.wte.weight + self.delta()


class AdaptedEmbedding(nn.Module):  # type: ignore[misc]
    def __init__(self, tied: TiedLoRA) -> None:
        super().__init__()
        self.tied = tied

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, d)
        return F.embedding(idx, self.tied.weight())


class AdaptedHead(nn.Module):  # type: ignore[misc]
    def __init__(self, tied: TiedLoRA) -> None:
        super().__init__()
        self.tied = tied

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T, V)
        return h @ self.tied.weight().T


def add_lora(model: GPT, rank: int, alpha: float, g: torch.Generator) -> GPT:
    """Freeze every weight of model and give it rank-r adapters (in place)."""
    for p in model.parameters():
        p.requires_grad_(False)
    for block in model.blocks:
        for name in TARGETS:
            setattr(block.attn, name, LoRALinear(getattr(block.attn, name), rank, alpha, g))
    tied = TiedLoRA(model.wte, rank, alpha, g)
    model.wte, model.head = AdaptedEmbedding(tied), AdaptedHead(tied)
    return model


def merge(model: GPT) -> GPT:
    """A plain GPT whose weights are W + (alpha / r) B A: the adapted model's function with no
    adapter left to run."""
    merged = copy.deepcopy(model)
    with torch.no_grad():
        for block in merged.blocks:
            for name in TARGETS:
                lora = getattr(block.attn, name)
                lora.base.weight += lora.delta()
                setattr(block.attn, name, lora.base)
        tied = merged.wte.tied
        tied.wte.weight += tied.delta()
        merged.wte = tied.wte
        merged.head = nn.Linear(*tied.wte.weight.shape[::-1], bias=False)
        merged.head.weight = merged.wte.weight  # tied again
    return merged


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def logits_of(model: GPT, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out, _ = model(x)
    return out


@dataclass
class Adapted:
    """One variant's run: its model, parameter count and curves."""

    model: GPT
    params: int
    train_loss: list[Number] = field(default_factory=list)
    val_loss: list[tuple[float, Number]] = field(default_factory=list)  # (step, nats)


def variant_name(rank: int) -> str:
    return f"lora-r{rank}" if rank else "full"


def run(experiment: Experiment, params: LoraParams, ctx: RunContext) -> EngineOutput:
    base: GPT = copy.deepcopy(ctx.lm.model).to(ctx.device)  # the served model is shared
    base.eval()  # no dropout in this GPT: train and eval modes compute the same
    block = base.config.block_size
    train_text, val_text = formula_text()
    train_ids, val_ids = torch.tensor(train_text), torch.tensor(val_text)
    starts = eval_starts(len(val_ids), block, EVAL_WINDOWS)
    vx, vy = (t.to(ctx.device) for t in windows(val_ids, starts, block))
    g = torch.Generator().manual_seed(params.seed)
    draws = torch.randint(
        0, len(train_ids) - block - 1, (params.steps, params.batch_size), generator=g
    )  # (steps, batch) window starts: the same batches, in the same order, for every variant
    batches = [tuple(t.to(ctx.device) for t in windows(train_ids, row, block)) for row in draws]
    cx = vx[:CHECK_WINDOWS]
    base_logits = logits_of(base, cx)
    base_val = loss_without_grad(base, vx, vy)
    checkpoints = {round(params.steps * k / EVAL_POINTS) for k in range(1, EVAL_POINTS + 1)}
    kinds = [*LORA_RANKS, 0]  # rank 0: full fine-tuning
    total = len(kinds) * params.steps
    runs: dict[int, Adapted] = {}
    init_change = 0.0
    for k, rank in enumerate(kinds):
        model = copy.deepcopy(base)
        if rank:  # the same adapter draws for every run with this seed and rank
            add_lora(model, rank, params.alpha, torch.Generator().manual_seed(params.seed))
            change = (logits_of(model, cx) - base_logits).abs().max()
            init_change = max(init_change, float(change))
        lr = params.lora_lr if rank else params.full_lr
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
        result = Adapted(model, trainable(model), val_loss=[(0.0, num(base_val))])
        for step, (x, y) in enumerate(batches):
            ctx.check(k * params.steps + step, total)
            loss = model.loss(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            result.train_loss.append(num(loss.item()))
            if step + 1 in checkpoints:
                result.val_loss.append((float(step + 1), num(loss_without_grad(model, vx, vy))))
        runs[rank] = result
        if ctx.wants_progress:
            ctx.progress((k + 1) * params.steps, total, [val_chart(runs, base_val)])
    adapted = runs[CLAIM_RANK].model
    merged_diff = float((logits_of(merge(adapted), cx) - logits_of(adapted, cx)).abs().max())
    return output(runs, base_val, init_change, merged_diff, params)


def output(
    runs: dict[int, Adapted],
    base_val: float,
    init_change: float,
    merged_diff: float,
    params: LoraParams,
) -> EngineOutput:
    final = {rank: r.val_loss[-1][1] for rank, r in runs.items()}
    full_gain = None if final[0] is None else base_val - final[0]

    def share(rank: int) -> Number:
        """The rank's drop in validation loss over full fine-tuning's (undefined unless full
        fine-tuning lowered it)."""
        lora = final[rank]
        if lora is None or full_gain is None or full_gain <= 0:
            return None
        return num((base_val - lora) / full_gain)

    variants = [
        VariantResult(
            name=variant_name(rank),
            label=f"LoRA, rank {rank}" if rank else "Full fine-tuning",
            metrics={
                "trainable_params": float(r.params),
                "trainable_share": r.params / runs[0].params,
                "final_val_loss": final[rank],
                "final_loss": r.train_loss[-1] if r.train_loss else None,
            }
            | ({"share_of_full_gain": share(rank)} if rank else {}),
            loss=r.train_loss,
        )
        for rank, r in runs.items()
    ]
    run_metrics: dict[str, Number] = {
        "base_val_loss": num(base_val),
        "full_gain": full_gain,
        **{f"r{rank}_share_of_full_gain": share(rank) for rank in LORA_RANKS},
        "max_logit_change_at_init": num(init_change),
        "max_merged_logit_difference": num(merged_diff),
    }
    labels = [f"rank {r}" for r in LORA_RANKS] + ["full"]
    counts = [runs[r].params for r in [*LORA_RANKS, 0]]
    params_chart = Chart(
        id="params",
        kind="bar",
        title="Trainable parameters of each variant",
        x_label="variant",
        y_label="trainable parameters",
        y_log=True,
        categories=labels,
        series=[
            Series(
                label="trainable parameters",
                points=[(float(i), float(c)) for i, c in enumerate(counts)],
            )
        ],
        finding="Trainable parameters: "
        + and_list([f"{c:,} ({lab})" for c, lab in zip(counts, labels, strict=True)])
        + ".",
    )
    r = runs[CLAIM_RANK]
    summary = (
        f"On formulas it never saw (validation loss {fmt(base_val)} nats before adapting), "
        f"full fine-tuning of all {runs[0].params:,} weights reached {fmt(final[0])} in "
        f"{params.steps} steps; LoRA at rank {CLAIM_RANK}, training {r.params:,} "
        f"({fmt(100 * r.params / runs[0].params)}%), reached {fmt(final[CLAIM_RANK])}, "
        f"{fmt(share(CLAIM_RANK))} of full fine-tuning's gain."
    )
    return EngineOutput(variants, [val_chart(runs, base_val), params_chart], summary, run_metrics)


def val_chart(runs: dict[int, Adapted], base_val: float) -> Chart:
    series = [
        Series(
            label=f"LoRA, rank {rank}" if rank else "Full fine-tuning",
            variant=variant_name(rank),
            points=r.val_loss,
        )
        for rank, r in runs.items()
    ]
    last = max(int(p[0]) for r in runs.values() for p in r.val_loss)
    series.append(
        Series(
            label="before adapting",
            points=[(0.0, base_val), (float(last), base_val)],
            style="dashed",
        )
    )
    finals = [f"{fmt(s.points[-1][1])} ({s.label})" for s in series[:-1]]
    return Chart(
        id="val-loss",
        kind="line",
        title="Validation loss on held-out formulas during adaptation",
        x_label="step",
        y_label="cross-entropy (nats per token)",
        series=series,
        finding=f"From {fmt(base_val)} before adapting to " + and_list(finals) + ".",
    )
