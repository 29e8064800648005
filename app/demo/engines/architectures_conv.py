"""CNN-vs-MLP engine: a motif that can sit anywhere in a 1-D signal, and two classifiers.

Each example is Gaussian noise with one of two short motifs added at some position; the
label says which motif. Training examples put it only in the left half; held-out examples
put it anywhere, and the test is either the right half (positions never trained on) or the
left half (the counterfactual). The CNN applies one small filter bank
at every position and keeps each filter's maximum (weights shared across positions, so
what it learns at one place works at every place); the MLP has its own weight for every
position. Both train on the same examples and batches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from app.demo.engines.common import and_list, fmt, num, nums, train_val_chart
from app.demo.engines.signal_propagation_common import generator
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.architectures import MOTIF, ConvParams
from app.demo.result import Chart, Number, Series, VariantResult

N_VAL = 2048
EVALS = 10  # validation checkpoints
# The two motifs, one per class: same length and energy, different shapes.
MOTIFS = torch.tensor([[1.0, -1.0, 1.0, -1.0, 1.0], [1.0, 1.0, -1.0, -1.0, 1.0]])[:, :MOTIF]


class CNN(nn.Module):  # type: ignore[misc]  # torch is untyped here
    """A filter bank slid over every position, ReLU, max over positions, linear readout."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.filters = nn.Linear(MOTIF, channels)  # one weight set, applied at every position
        self.head = nn.Linear(channels, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, 2)
        windows = x.unfold(1, MOTIF, 1)  # (B, L - MOTIF + 1, MOTIF)
        h = torch.relu(self.filters(windows))  # (B, positions, channels)
        return self.head(h.amax(dim=1))  # max over positions: where the motif is does not matter


class MLP(nn.Module):  # type: ignore[misc]  # torch is untyped here
    """One hidden ReLU layer on the whole signal: a separate weight for every position."""

    def __init__(self, length: int, hidden: int) -> None:
        super().__init__()
        self.fc, self.head = nn.Linear(length, hidden), nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, 2)
        return self.head(torch.relu(self.fc(x)))


def init_(model: nn.Module, g: torch.Generator) -> None:
    """He-uniform weights, zero biases, from g (reproducible on any device)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                bound = math.sqrt(6 / m.weight.shape[1])
                m.weight.uniform_(-bound, bound, generator=g)
                m.bias.zero_()


def make_examples(
    n: int, p: ConvParams, g: torch.Generator, max_pos: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (n, L), label (n,), motif position (n,) uniform in [0, max_pos]."""
    y = torch.randint(0, 2, (n,), generator=g)
    pos = torch.randint(0, max_pos + 1, (n,), generator=g)
    x = p.noise * torch.randn(n, p.length, generator=g)
    x.scatter_add_(1, pos[:, None] + torch.arange(MOTIF), MOTIFS[y])
    return x, y, pos


def run(experiment: Experiment, params: ConvParams, ctx: RunContext) -> EngineOutput:
    """Train both classifiers on the same examples; accuracy by motif position."""
    dev = torch.device(ctx.device)
    g = generator(params.seed)
    last_pos = params.length - MOTIF
    boundary = last_pos // 2  # training motifs start at positions 0..boundary
    x_tr, y_tr, _ = make_examples(params.n_train, params, g, boundary)
    x_va, y_va, pos_va = make_examples(N_VAL, params, g, last_pos)
    idx = torch.randint(0, params.n_train, (max(params.steps, 1), params.batch_size), generator=g)
    x_tr, y_tr, x_va, y_va, idx = (t.to(dev) for t in (x_tr, y_tr, x_va, y_va, idx))
    test = pos_va > boundary if params.test_positions == "unseen" else pos_va <= boundary
    eval_at = {round(params.steps * i / EVALS) for i in range(EVALS + 1)}

    models: dict[str, nn.Module] = {
        "cnn": CNN(params.channels),
        "mlp": MLP(params.length, params.hidden),
    }
    total = len(models) * params.steps
    train: list[list[Number]] = []
    val: list[list[tuple[float, Number]]] = []
    results: list[VariantResult] = []
    accuracy_by_position: list[list[Number]] = []
    for k, v in enumerate(experiment.variants):
        model = models[v.name]
        init_(model, g)
        model.to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=params.lr)
        losses: list[torch.Tensor] = []
        val.append([])
        for step in range(params.steps + 1):
            ctx.check(k * params.steps + step, total)
            if step in eval_at:
                with torch.no_grad():
                    val[k].append((float(step), num(F.cross_entropy(model(x_va), y_va).item())))
            if step == params.steps:
                break
            batch = idx[step]
            loss = F.cross_entropy(model(x_tr[batch]), y_tr[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        train.append(nums(torch.stack(losses)) if losses else [])
        with torch.no_grad():
            final_train = F.cross_entropy(model(x_tr), y_tr).item()
            train_acc = (model(x_tr).argmax(1) == y_tr).float().mean().item()
            correct = (model(x_va).argmax(1) == y_va).float().cpu()
        accuracy_by_position.append(
            [
                num(correct[pos_va == i].mean().item()) if (pos_va == i).any() else None
                for i in range(last_pos + 1)
            ]
        )
        results.append(
            VariantResult(
                name=v.name,
                label=v.label,
                loss=train[k],
                metrics={
                    "final_loss": num(final_train),
                    "final_train_loss": num(final_train),
                    "final_val_loss": val[k][-1][1],
                    "train_accuracy": num(train_acc),
                    "test_accuracy": num(correct[test.cpu()].mean().item()),
                    "val_accuracy": num(correct.mean().item()),
                    "parameters": float(sum(t.numel() for t in model.parameters())),
                },
            )
        )
        if ctx.wants_progress:
            ctx.progress((k + 1) * params.steps, total, [curves_chart(experiment, train, val)])

    by = {r.name: r.metrics for r in results}
    cnn, mlp = by["cnn"]["test_accuracy"], by["mlp"]["test_accuracy"]
    return EngineOutput(
        variants=results,
        charts=[
            curves_chart(experiment, train, val),
            position_chart(experiment, accuracy_by_position, params),
        ],
        summary=_summary(params, by),
        run_metrics={
            "cnn_minus_mlp_test_accuracy": None if cnn is None or mlp is None else cnn - mlp
        },
    )


def curves_chart(
    experiment: Experiment, train: list[list[Number]], val: list[list[tuple[float, Number]]]
) -> Chart:
    variants = [(v.name, v.label) for v in experiment.variants]
    return train_val_chart(
        variants, train, val, title="Cross-entropy by step", held_out_name="held-out"
    )


def position_chart(experiment: Experiment, acc: list[list[Number]], p: ConvParams) -> Chart:
    boundary = (p.length - MOTIF) // 2
    right = [
        f"{fmt(_mean(a[boundary + 1 :]))} ({v.label})"
        for v, a in zip(experiment.variants, acc, strict=True)
    ]
    return Chart(
        id="accuracy_by_position",
        kind="line",
        title="Held-out accuracy by the motif's position",
        x_label=f"motif start position (training used 0 to {boundary})",
        y_label="accuracy",
        series=[
            Series(
                label=v.label, variant=v.name, points=[(float(i), a) for i, a in enumerate(accs)]
            )
            for v, accs in zip(experiment.variants, acc, strict=True)
        ],
        finding=f"Past position {boundary} the accuracy is "
        + and_list(right)
        + " (chance is 0.5).",
    )


def _mean(xs: list[Number]) -> Number:
    vals = [x for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def _count(x: Number) -> str:
    return "?" if x is None else f"{int(x):,}"


def _summary(p: ConvParams, by: dict[str, dict[str, Number]]) -> str:
    where = (
        "the right half, never seen in training"
        if p.test_positions == "unseen"
        else "the left half, as in training"
    )
    return (
        f"On motifs in {where}, the CNN ({_count(by['cnn']['parameters'])} weights) is "
        f"accurate {fmt(by['cnn']['test_accuracy'])} of the time and the MLP "
        f"({_count(by['mlp']['parameters'])} weights) {fmt(by['mlp']['test_accuracy'])}; on "
        f"its training set the MLP reaches {fmt(by['mlp']['train_accuracy'])}."
    )
