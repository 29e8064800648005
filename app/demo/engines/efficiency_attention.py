"""Attention made cheaper: a fused kernel against attention written out (time and peak memory
by sequence length), and grouped-query attention converted from the trained model's heads
(KV-cache bytes and held-out perplexity).

Peak memory on a CPU comes from the legacy autograd profiler's record of every allocation and
free, in order (the Kineto profiler costs seconds to start and is global to the process; the
legacy one is per thread and adds microseconds); on a GPU, from the caching allocator's peak.
"""

from __future__ import annotations

import copy
import itertools
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import autograd, nn
from torch._C._profiler import _ExperimentalConfig
from torch.nn import functional as F

from app.demo.engines.common import and_list, fmt, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.efficiency_inference import GroupedParams, KernelParams, sweep_lengths
from app.demo.lm.gpt import GPT, KV, CausalSelfAttention, Inspect, rotate
from app.demo.lm.text import glossary_text
from app.demo.lm.training import windows
from app.demo.result import Chart, Number, Series, VariantResult

Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- attention kernels


def plain_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal softmax(QK^T / sqrt(d)) V with the (B, nh, T, T) scores materialized."""
    t = q.size(-2)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))  # (B, nh, T, T)
    mask = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1) @ v  # (B, nh, T, hs)


def fused_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The same through PyTorch's fused kernel (FlashAttention-style on a CPU)."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def score_bytes(q: torch.Tensor) -> int:
    """Bytes of the (B, nh, T, T) score matrix the written-out path makes from q."""
    b, nh, t, _ = q.shape
    return int(b * nh * t * t * q.element_size())


def cpu_peak_bytes(kernel: Kernel, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> int:
    """Peak bytes held at once during one call on the CPU, above what was held before it: the
    running sum of the allocations and frees the profiler recorded (what profiler_legacy's
    profile does, without its parsing, which drops the order of the frees)."""
    config = autograd.ProfilerConfig(
        autograd.ProfilerState.CPU,
        False,  # record_shapes
        True,  # profile_memory
        False,  # with_stack
        False,  # with_flops
        False,  # with_modules
        _ExperimentalConfig(),
    )
    autograd._enable_profiler_legacy(config)
    try:
        out = kernel(q, k, v)
        del out
    finally:
        records = autograd._disable_profiler_legacy()  # per thread, in order
    held = peak = 0
    for record in itertools.chain.from_iterable(records):
        if record.kind() == "memory_alloc":  # a free is a negative allocation
            held += record.cpu_memory_usage()
            peak = max(peak, held)
    return peak


def peak_bytes(kernel: Kernel, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> int:
    """Bytes allocated at the peak of one call, above what was held before it."""
    if q.is_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        out = kernel(q, k, v)
        torch.cuda.synchronize()
        del out
        return int(torch.cuda.max_memory_allocated() - before)
    return cpu_peak_bytes(kernel, q, k, v)


def seconds(kernel: Kernel, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> float:
    if q.is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    kernel(q, k, v)
    if q.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def slope(lengths: list[int], values: list[float]) -> Number:
    """Log-log slope from the first length to the last (None for a single length)."""
    if len(lengths) < 2 or values[0] <= 0 or values[-1] <= 0:
        return None
    return num(math.log(values[-1] / values[0]) / math.log(lengths[-1] / lengths[0]))


def run_kernels(experiment: Experiment, params: KernelParams, ctx: RunContext) -> EngineOutput:
    lengths = sweep_lengths(params.max_length)
    kernels: list[Kernel] = [plain_attention, fused_attention]
    g = torch.Generator().manual_seed(params.seed)
    memory: list[list[float]] = [[], []]  # per kernel, per length: peak bytes
    times: list[list[float]] = [[], []]  # per kernel, per length: median seconds
    scores: list[float] = []
    max_diff = 0.0
    with torch.no_grad():
        for i, t in enumerate(lengths):
            ctx.check(i, len(lengths))
            shape = (1, params.heads, t, params.head_size)  # (B, nh, T, hs)
            q, k, v = (torch.randn(shape, generator=g).to(ctx.device) for _ in range(3))
            outs = [kernel(q, k, v) for kernel in kernels]  # also the warm-up
            max_diff = max(max_diff, float((outs[0] - outs[1]).abs().max().item()))
            del outs
            scores.append(float(score_bytes(q)))
            for j, kernel in enumerate(kernels):
                memory[j].append(float(peak_bytes(kernel, q, k, v)))
            samples: list[list[float]] = [[], []]
            for _ in range(params.repeats):  # interleaved, so both see the same load
                for j, kernel in enumerate(kernels):
                    samples[j].append(seconds(kernel, q, k, v))
            for j in range(2):
                times[j].append(statistics.median(samples[j]))
            if ctx.wants_progress:
                ctx.progress(
                    i + 1, len(lengths), _kernel_charts(lengths[: i + 1], memory, times, scores)
                )
    longest = lengths[-1]
    variants = [
        VariantResult(
            name=spec.name,
            label=spec.label,
            metrics={
                "length": float(longest),
                "peak_bytes": num(memory[j][-1]),
                "bytes_per_token": num(memory[j][-1] / longest),
                "ms": num(times[j][-1] * 1e3),
                "memory_slope": slope(lengths, memory[j]),
                "time_slope": slope(lengths, times[j]),
            },
        )
        for j, spec in enumerate(experiment.variants)
    ]
    variants[0].metrics["score_bytes"] = num(scores[-1])  # B x heads x T^2 x 4
    run_metrics: dict[str, Number] = {
        "memory_plain_over_sdpa": num(memory[0][-1] / memory[1][-1]) if memory[1][-1] else None,
        "time_sdpa_over_plain": num(times[1][-1] / times[0][-1]),
        "max_abs_difference": num(max_diff),
        "plain_peak_over_scores": num(memory[0][-1] / scores[-1]),
    }
    charts = _kernel_charts(lengths, memory, times, scores)
    summary = (
        f"At {longest} tokens ({params.heads} heads of {params.head_size}, {ctx.device}) the "
        f"written-out attention peaked at {_mib(memory[0][-1])} against {_mib(memory[1][-1])} "
        f"for the fused kernel, and took {fmt(times[0][-1] * 1e3)} ms against "
        f"{fmt(times[1][-1] * 1e3)} ms; their outputs differed by at most {fmt(max_diff)}."
    )
    return EngineOutput(variants, charts, summary, run_metrics)


def _mib(n: float) -> str:
    return f"{n / 2**20:.3g} MiB"


def points(xs: list[float], ys: list[float]) -> list[tuple[float, Number]]:
    return [(x, num(y)) for x, y in zip(xs, ys, strict=False)]


def _kernel_charts(
    lengths: list[int], memory: list[list[float]], times: list[list[float]], scores: list[float]
) -> list[Chart]:
    xs, last = [float(t) for t in lengths], len(lengths) - 1
    names = (("plain", "written out"), ("sdpa", "fused (SDPA)"))
    ms = [[s * 1e3 for s in row] for row in times]
    scores_line = Series(label="the T x T scores", points=points(xs, scores), style="dashed")
    axes: dict[str, Any] = {"x_label": "sequence length (tokens)", "x_log": True, "y_log": True}
    pairs = [f"{fmt(a)} / {fmt(b)} ms ({t})" for t, a, b in zip(lengths, ms[0], ms[1], strict=True)]
    return [
        Chart(
            id="memory",
            kind="line",
            title="Peak memory by sequence length",
            y_label="peak bytes allocated",
            series=[
                Series(label=lab, variant=n, points=points(xs, memory[j]))
                for j, (n, lab) in enumerate(names)
            ]
            + [scores_line],
            finding=f"From {lengths[0]} to {lengths[last]} tokens the written-out attention's "
            f"peak went from {_mib(memory[0][0])} to {_mib(memory[0][last])}, the fused "
            f"kernel's from {_mib(memory[1][0])} to {_mib(memory[1][last])}.",
            **axes,
        ),
        Chart(
            id="time",
            kind="line",
            title="Time by sequence length",
            y_label="median time (ms)",
            series=[
                Series(label=lab, variant=n, points=points(xs, ms[j]))
                for j, (n, lab) in enumerate(names)
            ],
            finding=f"Median time, written out / fused: {and_list(pairs)}.",
            **axes,
        ),
    ]


# ----------------------------------------------------------------------------- grouped-query


class GroupedQueryAttention(nn.Module):  # type: ignore[misc]  # torch is untyped here
    """Causal self-attention where each group of consecutive query heads shares one key/value
    head, converted from a trained CausalSelfAttention by averaging the key and value
    projections of the heads in each group (Ainslie et al. 2023). Its cache holds kv_heads."""

    def __init__(self, attn: CausalSelfAttention, kv_heads: int) -> None:
        super().__init__()
        c = attn.qkv.in_features
        self.n_head, self.kv_heads, self.rotary = attn.n_head, kv_heads, attn.rotary
        assert self.n_head % kv_heads == 0
        hs, group = c // self.n_head, self.n_head // kv_heads
        w_q, w_k, w_v = attn.qkv.weight.detach().split(c)  # each (c, c): heads along rows
        b_q, b_k, b_v = attn.qkv.bias.detach().split(c)

        def pool(p: torch.Tensor) -> torch.Tensor:  # (nh * hs, ...) -> (kv_heads * hs, ...)
            return p.reshape(kv_heads, group, hs, -1).mean(1).reshape(kv_heads * hs, *p.shape[1:])

        self.q = nn.Linear(c, c)
        self.kv = nn.Linear(c, 2 * kv_heads * hs)
        self.proj = copy.deepcopy(attn.proj)
        with torch.no_grad():
            self.q.weight.copy_(w_q)
            self.q.bias.copy_(b_q)
            self.kv.weight.copy_(torch.cat((pool(w_k), pool(w_v))))
            self.kv.bias.copy_(torch.cat((pool(b_k), pool(b_v))))

    def forward(
        self, x: torch.Tensor, past: KV | None, inspect: Inspect | None
    ) -> tuple[torch.Tensor, KV]:
        if inspect is not None:
            raise ValueError("grouped-query attention records or rescales no attention")
        b, t, c = x.shape  # batch, new tokens, n_embd
        nh, g = self.n_head, self.kv_heads
        hs = c // nh
        q = self.q(x).view(b, t, nh, hs).transpose(1, 2)  # (B, nh, t, hs)
        k, v = (z.view(b, t, g, hs).transpose(1, 2) for z in self.kv(x).split(g * hs, dim=2))
        offset = 0 if past is None else past[0].size(2)
        if self.rotary:
            q, k = rotate(q, offset), rotate(k, offset)
        if past is not None:  # the cache: (B, g, offset, hs) each
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        total = k.size(2)
        q = q.view(b, g, nh // g, t, hs)  # the query heads of each key/value head
        att = (q @ k[:, :, None].transpose(-2, -1)) / math.sqrt(hs)  # (B, g, nh/g, t, total)
        mask = torch.ones(t, total, dtype=torch.bool, device=x.device).tril(offset)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v[:, :, None]).reshape(b, nh, t, hs)  # (B, nh, t, hs)
        return self.proj(y.transpose(1, 2).reshape(b, t, c)), (k, v)


def grouped(model: GPT, kv_heads: int) -> GPT:
    """A copy of model whose every block attends with kv_heads shared key/value heads."""
    copied: GPT = copy.deepcopy(model)
    for block in copied.blocks:
        block.attn = GroupedQueryAttention(block.attn, kv_heads)
    return copied


def cache_bytes_per_token(presents: list[KV]) -> float:
    """Bytes the KV cache holds per token, from the tensors a forward pass returned."""
    b, _, t, _ = presents[0][0].shape
    held = sum(z.numel() * z.element_size() for kv in presents for z in kv)
    return float(held / (b * t))


def evaluate(model: GPT, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(perplexity, KV-cache bytes per token) on the windows x with targets y."""
    with torch.no_grad():
        logits, presents = model(x)
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    return math.exp(float(ce.item())), cache_bytes_per_token(presents)


def run_grouped(experiment: Experiment, params: GroupedParams, ctx: RunContext) -> EngineOutput:
    model: GPT = copy.deepcopy(ctx.lm.model)  # the served model is shared: load into a copy
    model.eval()
    block, n_head = model.config.block_size, model.config.n_head
    kv_heads = [n_head, n_head // 2, 1]  # mha, gqa-2, mqa
    ids = torch.tensor(glossary_text().val, dtype=torch.long)
    g = torch.Generator().manual_seed(params.seed)
    starts = torch.randint(0, len(ids) - block - 1, (params.windows,), generator=g)
    x, y = (z.to(ctx.device) for z in windows(ids, starts, block))
    steps = sorted(ctx.lm.checkpoints)
    chosen = {"final": steps[-1], "middle": steps[len(steps) // 2], "untrained": steps[0]}[
        params.checkpoint
    ]
    ppl: list[list[float]] = [[] for _ in kv_heads]  # per variant, per checkpoint
    cache: list[float] = []
    for i, step in enumerate(steps):
        ctx.check(i, len(steps))
        model.load_state_dict(ctx.lm.checkpoints[step])
        for j, heads in enumerate(kv_heads):
            p, per_token = evaluate(grouped(model, heads).to(ctx.device), x, y)
            ppl[j].append(p)
            if i == 0:
                cache.append(per_token)
        if ctx.wants_progress:
            ctx.progress(i + 1, len(steps), [_training_chart(steps[: i + 1], ppl, experiment)])
    at = steps.index(chosen)
    chosen_ppl = [p[at] for p in ppl]
    variants = [
        VariantResult(
            name=spec.name,
            label=spec.label,
            metrics={
                "kv_heads": float(heads),
                "kv_bytes_per_token": num(cache[j]),
                "perplexity": num(chosen_ppl[j]),
                "step": float(chosen),
            },
        )
        for j, (spec, heads) in enumerate(zip(experiment.variants, kv_heads, strict=True))
    ]
    cache_error = max(abs(c / cache[0] - h / n_head) for c, h in zip(cache, kv_heads, strict=True))
    run_metrics: dict[str, Number] = {
        "mqa_over_mha": num(chosen_ppl[2] / chosen_ppl[0]),
        "min_halving_ratio": num(min(chosen_ppl[1] / chosen_ppl[0], chosen_ppl[2] / chosen_ppl[1])),
        "max_cache_ratio_error": num(cache_error),
        "checkpoint_step": float(chosen),
    }
    labels = [v.label for v in variants]
    sizes = and_list([f"{c:.0f} ({lab})" for c, lab in zip(cache, labels, strict=True)])
    scores = and_list([f"{p:.2f} ({lab})" for p, lab in zip(chosen_ppl, labels, strict=True)])
    charts = [
        _bar("cache", "KV-cache bytes per token", labels, cache, f"Bytes per token: {sizes}."),
        _bar("perplexity", "Held-out perplexity", labels, chosen_ppl, f"Perplexity: {scores}."),
        _training_chart(steps, ppl, experiment),
    ]
    summary = (
        f"Converted at step {chosen}, the model's KV cache went from {cache[0]:.0f} bytes per "
        f"token with {n_head} key/value heads to {cache[1]:.0f} with {kv_heads[1]} and "
        f"{cache[2]:.0f} with one, while its held-out perplexity went from {chosen_ppl[0]:.2f} to "
        f"{chosen_ppl[1]:.2f} and {chosen_ppl[2]:.2f}."
    )
    return EngineOutput(variants, charts, summary, run_metrics)


def _bar(chart_id: str, title: str, labels: list[str], ys: list[float], finding: str) -> Chart:
    series = [Series(label=title, points=points([float(j) for j in range(len(ys))], ys))]
    return Chart(
        id=chart_id,
        kind="bar",
        title=title,
        x_label="attention",
        y_label=title.lower(),
        categories=labels,
        series=series,
        finding=finding,
    )


def _training_chart(steps: list[int], ppl: list[list[float]], experiment: Experiment) -> Chart:
    n, xs = len(ppl[0]), [float(s) for s in steps]
    return Chart(
        id="training",
        kind="line",
        title="Held-out perplexity of each conversion along training",
        x_label="training step of the checkpoint converted",
        y_label="perplexity",
        y_log=True,
        series=[
            Series(label=spec.label, variant=spec.name, points=points(xs, ppl[j]))
            for j, spec in enumerate(experiment.variants)
        ],
        finding=f"At step {steps[0]} the conversions scored "
        + " / ".join(f"{p[0]:.1f}" for p in ppl)
        + f"; at step {steps[n - 1]}, "
        + " / ".join(f"{p[n - 1]:.1f}" for p in ppl)
        + " (multi-head / grouped / multi-query).",
    )
