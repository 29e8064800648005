"""RNN-vs-LSTM engine: how much of the final loss's gradient reaches each input token.

The same batch of random +-1 sequences goes through a tanh RNN and an LSTM (torch's nn.RNN
and nn.LSTM) at initialization, each with a linear readout of its last hidden state (the
same readout weights for both); the target is the first token's sign. Backpropagation
through time gives dL/dx_t for every step t; its norm over the batch says how much the
loss can still hear token t.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from app.demo.engines.common import and_list, fmt, num
from app.demo.engines.signal_propagation_common import generator, log_series
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.architectures import RecurrentParams
from app.demo.result import Chart, Number, Series, VariantResult

# A plain RNN's gradient falls by ~0.6 per step: 1e-90 after 400 steps, below float32's
# smallest number (1e-38) and far below its denormals, which are flushed to zero. float64
# keeps every step measurable; at initialization it costs little.
DTYPE = torch.float64


def make_net(kind: str, p: RecurrentParams, g: torch.Generator) -> nn.Module:
    """nn.RNN or nn.LSTM with torch's default init U(-1/sqrt(H), 1/sqrt(H)) drawn from g."""
    net: nn.Module = (nn.LSTM if kind == "lstm" else nn.RNN)(1, p.hidden, batch_first=True)
    net = net.to(DTYPE)
    k = 1 / math.sqrt(p.hidden)
    with torch.no_grad():
        for w in net.parameters():
            w.uniform_(-k, k, generator=g)
        if kind == "lstm":  # gates are stacked (input, forget, cell, output), H rows each
            forget = slice(p.hidden, 2 * p.hidden)
            net.bias_ih_l0[forget] = p.forget_bias
            net.bias_hh_l0[forget] = 0.0
    return net


def token_gradients(
    net: nn.Module, readout: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """(B, T, 1) tokens -> (T,): ||dL/dx_t|| over the batch, L the logistic loss at step T."""
    x = x.clone().requires_grad_(True)
    out, _ = net(x)  # (B, T, H)
    logits = out[:, -1] @ readout  # (B,)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad.squeeze(-1).norm(dim=0)


def log_linear_r2(gs: list[float]) -> Number:
    """R^2 of a straight-line fit of log10 g_t against t: 1 for an exact exponential decay."""
    if len(gs) < 3 or min(gs) <= 0:
        return None
    y = torch.log10(torch.tensor(gs, dtype=DTYPE))
    t = torch.arange(len(gs), dtype=DTYPE)
    tc, yc = t - t.mean(), y - y.mean()
    ss_tot = (yc * yc).sum()
    if ss_tot == 0:
        return None
    slope = (tc * yc).sum() / (tc * tc).sum()
    return num(1 - ((yc - slope * tc) ** 2).sum().item() / ss_tot.item())


def run(experiment: Experiment, params: RecurrentParams, ctx: RunContext) -> EngineOutput:
    """dL/dx_t at initialization for each network, on the same sequences."""
    dev = torch.device(ctx.device)
    g = generator(params.seed)
    x = torch.randint(0, 2, (params.batch_size, params.seq_len, 1), generator=g).to(DTYPE) * 2 - 1
    y = (x[:, 0, 0] > 0).to(DTYPE)  # the first token's sign
    readout = (torch.rand(params.hidden, generator=g, dtype=DTYPE) * 2 - 1) / math.sqrt(
        params.hidden
    )
    x, y, readout = x.to(dev), y.to(dev), readout.to(dev)

    grads: dict[str, list[float]] = {}
    for k, v in enumerate(experiment.variants):
        ctx.check(k, len(experiment.variants))
        net = make_net(v.name, params, g).to(dev)
        grads[v.name] = token_gradients(net, readout, x, y).tolist()
        if ctx.wants_progress:
            ctx.progress(k + 1, len(experiment.variants), [gradient_chart(experiment, grads)])

    results = [
        VariantResult(name=v.name, label=v.label, metrics=_metrics(grads[v.name]))
        for v in experiment.variants
    ]
    by = {r.name: r.metrics for r in results}
    rnn, lstm = by["rnn"]["first_over_last"], by["lstm"]["first_over_last"]
    return EngineOutput(
        variants=results,
        charts=[gradient_chart(experiment, grads), factor_chart(results)],
        summary=_summary(params, by),
        run_metrics={
            "lstm_over_rnn_first_over_last": None if lstm is None or not rnn else lstm / rnn
        },
    )


def _metrics(gs: list[float]) -> dict[str, Number]:
    ratio = num(gs[0] / gs[-1]) if gs[-1] > 0 else None
    factor = ratio ** (1 / (len(gs) - 1)) if ratio is not None and ratio > 0 else None
    return {
        "first_over_last": ratio,
        "per_step_factor": num(factor) if factor is not None else None,
        "log_linear_r2": log_linear_r2(gs),
        "last_token_gradient": num(gs[-1]),
    }


def gradient_chart(experiment: Experiment, grads: dict[str, list[float]]) -> Chart:
    firsts = [
        f"{fmt(grads[v.name][0] / grads[v.name][-1])} ({v.label})"
        for v in experiment.variants
        if v.name in grads
    ]
    return Chart(
        id="gradient",
        kind="line",
        title="Gradient of the final loss with respect to each token (log scale)",
        x_label="token t (1 = the one to remember)",
        y_label="||dL/dx_t||",
        y_log=True,
        series=[
            log_series(v.label, v.name, grads[v.name], x0=1)
            for v in experiment.variants
            if v.name in grads
        ],
        finding="The first token gets " + and_list(firsts) + " times the gradient of the last.",
    )


def factor_chart(results: list[VariantResult]) -> Chart:
    factors = [r.metrics["per_step_factor"] for r in results]
    return Chart(
        id="factor",
        kind="bar",
        title="Factor the gradient is multiplied by per step back through time",
        x_label="network",
        y_label="per-step factor (geometric mean)",
        categories=[r.label for r in results],
        series=[
            Series(label="per-step factor", points=[(float(i), f) for i, f in enumerate(factors)])
        ],
        finding="Per step back the gradient is multiplied by "
        + and_list([f"{fmt(f)} ({r.label})" for f, r in zip(factors, results, strict=True)])
        + " on average.",
    )


def _summary(p: RecurrentParams, by: dict[str, dict[str, Number]]) -> str:
    return (
        f"{p.seq_len - 1} steps back from the loss, the first token's gradient is "
        f"{fmt(by['rnn']['first_over_last'])} times the last token's in the RNN and "
        f"{fmt(by['lstm']['first_over_last'])} times in the LSTM (forget-gate bias "
        f"{p.forget_bias:g})."
    )
