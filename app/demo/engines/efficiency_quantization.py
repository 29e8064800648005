"""Quantization of the server's trained model: its linear layers' weights and inputs rounded to
few bits (fake quantization: quantize, then dequantize in float32), per tensor or per channel,
with and without an outlier feature, scored on held-out windows against the float32 model.

The outlier is made without changing what the model computes: one feature of every block's
layer-norm outputs is multiplied by a factor (its weight and bias) and the next linear layer's
input column for it divided by the same factor.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from app.demo.engines.common import and_list, fmt, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.efficiency_inference import (
    ACTIVATION_BITS,
    OUTLIER_THRESHOLD,
    QuantizationParams,
)
from app.demo.lm.gpt import GPT
from app.demo.lm.text import glossary_text
from app.demo.lm.training import eval_starts, windows
from app.demo.result import Chart, Number, Series, VariantResult

LAYERS = ("qkv", "proj", "mlp in", "mlp out")  # the quantized linear layers of each block


@dataclass(frozen=True)
class Scheme:
    """How a linear layer is rounded."""

    bits: int  # of the weights
    per_channel: bool  # weights per output channel and inputs per token, else one scale each
    threshold: float | None = None  # LLM.int8(): input features above it stay in float32


def fake_quantize(x: torch.Tensor, bits: int, dim: int | None) -> torch.Tensor:
    """Symmetric round-to-nearest to signed `bits`-bit integers, back in x's dtype: one scale
    for the whole tensor (dim None) or one per slice, taken as the max |x| along dim."""
    qmax = 2 ** (bits - 1) - 1  # 127 for int8, 7 for int4: symmetric, -qmax..qmax
    amax = x.abs().max() if dim is None else x.abs().amax(dim=dim, keepdim=True)
    scale = amax.clamp(min=1e-12) / qmax  # an all-zero slice keeps a harmless scale
    return (x / scale).round().clamp(-qmax, qmax) * scale


class QuantLinear(nn.Module):  # type: ignore[misc]  # torch is untyped here
    """A trained nn.Linear whose weights and inputs are fake-quantized on every call; records
    the relative error of its output against the float layer on the same input."""

    def __init__(self, linear: nn.Linear, scheme: Scheme) -> None:
        super().__init__()
        self.weight = linear.weight.detach()  # (out, in)
        self.bias = None if linear.bias is None else linear.bias.detach()
        self.scheme = scheme
        self.w_dim = 1 if scheme.per_channel else None  # max over the inputs of each row
        self.x_dim = -1 if scheme.per_channel else None  # max over the features of each token
        self.w_q = fake_quantize(self.weight, scheme.bits, self.w_dim)
        self.errors: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        y_float = F.linear(x, self.weight, self.bias)
        threshold = self.scheme.threshold
        outliers = None
        if threshold is not None:  # features with any |value| above it, in this batch
            outliers = (x.abs() > threshold).flatten(0, -2).any(0)  # (in,)
        if outliers is None or not bool(outliers.any()):
            y = F.linear(fake_quantize(x, ACTIVATION_BITS, self.x_dim), self.w_q, self.bias)
        else:  # X W^T = X_o W_o^T in float + the rest quantized (Dettmers et al. 2022)
            x_rest = x.masked_fill(outliers, 0.0)
            w_rest = self.weight.masked_fill(outliers, 0.0)
            y = F.linear(
                fake_quantize(x_rest, ACTIVATION_BITS, self.x_dim),
                fake_quantize(w_rest, self.scheme.bits, self.w_dim),
                self.bias,
            )
            y = y + F.linear(x - x_rest, self.weight - w_rest)
        self.errors.append(float(((y - y_float).norm() / y_float.norm()).item()))
        return y


def linears(model: GPT) -> list[tuple[nn.Module, str]]:
    """(parent, attribute) of every quantized linear layer, in LAYERS order per block."""
    out: list[tuple[nn.Module, str]] = []
    for block in model.blocks:
        out += [(block.attn, "qkv"), (block.attn, "proj"), (block.mlp, "0"), (block.mlp, "2")]
    return out


def quantized(model: GPT, scheme: Scheme) -> tuple[GPT, list[QuantLinear]]:
    """A copy of model with every block's linear layers replaced by QuantLinear."""
    copied: GPT = copy.deepcopy(model)
    layers: list[QuantLinear] = []
    for parent, name in linears(copied):
        layer = QuantLinear(getattr(parent, name), scheme)
        setattr(parent, name, layer)
        layers.append(layer)
    return copied, layers


def with_outlier(model: GPT, feature: int, factor: float) -> GPT:
    """A copy computing the same function whose layer norms output `feature` x factor."""
    copied: GPT = copy.deepcopy(model)
    with torch.no_grad():
        for block in copied.blocks:
            for norm, linear in ((block.ln_1, block.attn.qkv), (block.ln_2, block.mlp[0])):
                norm.weight[feature] *= factor
                norm.bias[feature] *= factor
                linear.weight[:, feature] /= factor
    return copied


def log_probs(model: GPT, x: torch.Tensor) -> torch.Tensor:
    """(B, T) tokens -> (B, T, vocab) next-token log-probabilities, float64."""
    with torch.no_grad():
        logits, _ = model(x)
    return logits.double().log_softmax(-1)


def perplexity(lp: torch.Tensor, y: torch.Tensor) -> float:
    return math.exp(-float(lp.gather(-1, y[..., None]).mean().item()))


def kl_divergence(ref: torch.Tensor, lp: torch.Tensor) -> float:
    """Mean KL(ref || lp) per token, in nats: how far lp's predictions moved from ref's."""
    return float((ref.exp() * (ref - lp)).sum(-1).mean().item())


def _p(x: Number) -> str:
    """A perplexity for a sentence: two decimals (fmt's two digits hide int8's change)."""
    return "undefined" if x is None else f"{x:.2f}"


def _ratio(a: Number, b: Number) -> Number:
    return None if a is None or b is None or b == 0 else num(a / b)


def run(experiment: Experiment, params: QuantizationParams, ctx: RunContext) -> EngineOutput:
    model: GPT = copy.deepcopy(ctx.lm.model).to(ctx.device)  # the served model is shared
    model.eval()
    block = model.config.block_size
    ids = torch.tensor(glossary_text().val, dtype=torch.long)
    x, y = (
        t.to(ctx.device) for t in windows(ids, eval_starts(len(ids), block, params.windows), block)
    )
    g = torch.Generator().manual_seed(params.seed)
    feature = int(torch.randint(model.config.n_embd, (1,), generator=g).item())
    outlier = with_outlier(model, feature, params.outlier_factor)
    low = params.low_bits
    schemes: list[tuple[GPT, Scheme | None]] = [
        (model, None),
        (model, Scheme(8, False)),
        (model, Scheme(8, True)),
        (model, Scheme(low, False)),
        (model, Scheme(low, True)),
        (outlier, Scheme(8, False)),
        (outlier, Scheme(8, True)),
        (outlier, Scheme(8, True, OUTLIER_THRESHOLD)),
    ]
    total = len(schemes) + 1
    ref = log_probs(model, x)
    ppl_float = perplexity(ref, y)
    ctx.check(0, total)
    outlier_change = abs(perplexity(log_probs(outlier, x), y) / ppl_float - 1)
    kl: list[Number] = []
    ppl: list[Number] = []
    layer_errors: list[list[float]] = []
    for i, (base, scheme) in enumerate(schemes):
        ctx.check(i + 1, total)
        if scheme is None:
            kl.append(0.0)
            ppl.append(num(ppl_float))
            layer_errors.append([])
            continue
        q_model, layers = quantized(base, scheme)
        lp = log_probs(q_model, x)
        kl.append(num(kl_divergence(ref, lp)))
        ppl.append(num(perplexity(lp, y)))
        layer_errors.append([layer.errors[-1] for layer in layers])
        ctx.progress(i + 2, total)

    names = [v.name for v in experiment.variants]
    labels = [v.label.replace("low bits", f"int{low}") for v in experiment.variants]
    mean_error = [num(sum(e) / len(e)) if e else 0.0 for e in layer_errors]
    variants = []
    for i, (name, (_, scheme)) in enumerate(zip(names, schemes, strict=True)):
        metrics: dict[str, Number] = {
            "bits": 32.0 if scheme is None else float(scheme.bits),
            "activation_bits": 32.0 if scheme is None else float(ACTIVATION_BITS),
            "perplexity": ppl[i],
            "kl_divergence": kl[i],
            "mean_layer_error": mean_error[i],
        }
        variants.append(VariantResult(name=name, label=labels[i], metrics=metrics))
    k = dict(zip(names, kl, strict=True))
    run_metrics: dict[str, Number] = {
        "kl_low_over_int8": _ratio(k["int4-tensor"], k["int8-tensor"]),
        "layer_error_channel_over_tensor": _ratio(mean_error[4], mean_error[3]),
        "kl_outlier_over_int8": _ratio(k["int8-outlier-tensor"], k["int8-tensor"]),
        "kl_vector_over_tensor_outlier": _ratio(k["int8-outlier-vector"], k["int8-outlier-tensor"]),
        "kl_mixed_over_channel": _ratio(k["int8-outlier-mixed"], k["int8-channel"]),
        "outlier_float_change": num(outlier_change),
        "outlier_feature": float(feature),
    }
    charts = _charts(model.config.n_layer, labels, names, kl, ppl, layer_errors)
    summary = (
        f"Rounded to int{low} per tensor the model's held-out perplexity went from "
        f"{_p(ppl[0])} to {_p(ppl[3])} (int8 per tensor: {_p(ppl[1])}, int{low} per channel: "
        f"{_p(ppl[4])}); with feature {feature} made {params.outlier_factor:g} times larger, "
        f"per-tensor int8 gave {_p(ppl[5])}, vector-wise {_p(ppl[6])} and LLM.int8()'s "
        f"decomposition {_p(ppl[7])}."
    )
    return EngineOutput(variants, charts, summary, run_metrics)


def _charts(
    n_layer: int,
    labels: list[str],
    names: list[str],
    kl: list[Number],
    ppl: list[Number],
    layer_errors: list[list[float]],
) -> list[Chart]:
    layer_names = [f"{b + 1} {layer}" for b in range(n_layer) for layer in LAYERS]
    kl_text = and_list([f"{fmt(v)} ({lab})" for v, lab in zip(kl[1:], labels[1:], strict=True)])
    worst = max(range(1, len(ppl)), key=lambda i: ppl[i] or math.inf)
    return [
        Chart(
            id="kl",
            kind="bar",
            title="How far each version's predictions move from float32",
            x_label="version",
            y_label="KL divergence from float32 (nats per token)",
            y_log=True,
            categories=labels[1:],
            series=[Series(label="KL divergence", points=list(enumerate_points(kl[1:])))],
            finding=f"KL divergence from float32: {kl_text}.",
        ),
        Chart(
            id="perplexity",
            kind="bar",
            title="Held-out perplexity of each version",
            x_label="version",
            y_label="perplexity",
            categories=labels,
            series=[Series(label="perplexity", points=list(enumerate_points(ppl)))],
            finding=f"float32 scored {fmt(ppl[0])}; the worst, {labels[worst]}, {fmt(ppl[worst])}.",
        ),
        Chart(
            id="layer-error",
            kind="bar",
            title="Relative error of each quantized layer's output",
            x_label="block and layer",
            y_label="|XW^T - quantized| / |XW^T|",
            y_log=True,
            categories=layer_names,
            series=[
                Series(label=labels[i], variant=names[i], points=list(enumerate_points(errors)))
                for i, errors in enumerate(layer_errors)
                if errors
            ],
            finding="Mean relative error of the layers' outputs: "
            + and_list(
                [f"{fmt(sum(e) / len(e))} ({labels[i]})" for i, e in enumerate(layer_errors) if e]
            )
            + ".",
        ),
    ]


def enumerate_points(values: list[Number] | list[float]) -> list[tuple[float, Number]]:
    return [(float(i), None if v is None else num(v)) for i, v in enumerate(values)]
