"""Mixture of experts in place of the last block's MLP: top-1 routing (Fedus et al. 2021)
with Shazeer et al.'s (2017) noisy gating, trained on the frozen model's hidden states with and
without the Switch load-balancing loss.

The layer sees what the dense MLP saw: u = ln_2(h), where h is the residual stream after the
last block's attention. Its output goes where the MLP's went, h + moe(u), then through the
model's own (frozen) ln_f and head to the next-token loss. Each token is computed by its own
expert only.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from app.demo.engines.common import and_list, curve, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.efficiency_training import (
    BATCH_TOKENS,
    EVAL_WINDOWS,
    EXPERT_LR,
    IDLE_SHARE,
    N_EXPERTS,
    ROUTER_LR,
    TRAIN_WINDOWS,
    MoEParams,
)
from app.demo.lm.gpt import GPT
from app.demo.lm.text import glossary_text
from app.demo.lm.training import eval_starts, windows
from app.demo.result import Chart, Number, Series, VariantResult

Tokens = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # u (N, C), h (N, C), targets (N,)


@dataclass
class Routing:
    """What the router decided for a batch of N tokens."""

    probs: torch.Tensor  # (N, E) softmax of the noisy router scores
    expert: torch.Tensor  # (N,) the expert each token went to
    counts: torch.Tensor = field(init=False)  # (E,) tokens each expert received

    def __post_init__(self) -> None:
        self.counts = torch.bincount(self.expert, minlength=self.probs.size(1))

    @property
    def load(self) -> torch.Tensor:
        """(E,) share of the tokens each expert received (sums to 1)."""
        return self.counts.float() / self.expert.numel()

    def balance_loss(self) -> torch.Tensor:
        """Switch's auxiliary loss E * sum_i f_i * P_i: 1 when tokens and probabilities are
        spread evenly, up to E when one expert takes everything. f_i (the share of tokens) is
        not differentiable; the gradient reaches the router through P_i (mean probability)."""
        e = self.probs.size(1)
        return e * (self.load.detach() * self.probs.mean(0)).sum()


class MoE(nn.Module):  # type: ignore[misc]  # torch is untyped here
    """E GELU experts of width hidden and a noisy top-1 router, all on n_embd features."""

    def __init__(
        self, n_embd: int, n_experts: int, hidden: int, n_layer: int, g: torch.Generator
    ) -> None:
        super().__init__()
        self.n_experts = n_experts

        def normal(*shape: int, std: float) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape, generator=g) * std)

        # the GPT's own init (gpt.py): N(0, 0.02), the output projection scaled down as GPT-2's
        out_std = 0.02 / math.sqrt(2 * n_layer)
        self.w_in = normal(n_experts, n_embd, hidden, std=0.02)  # (E, C, H)
        self.b_in = nn.Parameter(torch.zeros(n_experts, hidden))
        self.w_out = normal(n_experts, hidden, n_embd, std=out_std)  # (E, H, C)
        self.b_out = nn.Parameter(torch.zeros(n_experts, n_embd))
        # Shazeer et al.: both router matrices start at zero, "no signal and some noise", so the
        # first routing is random and even; the noise's scale softplus(u @ w_noise) is learned.
        self.w_gate = nn.Parameter(torch.zeros(n_embd, n_experts))  # (C, E)
        self.w_noise = nn.Parameter(torch.zeros(n_embd, n_experts))  # (C, E)

    def route(self, u: torch.Tensor, noise: torch.Tensor) -> Routing:
        """u (N, C), noise (N, E) standard normal draws -> the routing."""
        scores = u @ self.w_gate + noise * F.softplus(u @ self.w_noise)  # (N, E)
        probs = scores.softmax(-1)
        return Routing(probs, probs.argmax(-1))

    def forward(self, u: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, Routing]:
        """(N, C) -> (N, C): each token through its expert, times that expert's probability."""
        r = self.route(u, noise)
        gate = r.probs.gather(1, r.expert[:, None])  # (N, 1): the router's gradient flows here
        return self.experts(u, r.expert, r.counts) * gate, r

    def experts(self, u: torch.Tensor, expert: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Dispatch: each expert's tokens stacked in one (E, capacity, C) buffer (capacity the
        busiest expert's count, so no token is dropped; zero padding below the others), all
        experts applied in two batched matmuls, the results put back in token order."""
        order = expert.argsort()  # (N,) tokens grouped by expert
        by_expert = expert[order]
        first = torch.cumsum(counts, 0) - counts  # (E,) where each expert's group starts
        slot = torch.arange(len(u), device=u.device) - first[by_expert]  # place in its group
        buf = u.new_zeros(self.n_experts, int(counts.max()), u.size(1))  # (E, cap, C)
        buf[by_expert, slot] = u[order]
        hid = F.gelu(torch.bmm(buf, self.w_in) + self.b_in[:, None])  # (E, cap, H)
        out = torch.bmm(hid, self.w_out) + self.b_out[:, None]  # (E, cap, C)
        return torch.zeros_like(u).index_copy(0, order, out[by_expert, slot])


class Frozen:
    """The served model around its last block's MLP: the MLP's input, and its output's loss."""

    def __init__(self, model: GPT) -> None:
        self.model = model
        self.last = model.blocks[-1]

    def tokens(self, x: torch.Tensor, y: torch.Tensor) -> Tokens:
        """(B, T) ids and targets -> what the last block's MLP reads (u = ln_2(h)), the
        residual stream h it adds to, and the targets, one row per token."""
        m = self.model
        with torch.no_grad():
            h = m.wte(x)  # (B, T, C), as GPT.forward builds it
            pos = torch.arange(x.size(1), device=x.device)
            if m.wpe is not None:
                h = h + m.wpe(pos)
            elif m.config.position == "sinusoidal":
                h = h + m.table[pos]
            for block in m.blocks[:-1]:
                h, _ = block(h, None, None)
            a, _ = self.last.attn(self.last.ln_1(h), None, None)
            h = (h + a).reshape(-1, h.size(-1))  # (B*T, C)
            return self.last.ln_2(h), h, y.reshape(-1)

    def loss(self, h: torch.Tensor, mlp_out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy (nats) with mlp_out where the last block's MLP output was."""
        return F.cross_entropy(self.model.head(self.model.ln_f(h + mlp_out)), y)


def entropy_bits(load: torch.Tensor) -> float:
    """Entropy of a distribution over experts: log2(E) bits when even, 0 on one expert."""
    p = load[load > 0].double()
    return float(-(p * p.log2()).sum().item())


class ProgressChart:
    """The max-load chart drawn while a variant trains (the curves done so far, then it)."""

    def __init__(self, done: list[tuple[str, list[float]]], name: str, initial: float) -> None:
        self.done, self.name, self.initial = done, name, initial

    def __call__(self, ys: list[float]) -> Chart:
        return max_load_chart([*self.done, (self.name, ys)], self.initial)


def train_layer(
    moe: MoE,
    frozen: Frozen,
    data: Tokens,
    params: MoEParams,
    coef: float,
    ctx: RunContext,
    step0: int,
    on_curve: ProgressChart,
) -> list[float]:
    """Adam on the layer alone; returns the busiest expert's share of each step's batch."""
    u, h, y = data
    pick = torch.Generator().manual_seed(params.seed + 3)  # the same batches for every variant
    noise_g = torch.Generator().manual_seed(params.seed + 1)  # and the same router noise
    router = [moe.w_gate, moe.w_noise]
    experts = [moe.w_in, moe.b_in, moe.w_out, moe.b_out]
    groups = [{"params": experts}, {"params": router, "lr": ROUTER_LR}]
    opt = torch.optim.Adam(groups, EXPERT_LR, foreach=True)  # one kernel per op, not per tensor
    max_load: list[float] = []
    total = 2 * params.steps
    for step in range(params.steps):
        ctx.check(step0 + step, total)
        idx = torch.randint(0, len(u), (BATCH_TOKENS,), generator=pick).to(u.device)
        noise = torch.randn(BATCH_TOKENS, moe.n_experts, generator=noise_g).to(u.device)
        out, r = moe(u[idx], noise)
        loss = frozen.loss(h[idx], out, y[idx])
        if coef > 0:
            loss = loss + coef * r.balance_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        max_load.append(float(r.load.max().item()))
        if (step + 1) % 20 == 0 and ctx.wants_progress:
            ctx.progress(step0 + step + 1, total, [on_curve(max_load)])
    return max_load


def evaluate(
    moe: MoE, frozen: Frozen, data: Tokens, seed: int
) -> tuple[torch.Tensor, float, float]:
    """(load (E,), next-token loss, balancing loss) on the held-out tokens, routed as in
    training: with the router's noise, drawn alike for every variant."""
    u, h, y = data
    noise = torch.randn(len(u), moe.n_experts, generator=torch.Generator().manual_seed(seed + 2))
    with torch.no_grad():
        out, r = moe(u, noise.to(u.device))
        loss = float(frozen.loss(h, out, y).item())
    return r.load.cpu(), loss, float(r.balance_loss().item())


def load_metrics(load: torch.Tensor, loss: float, aux: float, coef: float) -> dict[str, Number]:
    top = load.sort(descending=True).values
    bits = entropy_bits(load)
    metrics: dict[str, Number] = {f"load_expert_{i + 1}": float(v) for i, v in enumerate(load)}
    return metrics | {
        "max_load": float(top[0]),
        "top2_load": float(top[:2].sum()),
        "load_entropy_bits": bits,
        "effective_experts": 2**bits,  # as many equally loaded experts would give this entropy
        "idle_experts": float((load < IDLE_SHARE / len(load)).sum()),
        "balance_loss": num(aux),  # Switch's: 1 when even, E when one expert takes all
        "final_loss": num(loss),
        "balance_coef": coef,
    }


def run(experiment: Experiment, params: MoEParams, ctx: RunContext) -> EngineOutput:
    model: GPT = copy.deepcopy(ctx.lm.model).to(ctx.device)  # the served model is shared
    model.eval()
    model.requires_grad_(False)
    frozen = Frozen(model)
    block, c = model.config.block_size, model.config.n_embd
    text = glossary_text()  # the glossary's text: its training and held-out splits
    g = torch.Generator().manual_seed(params.seed)

    def tokens(ids: list[int], starts: torch.Tensor) -> Tokens:
        x, y = windows(torch.tensor(ids, dtype=torch.long), starts, block)
        return frozen.tokens(x.to(ctx.device), y.to(ctx.device))

    starts = torch.randint(0, len(text.train) - block - 1, (TRAIN_WINDOWS,), generator=g)
    train_data = tokens(text.train, starts)
    held = tokens(text.val, eval_starts(len(text.val), block, EVAL_WINDOWS))
    u, h, y = held
    with torch.no_grad():
        dense_loss = float(frozen.loss(h, frozen.last.mlp(u), y).item())
        no_mlp_loss = float(frozen.loss(h, torch.zeros_like(h), y).item())

    hidden = 4 * c // N_EXPERTS  # all experts together have the dense MLP's width
    initial = MoE(c, N_EXPERTS, hidden, model.config.n_layer, g).to(ctx.device)  # shared draw
    init_load, *_ = evaluate(initial, frozen, held, params.seed)
    init_max = float(init_load.max())
    coefs = {"balanced": params.balance_coef, "no-balance": 0.0}
    variants: list[VariantResult] = []
    curves: list[tuple[str, list[float]]] = []
    loads: dict[str, torch.Tensor] = {}
    losses: dict[str, float] = {}
    for k, spec in enumerate(experiment.variants):
        moe = copy.deepcopy(initial)
        coef = coefs[spec.name]
        on_curve = ProgressChart(list(curves), spec.name, init_max)
        ys = train_layer(moe, frozen, train_data, params, coef, ctx, k * params.steps, on_curve)
        curves.append((spec.name, ys))
        loads[spec.name], losses[spec.name], aux = evaluate(moe, frozen, held, params.seed)
        metrics = load_metrics(loads[spec.name], losses[spec.name], aux, coef)
        variants.append(VariantResult(name=spec.name, label=spec.label, metrics=metrics))
    ctx.progress(2 * params.steps, 2 * params.steps)

    run_metrics: dict[str, Number] = {
        "loss_cost_of_balance": num(losses["balanced"] - losses["no-balance"]),
        "initial_max_load": init_max,
        "dense_mlp_loss": num(dense_loss),
        "no_mlp_loss": num(no_mlp_loss),
    }
    charts = [load_chart(experiment, loads), max_load_chart(curves, init_max)]
    m = {v.name: v.metrics for v in variants}
    nb, bal = m["no-balance"], m["balanced"]
    summary = (
        f"After {params.steps} steps, experts left idle: {nb['idle_experts']:.0f} of "
        f"{N_EXPERTS} without the balancing loss, {bal['idle_experts']:.0f} with it. Without it "
        f"the two busiest took {pct(nb['top2_load'])} of the held-out tokens; with it the "
        f"busiest took {pct(bal['max_load'])} (an even share is {pct(1 / N_EXPERTS)}). "
        f"Held-out loss {losses['balanced']:.3f} nats with balancing, "
        f"{losses['no-balance']:.3f} without ({dense_loss:.3f} with the model's dense MLP, "
        f"{no_mlp_loss:.3f} with none)."
    )
    return EngineOutput(variants, charts, summary, run_metrics)


def pct(x: Number) -> str:
    return "undefined" if x is None else f"{100 * x:.3g}%"


def load_chart(experiment: Experiment, loads: dict[str, torch.Tensor]) -> Chart:
    specs = experiment.variants
    busiest = and_list([f"{pct(float(loads[v.name].max()))} ({v.label.lower()})" for v in specs])
    even = [(float(i), 1 / N_EXPERTS) for i in range(N_EXPERTS)]
    return Chart(
        id="load",
        kind="bar",
        title="Share of held-out tokens routed to each expert",
        x_label="expert",
        y_label="share of tokens",
        categories=[f"expert {i + 1}" for i in range(N_EXPERTS)],
        series=[
            *(
                Series(
                    label=v.label,
                    variant=v.name,
                    points=[(float(i), float(x)) for i, x in enumerate(loads[v.name].tolist())],
                )
                for v in specs
            ),
            Series(label="even share", points=even, style="dashed"),
        ],
        finding=f"The busiest expert's share: {busiest}; an even share is {pct(1 / N_EXPERTS)}.",
    )


def max_load_chart(curves: list[tuple[str, list[float]]], initial: float) -> Chart:
    """The busiest expert's share of each batch by step; x = 0 is the untrained router's
    share of the held-out tokens (the same for every variant)."""
    words = {"balanced": "with the balancing loss", "no-balance": "without it"}
    series: list[Series] = []
    for name, ys in curves:
        s = curve(words[name], [num(v) for v in ys], name, x0=1)
        s.points.insert(0, (0.0, num(initial)))
        series.append(s)
    ends = [f"{pct(ys[-1])} {words[name]}" for name, ys in curves if ys]
    return Chart(
        id="max-load",
        kind="line",
        title="Busiest expert's share of each batch, along training",
        x_label="step",
        y_label="busiest expert's share",
        series=series,
        finding=f"{pct(initial)} before training"
        + (f"; at the last step {and_list(ends)}." if ends else " (no step taken)."),
    )
