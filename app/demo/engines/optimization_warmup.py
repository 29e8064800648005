"""Warm-up engine: Post-LN transformer blocks at a large Adam learning rate, with and without
a linear warm-up, and Pre-LN blocks without one.

The model is app/demo/transformer.py's BatchedTransformer (one token per input position, its own
embedding per position), K = 3 variants from the same initialization on the same batches.
Task: token t predicts the running sum x_1 + ... + x_t over sqrt(t) (variance 1, so
predicting 0 scores a loss of 1); it needs attention across positions. Adam is written out
here because each variant has its own learning rate at every step; it is torch.optim.Adam's
update (bias-corrected, eps outside the square root) applied per variant.
"""

from __future__ import annotations

import math

import torch

from app.demo.engines.common import curve, fmt, loss_chart, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.optimization_params import WarmupParams
from app.demo.result import Chart, Number, VariantResult
from app.demo.transformer import BatchedTransformer, TransformerConfig

TOKENS = 8  # sequence length T
WIDTH = 16  # model dimension
N_TRAIN = 1024  # examples the batches are drawn from
N_EVAL = 256  # held-out examples, and as many training ones, for the final losses
BETAS, EPS = (0.9, 0.999), 1e-8  # Adam's defaults
# (variant, blocks, warmed up?)
ARMS = {
    "post-ln": ("post-ln", False),
    "post-ln-warmup": ("post-ln", True),
    "pre-ln": ("pre-ln", False),
}
STACKED = ("attn", "proj", "fc1", "fc2", "ln1", "ln2")  # (L, K, ...) parameters; others (K, ...)
PROGRESS_EVERY = 5


def make_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N_TRAIN + N_EVAL, T) standard normal; y the scaled running sums, same shape."""
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(N_TRAIN + N_EVAL, TOKENS, generator=g)
    return x, x.cumsum(1) / torch.arange(1, TOKENS + 1).sqrt()


class StackedAdam:
    """Adam on K stacked variants, each with its own learning rate (a (K,) tensor)."""

    def __init__(self, named: list[tuple[str, torch.Tensor]], k: int) -> None:
        self.params = [p for _, p in named]
        # where the variant dimension is, so a (K,) rate broadcasts over each parameter
        self.shapes = [
            [k if d == (1 if n.split("_")[0] in STACKED else 0) else 1 for d in range(p.dim())]
            for n, p in named
        ]
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self, grads: list[torch.Tensor], lr: torch.Tensor) -> None:
        """One update of every parameter; lr (K,) is each variant's rate."""
        self.t += 1
        b1, b2 = BETAS
        with torch.no_grad():
            for p, g, m, v, shape in zip(
                self.params, grads, self.m, self.v, self.shapes, strict=True
            ):
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                m_hat, v_hat = m / (1 - b1**self.t), v / (1 - b2**self.t)
                p.sub_(lr.view(shape) * m_hat / (v_hat.sqrt() + EPS))


def learning_rates(p: WarmupParams, warmed: torch.Tensor, step: int) -> torch.Tensor:
    """Each variant's rate at `step` (0-based): linear warm-up to p.lr where warmed, else p.lr."""
    ramp = min(1.0, (step + 1) / p.warmup_steps)
    return torch.where(warmed, p.lr * ramp, p.lr)


def run(experiment: Experiment, p: WarmupParams, ctx: RunContext) -> EngineOutput:
    """Train the three arms; minibatch loss at every step, held-out loss at the end."""
    names = [v.name for v in experiment.variants]
    x, y = make_data(p.seed)
    g = torch.Generator().manual_seed(p.seed + 2)
    batches = torch.randint(0, N_TRAIN, (p.steps, p.batch_size), generator=g)
    cfg = TransformerConfig(
        blocks=tuple(ARMS[n][0] for n in names), d_in=TOKENS, d_out=1, width=WIDTH, depth=p.depth
    )
    model = BatchedTransformer(cfg, p.seed)
    named = list(model.named_parameters())
    opt = StackedAdam(named, len(names))
    warmed = torch.tensor([ARMS[n][1] for n in names])
    losses: list[torch.Tensor] = []  # (K,) per step
    rates: list[list[float]] = []
    every = max(1, p.steps // PROGRESS_EVERY)
    for step in range(p.steps):
        ctx.check(step, p.steps)
        idx = batches[step]
        out, _ = model(x[idx])  # (K, B, T, 1)
        loss = (out[..., 0] - y[idx]).square().mean(dim=(1, 2))  # (K,)
        grads = torch.autograd.grad(loss.sum(), [q for _, q in named], allow_unused=True)
        # Post-LN variants do not use the final LN; their share of its gradient is zero
        grads = [
            torch.zeros_like(q) if gr is None else gr
            for gr, (_, q) in zip(grads, named, strict=True)
        ]
        lr = learning_rates(p, warmed, step)
        opt.step(grads, lr)
        losses.append(loss.detach())
        rates.append(lr.tolist())
        if ctx.wants_progress and (step + 1) % every == 0 and step + 1 < p.steps:
            ctx.progress(step + 1, p.steps, _charts(experiment, losses, rates))
    with torch.no_grad():
        train_out, _ = model(x[:N_EVAL])
        val_out, _ = model(x[N_TRAIN:])
        train = (train_out[..., 0] - y[:N_EVAL]).square().mean(dim=(1, 2)).tolist()
        val = (val_out[..., 0] - y[N_TRAIN:]).square().mean(dim=(1, 2)).tolist()
    hist = torch.stack(losses, 1).tolist()  # (K, steps)
    results = [
        VariantResult(
            name=v.name,
            label=v.label,
            metrics={
                "final_loss": num(train[k]),
                "final_train_loss": num(train[k]),
                "final_val_loss": num(val[k]),
                "initial_loss": num(hist[k][0]),
            },
            loss=[num(z) for z in hist[k]],
        )
        for k, v in enumerate(experiment.variants)
    ]
    m = {r.name: r.metrics for r in results}
    run_metrics: dict[str, Number] = {
        "none_over_warmup_post_ln": _ratio(
            m["post-ln"]["final_loss"], m["post-ln-warmup"]["final_loss"]
        ),
        "pre_ln_over_post_ln_none": _ratio(m["pre-ln"]["final_loss"], m["post-ln"]["final_loss"]),
        "warmup_final_over_initial": _ratio(
            m["post-ln-warmup"]["final_loss"], m["post-ln-warmup"]["initial_loss"]
        ),
    }
    return EngineOutput(
        variants=results,
        charts=_charts(experiment, losses, rates),
        summary=(
            f"At Adam lr {fmt(p.lr)}, after {p.steps} steps the Post-LN transformer ends at a "
            f"training loss of {fmt(m['post-ln']['final_loss'])} without warm-up and "
            f"{fmt(m['post-ln-warmup']['final_loss'])} with {p.warmup_steps} warm-up steps; "
            f"Pre-LN without warm-up ends at {fmt(m['pre-ln']['final_loss'])} (predicting 0 "
            f"scores 1)."
        ),
        run_metrics=run_metrics,
    )


def _ratio(a: Number, b: Number) -> Number:
    return None if a is None or b is None or b == 0 else a / b


def _smooth(xs: list[float], window: int = 10) -> list[Number]:
    """Trailing mean over `window` steps: minibatch losses are noisy."""
    out: list[Number] = []
    for i in range(len(xs)):
        part = xs[max(0, i + 1 - window) : i + 1]
        out.append(num(sum(part) / len(part)) if all(map(math.isfinite, part)) else None)
    return out


def _charts(
    experiment: Experiment, losses: list[torch.Tensor], rates: list[list[float]]
) -> list[Chart]:
    hist = torch.stack(losses, 1).tolist()
    variants = experiment.variants
    smooth = [_smooth(h) for h in hist]
    finals = [f"{fmt(smooth[k][-1])} ({v.label})" for k, v in enumerate(variants)]
    w = [v.name for v in variants].index("post-ln-warmup")
    return [
        Chart(
            id="lr",
            kind="line",
            title="Learning rate by step",
            x_label="step",
            y_label="learning rate",
            series=[curve(v.label, [r[k] for r in rates], v.name) for k, v in enumerate(variants)],
            finding=f"The warmed-up run starts at {fmt(rates[0][w])} and reaches "
            f"{fmt(rates[-1][w])}; the others run at {fmt(rates[0][w - 1])} from the first step.",
        ),
        loss_chart(
            "loss",
            "Training loss by step (minibatch, mean of the last 10 steps; log scale)",
            [curve(v.label, smooth[k], v.name) for k, v in enumerate(variants)],
            finding=f"After {len(hist[0])} steps the smoothed loss is " + ", ".join(finals) + ".",
            y_log=True,
        ),
    ]
