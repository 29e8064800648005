"""RMSNorm vs LayerNorm engine: the same small network trained with either normalization.

Inputs are x = s + b 1: a signal s ~ N(0, I) and a per-example common offset b ~ N(0,
offset^2) added to every feature; the target is a fixed random tanh network of s alone,
scaled to unit variance. Each variant normalizes the raw input and the first hidden layer:
LayerNorm subtracts the mean and divides by the standard deviation (so it removes b
exactly); RMSNorm only divides by the root mean square (so b leaks into its output). Both
start from the same weights and see the same batches.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from app.demo.engines.common import and_list, fmt, num, nums, train_val_chart
from app.demo.engines.signal_propagation_common import generator, positive
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.signal_propagation import NormParams
from app.demo.result import Chart, Number, Series, VariantResult

D_IN = 16  # input features
TEACHER_WIDTH = 32
N_TRAIN = 8192  # enough that the validation loss tracks the training loss
N_VAL = 1024
EVALS = 10  # validation checkpoints
SHIFT, SCALE = 1.0, 3.0  # the probes of invariance: x + 1 and 3 x


class NormMLP(nn.Module):  # type: ignore[misc]  # torch is untyped here
    """x -> norm -> Linear -> ReLU -> norm -> Linear -> ReLU -> Linear (one output)."""

    def __init__(self, norm: str, width: int) -> None:
        super().__init__()
        make = nn.LayerNorm if norm == "layernorm" else nn.RMSNorm
        self.norm_in, self.norm_hidden = make(D_IN, eps=1e-5), make(width, eps=1e-5)
        self.fc1, self.fc2 = nn.Linear(D_IN, width), nn.Linear(width, width)
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D_IN) -> (B,)
        h = torch.relu(self.fc1(self.norm_in(x)))
        h = torch.relu(self.fc2(self.norm_hidden(h)))
        return self.head(h).squeeze(-1)

    def init_from(self, g: torch.Generator) -> None:
        """He-normal weights and zero biases from g, so every variant starts the same."""
        with torch.no_grad():
            for layer, gain in ((self.fc1, 2.0), (self.fc2, 2.0), (self.head, 1.0)):
                fan_in = layer.weight.shape[1]
                layer.weight.copy_(
                    torch.randn(layer.weight.shape, generator=g) * math.sqrt(gain / fan_in)
                )
                layer.bias.zero_()


def make_data(p: NormParams, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """x_train (N, D_IN), y_train (N,), x_val, y_val: the target depends on s only."""
    t1 = torch.randn(D_IN, TEACHER_WIDTH, generator=g) * (2 / math.sqrt(D_IN))
    t2 = torch.randn(TEACHER_WIDTH, generator=g) / math.sqrt(TEACHER_WIDTH)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = torch.randn(n, D_IN, generator=g)
        b = p.offset * torch.randn(n, 1, generator=g)  # one offset per example
        return s + b, torch.tanh(s @ t1) @ t2

    x_tr, y_tr = sample(N_TRAIN)
    x_va, y_va = sample(N_VAL)
    sd = y_tr.std()
    return x_tr, y_tr / sd, x_va, y_va / sd


def relative_change(model: nn.Module, x: torch.Tensor, x2: torch.Tensor) -> float:
    """||f(x2) - f(x)|| / ||f(x)||."""
    with torch.no_grad():
        base = model(x)
        return float(((model(x2) - base).norm() / base.norm()).item())


def run(experiment: Experiment, params: NormParams, ctx: RunContext) -> EngineOutput:
    """Train one network per normalization on the same data, batches and initial weights."""
    dev = torch.device(ctx.device)
    g = generator(params.seed)
    x_tr, y_tr, x_va, y_va = (t.to(dev) for t in make_data(params, g))
    idx = torch.randint(0, N_TRAIN, (max(params.steps, 1), params.batch_size), generator=g).to(dev)
    init_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g).item())
    eval_at = {round(params.steps * i / EVALS) for i in range(EVALS + 1)}

    total = len(experiment.variants) * params.steps
    train: list[list[Number]] = []
    val: list[list[tuple[float, Number]]] = []
    results: list[VariantResult] = []
    for k, v in enumerate(experiment.variants):
        model = NormMLP(v.name, params.width)
        model.init_from(generator(init_seed))
        model.to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=params.lr)
        losses: list[torch.Tensor] = []
        val.append([])
        for step in range(params.steps + 1):
            ctx.check(k * params.steps + step, total)
            if step in eval_at:
                with torch.no_grad():
                    val[k].append((float(step), num(((model(x_va) - y_va) ** 2).mean().item())))
            if step == params.steps:
                break
            batch = idx[step]
            loss = ((model(x_tr[batch]) - y_tr[batch]) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        train.append(nums(torch.stack(losses)) if losses else [])
        with torch.no_grad():
            final_train = ((model(x_tr) - y_tr) ** 2).mean().item()
        results.append(
            VariantResult(
                name=v.name,
                label=v.label,
                loss=train[k],
                metrics={
                    "final_loss": num(final_train),
                    "final_train_loss": num(final_train),
                    "final_val_loss": val[k][-1][1],
                    "shift_change": num(relative_change(model, x_va, x_va + SHIFT)),
                    "scale_change": num(relative_change(model, x_va, x_va * SCALE)),
                },
            )
        )
        if ctx.wants_progress:
            ctx.progress((k + 1) * params.steps, total, [curves_chart(experiment, train, val)])

    by = {r.name: r.metrics for r in results}
    rms, ln = by["rmsnorm"]["final_val_loss"], by["layernorm"]["final_val_loss"]
    return EngineOutput(
        variants=results,
        charts=[curves_chart(experiment, train, val), invariance_chart(results)],
        summary=_summary(params, by),
        run_metrics={"rms_over_ln_val_loss": None if rms is None or not ln else rms / ln},
    )


def curves_chart(
    experiment: Experiment, train: list[list[Number]], val: list[list[tuple[float, Number]]]
) -> Chart:
    variants = [(v.name, v.label) for v in experiment.variants]
    return train_val_chart(
        variants,
        train,
        val,
        title="Loss by step (targets have unit variance)",
        held_out_name="validation",
    )


def invariance_chart(results: list[VariantResult]) -> Chart:
    keys = ("shift_change", "scale_change")
    return Chart(
        id="invariance",
        kind="bar",
        title="How much the trained network's output moves when its inputs are shifted or scaled",
        x_label="change to every input",
        y_label="relative change of the output",
        y_log=True,
        categories=[f"shift: x + {SHIFT:g}", f"scale: {SCALE:g} x"],
        series=[
            Series(
                label=r.label,
                variant=r.name,
                points=[(float(i), positive(r.metrics[key] or 0.0)) for i, key in enumerate(keys)],
            )
            for r in results
        ],
        finding=(
            "Shifting every input by 1 moves the output by "
            + and_list([f"{fmt(r.metrics['shift_change'])} ({r.label})" for r in results])
            + "; scaling it by 3, by "
            + and_list([f"{fmt(r.metrics['scale_change'])} ({r.label})" for r in results])
            + " (float32 rounding is about 1e-7)."
        ),
    )


def _summary(p: NormParams, by: dict[str, dict[str, Number]]) -> str:
    return (
        f"With a common offset of standard deviation {p.offset:g} on the inputs, after "
        f"{p.steps} steps the validation loss is {fmt(by['layernorm']['final_val_loss'])} with "
        f"LayerNorm and {fmt(by['rmsnorm']['final_val_loss'])} with RMSNorm; shifting the "
        f"inputs by 1 moves LayerNorm's output by {fmt(by['layernorm']['shift_change'])} and "
        f"RMSNorm's by {fmt(by['rmsnorm']['shift_change'])}."
    )
