"""Rank-collapse engine: how far a stack of attention layers keeps tokens from rank 1.

One random token matrix X (n tokens x d) and one set of random layer weights go through
four variants at once (a leading variant axis K): attention alone, attention then an MLP,
attention with a skip, and the full block. After every layer it measures each variant's
relative residual ||X - 1 mean(X)||_F / ||X||_F: the distance from the nearest matrix whose
rows are all equal (rank 1), the measure of Dong et al. (2021) in the Frobenius norm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from app.demo.engines.common import and_list, fmt, num
from app.demo.engines.signal_propagation_common import DTYPE, generator, log_series
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.signal_propagation import BlockVariant, RankCollapseParams
from app.demo.result import Chart, Number, VariantResult

FLOOR = 1e-13  # float64 rounding of a rank-1 matrix reads as about 1e-16 here


@dataclass
class Layer:
    """One layer's weights, shared by every variant."""

    wq: torch.Tensor  # (d, d)
    wk: torch.Tensor  # (d, d)
    wv: torch.Tensor  # (d, d)
    wo: torch.Tensor  # (d, d)
    w1: torch.Tensor  # (d, 4d) MLP in
    w2: torch.Tensor  # (4d, d) MLP out


def make_layer(g: torch.Generator, d: int, dev: torch.device) -> Layer:
    """Gaussian weights that keep a token's norm: variance 1/fan_in (2/fan_in before a ReLU)."""

    def w(rows: int, cols: int, gain: float = 1.0) -> torch.Tensor:
        return (torch.randn(rows, cols, generator=g, dtype=DTYPE) * math.sqrt(gain / rows)).to(dev)

    return Layer(w(d, d), w(d, d), w(d, d), w(d, d), w(d, 4 * d, 2.0), w(4 * d, d))


def attention(x: torch.Tensor, layer: Layer, heads: int) -> torch.Tensor:
    """Multi-head self-attention (no mask): (K, n, d) -> (K, n, d)."""
    k_, n, d = x.shape
    hd = d // heads

    def split(t: torch.Tensor) -> torch.Tensor:  # (K, n, d) -> (K, heads, n, hd)
        return t.view(k_, n, heads, hd).transpose(1, 2)

    q, k, v = split(x @ layer.wq), split(x @ layer.wk), split(x @ layer.wv)
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)  # (K, heads, n, n)
    return (a @ v).transpose(1, 2).reshape(k_, n, d) @ layer.wo


def mlp(x: torch.Tensor, layer: Layer) -> torch.Tensor:
    """The transformer's position-wise MLP, d -> 4d -> d with a ReLU."""
    return torch.relu(x @ layer.w1) @ layer.w2


def residual(x: torch.Tensor) -> torch.Tensor:
    """(K, n, d) -> (K,): ||X - 1 mean(X)||_F / ||X||_F (the mean token is the best rank-1 fit
    of the form 1 x^T in the Frobenius norm)."""
    r = x - x.mean(dim=1, keepdim=True)
    return r.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)


def forward_layer(
    x: torch.Tensor, layer: Layer, variants: tuple[BlockVariant, ...], p: RankCollapseParams
) -> torch.Tensor:
    """One layer for every variant: (K, n, d) -> (K, n, d)."""

    def norm(t: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(t, t.shape[-1:]) if p.layernorm == "pre" else t

    skip = torch.tensor([v.skip for v in variants], dtype=DTYPE, device=x.device)[:, None, None]
    with_mlp = [k for k, v in enumerate(variants) if v.mlp]
    x = skip * x + attention(norm(x), layer, p.heads)  # X + SA(X) or SA(X)
    x_mlp = x[with_mlp]
    x[with_mlp] = skip[with_mlp] * x_mlp + mlp(norm(x_mlp), layer)
    return x


def run(experiment: Experiment, params: RankCollapseParams, ctx: RunContext) -> EngineOutput:
    """Push the same tokens through every variant; the residual after every layer."""
    variants = tuple(v for v in experiment.variants if isinstance(v, BlockVariant))
    dev = torch.device(ctx.device)
    g = generator(params.seed)
    d = params.heads * params.head_dim
    x0 = torch.randn(params.tokens, d, generator=g, dtype=DTYPE).to(dev)  # (n, d)
    x = x0.expand(len(variants), -1, -1).clone()  # (K, n, d): the same tokens for every variant
    residuals = [residual(x).tolist()]  # per layer, (K,)
    every = max(1, params.depth // 4)
    for layer_index in range(params.depth):
        ctx.check(layer_index, params.depth)
        x = forward_layer(x, make_layer(g, d, dev), variants, params)
        residuals.append(residual(x).tolist())
        if ctx.wants_progress and (layer_index + 1) % every == 0:
            by_variant = [[r[k] for r in residuals] for k in range(len(variants))]
            ctx.progress(layer_index + 1, params.depth, [residual_chart(variants, by_variant)])

    by_variant = [[r[k] for r in residuals] for k in range(len(variants))]  # (K, depth + 1)
    spectra = torch.linalg.svdvals(x)  # (K, min(n, d)), descending
    spectra = (spectra / spectra[:, :1]).tolist()
    results = [
        VariantResult(name=v.name, label=v.label, metrics=_metrics(by_variant[k], spectra[k]))
        for k, v in enumerate(variants)
    ]
    return EngineOutput(
        variants=results,
        charts=[residual_chart(variants, by_variant), spectrum_chart(variants, spectra)],
        summary=_summary(params, results, by_variant[0][0]),
    )


def _metrics(res: list[float], spectrum: list[float]) -> dict[str, Number]:
    # Orders of magnitude each layer removes: d_l = log10(r_{l-1} / r_l); a doubly
    # exponential fall (r_l ~ r_{l-1}^3) makes d_3 about 3 d_2, a geometric one d_3 = d_2.
    drops = [math.log10(a / b) if b > FLOOR else None for a, b in zip(res, res[1:], strict=False)]
    growth = None
    if len(drops) >= 3 and drops[1] is not None and drops[2] is not None and drops[1] > 0:
        growth = drops[2] / drops[1]
    return {
        "initial_residual": num(res[0]),
        "final_residual": num(res[-1]),
        "log_shrink_growth": growth,
        "second_singular_value": num(spectrum[1]) if len(spectrum) > 1 else None,
    }


def residual_chart(variants: tuple[BlockVariant, ...], res: list[list[float]]) -> Chart:
    last = {v.name: res[k][-1] for k, v in enumerate(variants)}
    depth = len(res[0]) - 1
    rounding = (
        "; values near 1e-16 are float64 rounding of an exactly rank-1 matrix"
        if min(last.values()) < FLOOR
        else ""
    )
    return Chart(
        id="residual",
        kind="line",
        title="Distance of the tokens from rank 1, by layer (log scale)",
        x_label="layer (0 = the input tokens)",
        y_label="||X - 1 mean(X)|| / ||X||",
        y_log=True,
        series=[log_series(v.label, v.name, res[k]) for k, v in enumerate(variants)],
        finding=(
            f"After {layers(depth)} the residual is {fmt(last['attention'])} with attention "
            f"alone and {fmt(last['attention-skip'])} with skips (input {fmt(res[0][0])})"
            f"{rounding}."
        ),
    )


def spectrum_chart(variants: tuple[BlockVariant, ...], spectra: list[list[float]]) -> Chart:
    second = [
        f"{fmt(spectra[k][1] if len(spectra[k]) > 1 else None)} ({v.label})"
        for k, v in enumerate(variants)
    ]
    return Chart(
        id="spectrum",
        kind="line",
        title="Singular values of the final tokens, over the largest (log scale)",
        x_label="index",
        y_label="singular value / largest",
        y_log=True,
        series=[log_series(v.label, v.name, spectra[k], x0=1) for k, v in enumerate(variants)],
        finding="The second singular value over the first is " + and_list(second) + ".",
    )


def _summary(p: RankCollapseParams, rs: list[VariantResult], start: float) -> str:
    parts = [f"{fmt(r.metrics['final_residual'])} ({r.label})" for r in rs]
    return (
        f"The tokens start at a relative distance {fmt(start)} from rank 1; after "
        f"{layers(p.depth)} it is {and_list(parts)}."
    )


def layers(n: int) -> str:
    return f"{n} layer" if n == 1 else f"{n} layers"
