"""Attention maps of the server model on a prompt, per layer and head, and the entropy of
attention as every logit is scaled (Inspect.logit_scale in app/demo/lm/gpt.py)."""

from __future__ import annotations

import math

import torch

from app.demo.engines.common import fmt, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.lm_internals import HEADS, AttentionParams
from app.demo.lm.gpt import GPT, Inspect
from app.demo.lm.text import decode, encode, token_name
from app.demo.result import Chart, Grid, Number, Series, TextSample, VariantResult


def attention(model: GPT, ids: list[int], scale: float) -> list[torch.Tensor]:
    """Per layer (nh, T, T) attention weights at this logit scale."""
    inspect = Inspect(logit_scale=scale, keep_attention=True)
    with torch.no_grad():
        model(torch.tensor([ids], dtype=torch.long), inspect=inspect)
    assert inspect.attention is not None
    return [a[0] for a in inspect.attention]


def head_entropy(att: torch.Tensor) -> torch.Tensor:
    """(nh,) mean entropy of the rows, in bits."""
    p = att.double()
    h = -(p * torch.where(p > 0, p.log2(), torch.zeros_like(p))).sum(-1)  # (nh, T)
    return h.mean(-1)


def run(experiment: Experiment, params: AttentionParams, ctx: RunContext) -> EngineOutput:
    model: GPT = ctx.lm.model
    block = model.config.block_size
    all_ids = encode(params.prompt, specials=True)
    ids = all_ids[-block:]
    t = len(ids)
    names = [token_name(i) for i in ids]
    maps = attention(model, ids, params.logit_scale)
    stacked = torch.stack(maps)  # (layers, nh, T, T)
    row_err = float((stacked.double().sum(-1) - 1).abs().max().item())
    above = float(stacked.triu(1).abs().max().item()) if t > 1 else 0.0
    per_head = [float(e) for m in maps for e in head_entropy(m).tolist()]
    sweep = params.sweep()
    means: list[float] = []
    for i, s in enumerate(sweep):
        ctx.check(i, len(sweep))
        means.append(float(torch.cat([head_entropy(m) for m in attention(model, ids, s)]).mean()))
    ctx.progress(len(sweep), len(sweep))
    rises = [b - a for a, b in zip(means, means[1:], strict=False)]
    variants = [
        VariantResult(
            name=h,
            label=f"Layer {h[1]}, head {h[3]}",
            metrics={"entropy_bits": num(per_head[k]) if k < len(per_head) else None},
        )
        for k, h in enumerate(HEADS)
    ]
    charts: list[Chart] = []
    for k, h in enumerate(HEADS):
        layer, head = int(h[1]) - 1, int(h[3]) - 1
        z = maps[layer][head].tolist() if layer < len(maps) and head < maps[layer].size(0) else []
        prev = [(float(q), num(z[q][q - 1])) for q in range(1, len(z))] or [(0.0, 1.0)]
        charts.append(
            Chart(
                id=f"map-{h}",
                kind="heatmap",
                title=f"Attention of layer {h[1]}, head {h[3]}",
                x_label="key token",
                y_label="query token",
                categories=names,
                y_categories=names,
                grid=Grid(x=[float(i) for i in range(t)], y=[float(i) for i in range(t)], z=z),
                series=[Series(label="weight on the previous token", points=prev, style="points")],
                finding=f"Mean row entropy {fmt(per_head[k] if k < len(per_head) else None)} bits "
                f"at logit scale {params.logit_scale:g}.",
            )
        )
    charts += [
        Chart(
            id="entropy",
            kind="bar",
            title="Mean attention entropy of each head",
            x_label="head",
            y_label="entropy (bits)",
            categories=list(HEADS),
            series=[
                Series(label="entropy", points=[(float(i), num(e)) for i, e in enumerate(per_head)])
            ],
            finding=f"Head entropies from {fmt(min(per_head))} to {fmt(max(per_head))} bits; a "
            f"uniform row over all {t} tokens would have {fmt(math.log2(t))}.",
        ),
        Chart(
            id="collapse",
            kind="line",
            title="Mean attention entropy by logit scale",
            x_label="logit scale",
            y_label="entropy (bits)",
            x_log=True,
            series=[
                Series(
                    label="mean over heads and rows",
                    points=[(s, num(e)) for s, e in zip(sweep, means, strict=True)],
                )
            ],
            finding=f"{fmt(means[0])} bits at scale {sweep[0]:g}, "
            f"{fmt(means[-1])} at {sweep[-1]:g}.",
        ),
    ]
    run_metrics: dict[str, Number] = {
        "entropy_smallest_scale_bits": num(means[0]),
        "entropy_largest_scale_bits": num(means[-1]),
        "entropy_drop_bits": num(means[0] - means[-1]),
        "max_entropy_rise_bits": num(max(rises)) if rises else None,
        "max_row_sum_error": num(row_err),
        "max_weight_above_diagonal": num(above),
    }
    note = f"{t} tokens (UTF-8 bytes)"
    if len(all_ids) > block:
        note += f"; the prompt is {len(all_ids)} tokens, only its last {block} are shown"
    samples = [TextSample(label="The prompt's tokens", text=decode(ids), tokens=names, note=note)]
    summary = (
        f"Over {t} tokens, mean attention entropy fell from {fmt(means[0])} bits at logit scale "
        f"{sweep[0]:g} to {fmt(means[-1])} at {sweep[-1]:g}; rows summed to 1 within "
        f"{fmt(row_err)} and no weight fell after the diagonal ({fmt(above)})."
    )
    return EngineOutput(variants, charts, summary, run_metrics, samples)
