"""Run one demo experiment: build its K variants, train them together, measure gradients.

All variants train in the same batched ops (see nets.py) on the same batches, from the same
seed. At initialization (step 0) and at a few recorded steps the engine measures, per
variant and per hidden layer (block), the Frobenius norm of the weight gradient and the
norm of the gradient with respect to the layer's input activations; the loss is kept at
every step. Step s measures the network after s updates, on batch s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from app.demo.errors import RunCancelled
from app.demo.nets import (
    BatchedMLP,
    BatchedTransformer,
    MLPConfig,
    MLPVariant,
    TaskData,
    TransformerConfig,
    batch_indices,
    make_task,
    task_loss,
)
from app.demo.presets import PRESETS, DemoConfig, Preset

RECORDED = 5  # recorded steps after initialization (fewer when steps < 5)


def recorded_steps(steps: int) -> list[int]:
    """0 (initialization) and up to RECORDED evenly spaced steps ending at `steps`."""
    return sorted({0} | {round(steps * i / RECORDED) for i in range(1, RECORDED + 1)})


def default_threads() -> int:
    """One torch thread per run: the demo's ops are small and runs share the cores."""
    return 1


def configure_cpu(threads: int | None = None) -> None:
    """Set torch's CPU threads (default_threads() if None) and flush denormals.

    Deep sigmoid networks push gradients into the denormal range, where arithmetic is ~100x
    slower; flushing them to zero is what a float32 GPU does anyway. The flag is per thread,
    so every run sets it in the thread it runs on.
    """
    n = threads or default_threads()
    if torch.get_num_threads() != n:  # process-wide
        torch.set_num_threads(n)
    torch.set_flush_denormal(True)


def build_model(config: DemoConfig, preset: Preset, data: TaskData) -> torch.nn.Module:
    """The preset's K variants as one batched network, initialized from config.seed."""
    if preset.arch == "transformer":
        tcfg = TransformerConfig(
            blocks=tuple(v.block or "pre-ln" for v in preset.variants),
            d_in=data.d_in,
            d_out=data.d_out if data.classification else 1,  # per token
            width=config.width,
            depth=config.depth,
        )
        return BatchedTransformer(tcfg, config.seed)
    variants = tuple(
        MLPVariant(
            residual=bool(v.residual),
            branch_scale=config.branch_scale_value(),
            activation=v.activation or config.activation,
            init=v.init or config.init,
            norm=v.norm or config.norm,
        )
        for v in preset.variants
    )
    mcfg = MLPConfig(
        variants=variants, d_in=data.d_in, d_out=data.d_out, width=config.width, depth=config.depth
    )
    return BatchedMLP(mcfg, config.seed)


def make_optimizer(preset: Preset, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """Per-element optimizers only, so a stacked parameter trains exactly like K separate ones
    (no gradient clipping or other cross-element coupling)."""
    if preset.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, foreach=True)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, foreach=True)


def grad_norm(g: torch.Tensor) -> torch.Tensor:
    """Per-variant Frobenius norm of a (K, ...) gradient, summed in float64: the squares of
    a vanishing gradient (1e-21) would underflow float32 and read as exactly zero."""
    return torch.linalg.vector_norm(g.flatten(1), dim=1, dtype=torch.float64)


def _floats(t: torch.Tensor) -> list[Any]:
    """Tensor -> list of floats, non-finite values (diverged runs) as None for JSON."""
    return [x if math.isfinite(x) else None for x in t.tolist()]


def run_experiment(
    config: DemoConfig,
    device: str = "cpu",
    *,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train the config's variants and return the demo result (without `cached`).

    on_progress gets a progress event at step 0 and each recorded step; should_stop is
    checked before every step and raises RunCancelled when it returns True.
    """
    t0 = time.perf_counter()
    if device == "cpu":
        configure_cpu(threads)
    preset = PRESETS[config.preset]
    names = [v.name for v in preset.variants]
    dev = torch.device(device)

    data = make_task(config.task, config.seed)
    idx = batch_indices(config.seed, config.steps, config.batch_size).to(dev)
    xs, ys = data.x.to(dev), data.y.to(dev)
    model = build_model(config, preset, data).to(dev)
    params = list(model.parameters())
    opt = make_optimizer(preset, params, config.lr)
    record_at = set(recorded_steps(config.steps))

    losses: list[list[Any]] = [[] for _ in names]
    pending: list[torch.Tensor] = []  # per-step losses (K,) not yet copied to the host
    recorded: list[tuple[int, list[list[dict[str, Any]]]]] = []
    for step in range(config.steps + 1):
        if should_stop is not None and should_stop():
            raise RunCancelled(f"run stopped at step {step} of {config.steps}")
        record = step in record_at
        batch = idx[step]
        out, inputs = model(xs[batch], keep_inputs=record)  # (K, B, O)
        loss = task_loss(out, ys[batch], data.classification)  # (K,)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # variants are independent: each gets its own gradient
        pending.append(loss.detach())
        if record:
            for k, vals in enumerate(torch.stack(pending, dim=1).tolist()):
                losses[k].extend(v if math.isfinite(v) else None for v in vals)
            pending.clear()
            wg = model.block_weight_grad_norms()  # (K, L)
            ag = torch.stack([grad_norm(h.grad) for h in inputs], dim=1)  # (K, L)
            layers = [
                [
                    {"index": i + 1, "weight_grad_norm": w, "activation_grad_norm": a}
                    for i, (w, a) in enumerate(zip(_floats(wg[k]), _floats(ag[k]), strict=True))
                ]
                for k in range(len(names))
            ]
            recorded.append((step, layers))
            if on_progress is not None:
                on_progress(
                    {
                        "step": step,
                        "total_steps": config.steps,
                        "losses": {n: list(losses[k]) for k, n in enumerate(names)},
                        "layers": {n: layers[k] for k, n in enumerate(names)},
                    }
                )
        if step < config.steps:
            opt.step()

    variants = [
        {
            "name": v.name,
            "label": v.label,
            "layers": recorded[0][1][k],
            "loss": losses[k],
            "recorded_steps": [{"step": s, "layers": lay[k]} for s, lay in recorded],
        }
        for k, v in enumerate(preset.variants)
    ]
    return {
        "config": config.as_dict(),
        "device": dev.type,
        "torch_version": torch.__version__,
        "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1),
        "summary": summarize(config, variants),
        "variants": variants,
    }


# ----------------------------------------------------------------------------- summaries
# One sentence per preset, computed from the numbers at initialization (and the final loss).
# WG: weight gradient of a layer; AG: gradient reaching a layer (w.r.t. its input).
WG, AG = "weight_grad_norm", "activation_grad_norm"


def fmt(x: float | None) -> str:
    """A ratio for a sentence: 0.83, 12, 3e-07; 'undefined' for a missing value."""
    if x is None or not math.isfinite(x):
        return "undefined"
    if x == 0:
        return "0"
    if 0.01 <= abs(x) < 1000:
        return f"{x:.2g}"
    return f"{x:.0e}"


def first_last_ratio(variant: dict[str, Any], key: str = WG) -> float | None:
    """Layer 1's gradient norm over the last layer's, at initialization (None if undefined)."""
    first, last = variant["layers"][0][key], variant["layers"][-1][key]
    if first is None or last is None or last == 0:
        return None
    return float(first / last)


def per_layer_factor(variant: dict[str, Any], key: str = AG) -> float | None:
    """The geometric-mean factor by which the gradient changes per layer toward the input."""
    r = first_last_ratio(variant, key)
    n = len(variant["layers"])
    if r is None or r <= 0 or n < 2:
        return None
    return float(r ** (1.0 / (n - 1)))


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _final_losses(config: DemoConfig, variants: list[dict[str, Any]]) -> str:
    if config.steps == 0:
        return ""
    vals = [
        ("diverged" if v["loss"][-1] is None else f"{v['loss'][-1]:.3g}") + f" ({v['name']})"
        for v in variants
    ]
    return f"; after {config.steps} steps the loss is " + _and(vals)


def summarize(config: DemoConfig, variants: list[dict[str, Any]]) -> str:
    """One sentence about this run's numbers, worded for its preset."""
    by = {v["name"]: v for v in variants}
    depth, losses = config.depth, _final_losses(config, variants)
    if config.preset == "residual-vs-plain":
        return (
            f"Layer 1 of the plain network gets a weight gradient "
            f"{fmt(first_last_ratio(by['plain']))} times that of its last layer "
            f"(layer {depth}); with residual connections, "
            f"{fmt(first_last_ratio(by['residual']))} times{losses}."
        )
    if config.preset == "vanishing-gradient":
        parts = [f"{fmt(per_layer_factor(v))} with {v['label']} units" for v in variants]
        return (
            f"Going back from layer {depth} to layer 1, the gradient reaching each layer "
            f"shrinks by a factor of about {_and(parts)} per layer (layer 1 gets "
            f"{fmt(first_last_ratio(variants[0], AG))} times the gradient of layer {depth} "
            f"with {variants[0]['name']}){losses}."
        )
    if config.preset == "layernorm-placement":
        post, pre = by["post-ln"], by["pre-ln"]
        lp, lq = post["layers"][-1][WG], pre["layers"][-1][WG]
        k = None if lp is None or lq is None or lq == 0 else lp / lq
        inv = [
            None if r is None or r == 0 else 1 / r
            for r in (first_last_ratio(post), first_last_ratio(pre))
        ]
        return (
            f"At initialization the last Post-LN block's weight gradient is {fmt(k)} times "
            f"the last Pre-LN block's; from block 1 to block {depth} it changes by a factor "
            f"of {fmt(inv[0])} in Post-LN and {fmt(inv[1])} in Pre-LN{losses}."
        )
    if config.preset == "normalization":
        parts = [
            f"{fmt(first_last_ratio(v))} times that of layer {depth} "
            + ("without normalization" if v["name"] == "none" else f"with {v['label']}")
            for v in variants
        ]
        return f"Layer 1 gets a weight gradient {_and(parts)}{losses}."
    # activation-functions, initialization: the gradient reaching layer 1 vs layer L
    if config.preset == "activation-functions":
        parts = [f"{fmt(first_last_ratio(v, AG))} with {v['label']}" for v in variants]
        tail = " units"
    else:
        parts = [
            f"{fmt(first_last_ratio(v, AG))} with "
            f"{'the default' if v['name'] == 'default' else v['label']}"
            for v in variants
        ]
        tail = " initialization"
    return (
        f"The gradient reaching layer 1 is {_and(parts)}{tail} times the one reaching "
        f"layer {depth}{losses}."
    )
