"""Mixed precision: one forward and backward pass of the server's model on the same batch in
float32, float16, float16 with loss scaling and bfloat16, every gradient entry compared with
float32's (Micikevicius et al. 2018).

Each low-precision run casts a copy of the model (weights and activations) to its dtype; the
cross-entropy is computed in float32 from the cast logits, as torch's autocast does, so the
gradient is rounded to the dtype where it enters the logits. The scaled run multiplies the
loss by loss_scale before backward() and divides the gradients by it after converting them to
float32, as a mixed-precision optimizer does before updating its float32 master weights.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from app.demo.engines.common import fmt, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.efficiency_training import (
    FLOAT16_MAX,
    FLOAT16_NORMAL,
    FLOAT16_SUBNORMAL,
    PRECISION_VARIANTS,
    PrecisionParams,
)
from app.demo.lm.gpt import GPT
from app.demo.lm.text import glossary_text
from app.demo.lm.training import windows
from app.demo.result import Chart, Number, Series, VariantResult

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
HIST_LOW, HIST_HIGH = -48, 4  # log2 |gradient| range of the histogram, one bin per power of 2


@dataclass
class Gradients:
    """One run's gradients, converted to float32 and unscaled, flattened."""

    weights: torch.Tensor  # every parameter's gradient, concatenated
    logits: torch.Tensor  # d loss / d logits, (B*T*vocab,)
    loss: float
    seconds: float

    @property
    def all(self) -> torch.Tensor:
        return torch.cat((self.weights, self.logits))


def gradients(
    model: GPT, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype, scale: float, device: str
) -> Gradients:
    """Forward and backward of a copy of model in dtype, the loss multiplied by scale."""
    m = copy.deepcopy(model).to(device=device, dtype=dtype)
    m.train()
    sync(device)
    t0 = time.perf_counter()
    logits, _ = m(x)  # (B, T, vocab) in dtype
    logits.retain_grad()
    loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
    (loss * scale).backward()
    sync(device)
    seconds = time.perf_counter() - t0
    weights = torch.cat([p.grad.float().reshape(-1) for p in m.parameters()]) / scale
    d_logits = logits.grad.float().reshape(-1) / scale
    return Gradients(weights.cpu(), d_logits.cpu(), float(loss.item()), seconds)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def underflow(reference: torch.Tensor, got: torch.Tensor) -> Number:
    """Share of the entries non-zero in reference that are exactly zero in got."""
    nonzero = reference != 0
    n = int(nonzero.sum())
    return int((nonzero & (got == 0)).sum()) / n if n else None


def relative_error(reference: torch.Tensor, got: torch.Tensor) -> Number:
    """||got - reference|| / ||reference|| (float64), None if got is not finite."""
    if not bool(torch.isfinite(got).all()):
        return None
    ref = reference.double()
    return num(float((got.double() - ref).norm() / ref.norm()))


def histogram(g: torch.Tensor) -> list[tuple[float, Number]]:
    """Share of the non-zero entries of g in each power-of-2 bin of |g| (x = bin's log2)."""
    logs = g[g != 0].abs().log2().floor().clamp(HIST_LOW, HIST_HIGH)
    counts = torch.bincount((logs - HIST_LOW).long(), minlength=HIST_HIGH - HIST_LOW + 1)
    total = max(int(counts.sum()), 1)
    return [(float(HIST_LOW + i), c / total) for i, c in enumerate(counts.tolist())]


def run(experiment: Experiment, params: PrecisionParams, ctx: RunContext) -> EngineOutput:
    model: GPT = ctx.lm.model  # each run deep-copies it before casting
    block = model.config.block_size
    ids = torch.tensor(glossary_text().train, dtype=torch.long)
    g = torch.Generator().manual_seed(params.seed)
    starts = torch.randint(0, len(ids) - block - 1, (params.windows,), generator=g)
    x, y = (t.to(ctx.device) for t in windows(ids, starts, block))
    runs = {
        "float32": (torch.float32, 1.0),
        "float16": (torch.float16, 1.0),
        "float16-scaled": (torch.float16, params.loss_scale),
        "bfloat16": (torch.bfloat16, 1.0),
    }
    grads: dict[str, Gradients] = {}
    for i, (name, (dtype, scale)) in enumerate(runs.items()):
        ctx.check(i, len(runs))
        grads[name] = gradients(model, x, y, dtype, scale, ctx.device)
        ctx.progress(i + 1, len(runs))
    ref = grads["float32"]
    variants: list[VariantResult] = []
    for name, label, _ in PRECISION_VARIANTS:
        got = grads[name]
        everything = got.all
        variants.append(
            VariantResult(
                name=name,
                label=label,
                metrics={
                    "underflow_fraction": underflow(ref.all, everything),
                    "weight_underflow_fraction": underflow(ref.weights, got.weights),
                    "logit_grad_underflow_fraction": underflow(ref.logits, got.logits),
                    "weight_grad_relative_error": relative_error(ref.weights, got.weights),
                    "overflow_entries": float(int((~torch.isfinite(everything)).sum())),
                    "loss": num(got.loss),
                    "loss_scale": runs[name][1],
                    "milliseconds": round(1000 * got.seconds, 2),
                },
            )
        )
    m = {v.name: v.metrics for v in variants}
    lost, lost_scaled = (
        m["float16"]["underflow_fraction"],
        m["float16-scaled"]["underflow_fraction"],
    )
    err_b, err_s = (
        m["bfloat16"]["weight_grad_relative_error"],
        m["float16-scaled"]["weight_grad_relative_error"],
    )
    overflowed = bool(m["float16-scaled"]["overflow_entries"])
    run_metrics: dict[str, Number] = {
        # undefined when float16 lost nothing (nothing for scaling to keep) or when the scaled
        # gradients overflowed (unusable: a dynamic loss scaler would skip the step)
        "kept_by_scaling": None
        if not lost or lost_scaled is None or overflowed
        else num(1 - lost_scaled / lost),
        "bfloat16_over_float16_error": None if not err_b or not err_s else num(err_b / err_s),
        "gradient_entries": float(ref.all.numel()),
        "smallest_float32_gradient": num(float(ref.all[ref.all != 0].abs().min())),
    }
    charts = [histogram_chart(ref, grads, params), underflow_chart(variants)]
    scaled = f"with the loss scaled by {params.loss_scale:g}, " + (
        f"{m['float16-scaled']['overflow_entries']:.0f} entries overflowed (a loss scaler "
        "would skip this step)"
        if overflowed
        else f"it lost {pct(lost_scaled)} ({pct(run_metrics['kept_by_scaling'])} of "
        "float16's losses kept)"
    )
    summary = (
        f"Of {ref.all.numel():,} gradient entries float16 flushed {pct(lost)} to zero; "
        f"{scaled}; bfloat16 lost {pct(m['bfloat16']['underflow_fraction'])}, but its weight "
        f"gradients were off by {pct(err_b)} against {pct(err_s)} for scaled float16 "
        f"(measured on {ctx.device})."
    )
    return EngineOutput(variants, charts, summary, run_metrics)


def pct(x: Number) -> str:
    if x is None or not math.isfinite(x):
        return "undefined"
    return f"{100 * x:.3g}%"


def histogram_chart(ref: Gradients, grads: dict[str, Gradients], params: PrecisionParams) -> Chart:
    """float32's gradient magnitudes, those float16 flushed to zero, float16's limits."""
    half = grads["float16"]
    lost = ref.all[(ref.all != 0) & (half.all == 0)]
    lost_logits = ref.logits[(ref.logits != 0) & (half.logits == 0)]
    largest = float(lost_logits.abs().max()) if lost_logits.numel() else None
    total = ref.all.numel()
    ref_hist = histogram(ref.all)
    top = max((v or 0.0) for _, v in ref_hist)
    lost_hist = [
        (x, v * lost.numel() / total if v is not None else None) for x, v in histogram(lost)
    ]

    def marker(label: str, x: float) -> Series:
        return Series(label=label, points=[(x, 0.0), (x, top)], style="dashed")

    return Chart(
        id="histogram",
        kind="line",
        title="Gradient magnitudes in float32, and float16's range",
        x_label="log2 |gradient|",
        y_label="share of gradient entries",
        series=[
            Series(label="float32 gradients", variant="float32", points=ref_hist),
            Series(
                label="flushed to zero in float16",
                variant="float16",
                points=lost_hist,
                style="points",
            ),
            marker("float16's smallest subnormal (6e-8)", math.log2(FLOAT16_SUBNORMAL)),
            marker("float16's smallest normal (6e-5)", math.log2(FLOAT16_NORMAL)),
            marker(
                f"float16's largest, divided by the loss scale {params.loss_scale:g}",
                math.log2(FLOAT16_MAX / params.loss_scale),
            ),
        ],
        finding=(
            f"float16 flushed {pct(lost.numel() / total)} of the entries to zero: "
            f"{pct(underflow(ref.logits, half.logits))} of the logits' gradient, none "
            f"above {fmt(largest)} in float32 (float16's smallest subnormal is "
            f"{fmt(FLOAT16_SUBNORMAL)}), and {pct(underflow(ref.weights, half.weights))} "
            "of the weights', sums of those."
        ),
    )


def underflow_chart(variants: list[VariantResult]) -> Chart:
    values = [v.metrics["underflow_fraction"] for v in variants]
    return Chart(
        id="underflow",
        kind="bar",
        title="Share of gradient entries flushed to zero",
        x_label="precision",
        y_label="share of entries non-zero in float32, zero here",
        categories=[v.label for v in variants],
        series=[Series(label="underflow", points=[(float(i), u) for i, u in enumerate(values)])],
        finding=", ".join(f"{v.label}: {pct(u)}" for v, u in zip(variants, values, strict=True))
        + ".",
    )
