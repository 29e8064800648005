"""Gradient-flow engine: train K variants together and record every layer's gradients.

All variants train in the same batched ops (nets.py, transformer.py) on the same batches,
from the same seed. At initialization (step 0) and at a few recorded steps it measures, per variant
and hidden layer (block), the Frobenius norm of the weight gradient and of the gradient with
respect to the layer's input; the loss is kept at every step. Step s measures the network
after s updates, on batch s.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from app.demo.engines.common import and_list, curve, fmt, loss_chart, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.gradient_flow import GradientVariant
from app.demo.families.gradient_flow_params import GradientFlowParams
from app.demo.nets import BatchedMLP, MLPConfig, MLPVariant
from app.demo.result import Chart, LayerNorms, Number, RecordedStep, Series, VariantResult
from app.demo.tasks import TaskData, batch_indices, make_task, task_loss
from app.demo.transformer import BatchedTransformer, TransformerConfig

RECORDED = 5  # recorded steps after initialization (fewer when steps < 5)


def recorded_steps(steps: int) -> list[int]:
    """0 (initialization) and up to RECORDED evenly spaced steps ending at `steps`."""
    return sorted({0} | {round(steps * i / RECORDED) for i in range(1, RECORDED + 1)})


def variants_of(experiment: Experiment) -> tuple[GradientVariant, ...]:
    out = tuple(v for v in experiment.variants if isinstance(v, GradientVariant))
    assert len(out) == len(experiment.variants), "gradient-flow variants are GradientVariant"
    return out


def branch_scale(params: GradientFlowParams) -> float:
    scale = getattr(params, "branch_scale", "1/sqrt(depth)")
    return 1.0 / math.sqrt(params.depth) if scale == "1/sqrt(depth)" else 1.0


def build_model(
    experiment: Experiment, params: GradientFlowParams, data: TaskData
) -> torch.nn.Module:
    """The experiment's K variants as one batched network, initialized from params.seed."""
    variants = variants_of(experiment)
    if params.arch == "transformer":
        tcfg = TransformerConfig(
            blocks=tuple(v.block or "pre-ln" for v in variants),
            d_in=data.d_in,
            d_out=data.d_out if data.classification else 1,  # per token
            width=params.width,
            depth=params.depth,
        )
        return BatchedTransformer(tcfg, params.seed)
    mlp_variants = tuple(
        MLPVariant(
            residual=bool(v.residual),
            branch_scale=branch_scale(params),
            activation=str(v.activation or getattr(params, "activation", "relu")),
            init=str(v.init or getattr(params, "init", "default")),
            norm=str(v.norm or getattr(params, "norm", "none")),
        )
        for v in variants
    )
    mcfg = MLPConfig(
        variants=mlp_variants,
        d_in=data.d_in,
        d_out=data.d_out,
        width=params.width,
        depth=params.depth,
    )
    return BatchedMLP(mcfg, params.seed)


def make_optimizer(
    params: GradientFlowParams, tensors: list[torch.Tensor]
) -> torch.optim.Optimizer:
    """Per-element optimizers only, so a stacked parameter trains exactly like K separate ones
    (no gradient clipping or other cross-element coupling)."""
    if params.arch == "transformer":
        return torch.optim.Adam(tensors, lr=params.lr, foreach=True)
    return torch.optim.SGD(tensors, lr=params.lr, momentum=0.9, foreach=True)


def grad_norm(g: torch.Tensor) -> torch.Tensor:
    """Per-variant Frobenius norm of a (K, ...) gradient, summed in float64: the squares of
    a vanishing gradient (1e-21) would underflow float32 and read as exactly zero."""
    return torch.linalg.vector_norm(g.flatten(1), dim=1, dtype=torch.float64)


def _layers(wg: torch.Tensor, ag: torch.Tensor) -> list[list[LayerNorms]]:
    """(K, L) norms -> per variant, per layer."""
    return [
        [
            LayerNorms(index=i + 1, weight_grad_norm=num(w), activation_grad_norm=num(a))
            for i, (w, a) in enumerate(zip(wg[k].tolist(), ag[k].tolist(), strict=True))
        ]
        for k in range(wg.shape[0])
    ]


def run(experiment: Experiment, params: GradientFlowParams, ctx: RunContext) -> EngineOutput:
    """Train the experiment's variants; per-layer norms at the recorded steps, loss at all."""
    variants = variants_of(experiment)
    dev = torch.device(ctx.device)
    data = make_task(params.task, params.seed)
    idx = batch_indices(params.seed, params.steps, params.batch_size).to(dev)
    xs, ys = data.x.to(dev), data.y.to(dev)
    model = build_model(experiment, params, data).to(dev)
    opt = make_optimizer(params, list(model.parameters()))
    record_at = set(recorded_steps(params.steps))

    losses: list[list[Number]] = [[] for _ in variants]
    pending: list[torch.Tensor] = []  # per-step losses (K,) not yet copied to the host
    recorded: list[tuple[int, list[list[LayerNorms]]]] = []
    for step in range(params.steps + 1):
        ctx.check(step, params.steps)
        record = step in record_at
        batch = idx[step]
        out, inputs = model(xs[batch], keep_inputs=record)  # (K, B, O)
        loss = task_loss(out, ys[batch], data.classification)  # (K,)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # variants are independent: each gets its own gradient
        pending.append(loss.detach())
        if record:
            for k, vals in enumerate(torch.stack(pending, dim=1).tolist()):
                losses[k].extend(num(v) for v in vals)
            pending.clear()
            wg = model.block_weight_grad_norms()  # (K, L)
            ag = torch.stack([grad_norm(h.grad) for h in inputs], dim=1)  # (K, L)
            recorded.append((step, _layers(wg, ag)))
            if ctx.wants_progress:
                ctx.progress(step, params.steps, _charts(variants, recorded[-1][1], losses, params))
        if step < params.steps:
            opt.step()

    at_init = recorded[0][1]
    results = [
        VariantResult(
            name=v.name,
            label=v.label,
            metrics=_metrics(at_init[k], losses[k]),
            layers=at_init[k],
            loss=losses[k],
            recorded_steps=[RecordedStep(step=s, layers=lay[k]) for s, lay in recorded],
        )
        for k, v in enumerate(variants)
    ]
    by = {r.name: r.metrics for r in results}
    return EngineOutput(
        variants=results,
        charts=_charts(variants, at_init, losses, params),
        summary=SUMMARIES[experiment.name](params, results),
        run_metrics=RUN_METRICS[experiment.name](by) if experiment.name in RUN_METRICS else {},
    )


# ----------------------------------------------------------------------------- measures


def _ratio(a: Number, b: Number) -> Number:
    return None if a is None or b is None or b == 0 else a / b


def _metrics(layers: list[LayerNorms], loss: list[Number]) -> dict[str, Number]:
    first, last = layers[0], layers[-1]
    ag_ratio = _ratio(first.activation_grad_norm, last.activation_grad_norm)
    per_layer = (
        ag_ratio ** (1.0 / (len(layers) - 1))
        if ag_ratio is not None and ag_ratio > 0 and len(layers) > 1
        else None
    )
    return {
        "wg_first_over_last": _ratio(first.weight_grad_norm, last.weight_grad_norm),
        "ag_first_over_last": ag_ratio,
        "ag_per_layer": per_layer,
        "last_wg": last.weight_grad_norm,
        "initial_loss": loss[0],
        "final_loss": loss[-1],
    }


Metrics = dict[str, dict[str, Number]]


def _max(*xs: Number) -> Number:
    return None if any(x is None for x in xs) else max(x for x in xs if x is not None)


RUN_METRICS: dict[str, Callable[[Metrics], dict[str, Number]]] = {
    "residual-vs-plain": lambda m: {
        "residual_over_plain_final_loss": _ratio(
            m["residual"]["final_loss"], m["plain"]["final_loss"]
        )
    },
    "vanishing-gradient": lambda m: {
        "sigmoid_over_best_other_factor": _ratio(
            m["sigmoid"]["ag_per_layer"], _max(m["tanh"]["ag_per_layer"], m["relu"]["ag_per_layer"])
        )
    },
    "normalization": lambda m: {
        "worse_normalized_over_none_final_loss": _ratio(
            _max(m["layernorm"]["final_loss"], m["batchnorm"]["final_loss"]),
            m["none"]["final_loss"],
        )
    },
    "layernorm-placement": lambda m: {
        "post_over_pre_last_wg": _ratio(m["post-ln"]["last_wg"], m["pre-ln"]["last_wg"])
    },
}


# ----------------------------------------------------------------------------- charts


def _charts(
    variants: tuple[GradientVariant, ...],
    layers: list[list[LayerNorms]],
    losses: list[list[Number]],
    params: GradientFlowParams,
) -> list[Chart]:
    def by_layer(key: str) -> list[Series]:
        return [
            Series(
                label=v.label,
                variant=v.name,
                points=[(float(lay.index), getattr(lay, key)) for lay in layers[k]],
            )
            for k, v in enumerate(variants)
        ]

    unit = "block" if params.arch == "transformer" else "layer"
    return [
        Chart(
            id="weight_gradients",
            kind="line",
            title="Weight gradient norm by layer (log scale, input on the left)",
            x_label=f"{unit} (1 = nearest the input)",
            y_label="weight gradient norm",
            y_log=True,
            series=by_layer("weight_grad_norm"),
        ),
        Chart(
            id="input_gradients",
            kind="line",
            title="Gradient reaching each layer (log scale)",
            x_label=f"{unit} (1 = nearest the input)",
            y_label="input gradient norm",
            y_log=True,
            series=by_layer("activation_grad_norm"),
        ),
        loss_chart(
            "loss",
            "Training loss by step",
            [curve(v.label, losses[k], v.name) for k, v in enumerate(variants)],
        ),
    ]


# ----------------------------------------------------------------------------- summaries
# One sentence per experiment, from the numbers at initialization (and the final loss).


def _final_losses(params: GradientFlowParams, results: list[VariantResult]) -> str:
    if params.steps == 0:
        return ""
    finals = [r.metrics["final_loss"] for r in results]
    vals = [
        f"{'diverged' if x is None else fmt(x)} ({r.name})"
        for x, r in zip(finals, results, strict=True)
    ]
    return f"; after {params.steps} steps the loss is " + and_list(vals)


def _residual(p: GradientFlowParams, rs: list[VariantResult]) -> str:
    by = {r.name: r.metrics for r in rs}
    return (
        f"Layer 1 of the plain network gets a weight gradient "
        f"{fmt(by['plain']['wg_first_over_last'])} times that of its last layer "
        f"(layer {p.depth}); with residual connections, "
        f"{fmt(by['residual']['wg_first_over_last'])} times{_final_losses(p, rs)}."
    )


def _vanishing(p: GradientFlowParams, rs: list[VariantResult]) -> str:
    parts = [f"{fmt(r.metrics['ag_per_layer'])} with {r.label} units" for r in rs]
    return (
        f"Going back from layer {p.depth} to layer 1, the gradient reaching each layer "
        f"shrinks by a factor of about {and_list(parts)} per layer (layer 1 gets "
        f"{fmt(rs[0].metrics['ag_first_over_last'])} times the gradient of layer {p.depth} "
        f"with {rs[0].name}){_final_losses(p, rs)}."
    )


def _placement(p: GradientFlowParams, rs: list[VariantResult]) -> str:
    by = {r.name: r.metrics for r in rs}
    k = _ratio(by["post-ln"]["last_wg"], by["pre-ln"]["last_wg"])
    inv = [_ratio(1.0, by[n]["wg_first_over_last"]) for n in ("post-ln", "pre-ln")]
    return (
        f"At initialization the last Post-LN block's weight gradient is {fmt(k)} times "
        f"the last Pre-LN block's; from block 1 to block {p.depth} it changes by a factor "
        f"of {fmt(inv[0])} in Post-LN and {fmt(inv[1])} in Pre-LN{_final_losses(p, rs)}."
    )


def _normalization(p: GradientFlowParams, rs: list[VariantResult]) -> str:
    parts = [
        f"{fmt(r.metrics['wg_first_over_last'])} times that of layer {p.depth} "
        + ("without normalization" if r.name == "none" else f"with {r.label}")
        for r in rs
    ]
    return f"Layer 1 gets a weight gradient {and_list(parts)}{_final_losses(p, rs)}."


def _reaching(
    tail: str, default_label: str | None = None
) -> Callable[[GradientFlowParams, list[VariantResult]], str]:
    def summary(p: GradientFlowParams, rs: list[VariantResult]) -> str:
        parts = [
            f"{fmt(r.metrics['ag_first_over_last'])} with "
            f"{default_label if default_label and r.name == 'default' else r.label}"
            for r in rs
        ]
        return (
            f"The gradient reaching layer 1 is {and_list(parts)}{tail} times the one reaching "
            f"layer {p.depth}{_final_losses(p, rs)}."
        )

    return summary


SUMMARIES: dict[str, Callable[[GradientFlowParams, list[VariantResult]], str]] = {
    "residual-vs-plain": _residual,
    "vanishing-gradient": _vanishing,
    "normalization": _normalization,
    "layernorm-placement": _placement,
    "activation-functions": _reaching(" units"),
    "initialization": _reaching(" initialization", "the default"),
}
