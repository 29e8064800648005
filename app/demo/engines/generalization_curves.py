"""Train-vs-validation engine: an over-sized MLP fitted to a few noisily labelled points.

The task: points uniform in the unit disk, class 1 inside radius 1/sqrt(2) (half the area),
each label flipped with probability label_noise; training, validation and test examples are
drawn from that same distribution. Variants of the same hidden width train together as one
stacked network (every parameter has a leading variant dimension K), from the same
initialization, on the same examples, with full-batch Adam and binary cross-entropy.
Variants differ only in the idea under test: hidden width, dropout, decoupled weight decay
(as in AdamW), or random rotations of the inputs (a true invariance: the label depends only
on the distance from the centre). Train and validation loss are measured CURVE_POINTS times
per run; the best validation step's weights are kept for early stopping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from app.demo.engines.common import num
from app.demo.experiment import Experiment, RunContext
from app.demo.families.generalization import CurvesParams, CurveVariant
from app.demo.result import Number

N_VAL = 200  # validation examples (choose the stopping step; report the validation loss)
N_TEST = 200  # test examples (judge the early-stopped model on data that chose nothing)
RADIUS = 1 / math.sqrt(2)  # class boundary: half the disk's area on each side
CURVE_POINTS = 100  # loss evaluations per run (plus step 0)
PROGRESS_EVENTS = 8
ANGLES = 32  # rotations at which a model's rotation variance is measured
DATA, HELD_OUT, INIT, NOISE = 0, 1, 2, 3  # random streams: each purpose its own
STREAMS = 4


def generator(seed: int, stream: int) -> torch.Generator:
    """An independent random stream per purpose, all from the run's seed."""
    return torch.Generator().manual_seed(seed * STREAMS + stream)


@dataclass
class Split:
    x: torch.Tensor  # (N, 2)
    y: torch.Tensor  # (N, 1) labels 0/1, some flipped


def make_split(n: int, label_noise: float, g: torch.Generator) -> Split:
    r = torch.rand(n, generator=g).sqrt()  # sqrt: uniform over the disk's area
    angle = torch.rand(n, generator=g) * 2 * math.pi
    x = torch.stack([r * angle.cos(), r * angle.sin()], dim=1)
    clean = (r < RADIUS).float()
    flip = torch.rand(n, generator=g) < label_noise
    return Split(x, torch.where(flip, 1 - clean, clean).view(n, 1))


def make_data(params: CurvesParams) -> tuple[Split, Split, Split]:
    """Training, validation and test examples from one distribution."""
    train = make_split(params.n_train, params.label_noise, generator(params.seed, DATA))
    # the held-out sets have their own stream, so they stay the same whatever n_train is
    g = generator(params.seed, HELD_OUT)
    return (
        train,
        make_split(N_VAL, params.label_noise, g),
        make_split(N_TEST, params.label_noise, g),
    )


def rotate(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """x (..., 2) rotated by angle (..., 1) radians."""
    c, s = angle.cos(), angle.sin()
    return torch.cat([x[..., :1] * c - x[..., 1:] * s, x[..., :1] * s + x[..., 1:] * c], dim=-1)


class StackedMLP:
    """K copies of a 2 -> width (x depth) -> 1 ReLU MLP, all starting from the same weights.

    Every parameter is a view into one flat tensor and its gradient into another, so the
    optimizer updates all of them in a handful of ops (per-op overhead, not arithmetic, is
    the cost at this size). Layout: per layer, weights (K, in, out) then biases (K, 1, out).
    """

    def __init__(self, k: int, width: int, depth: int, g: torch.Generator) -> None:
        sizes = [2] + [width] * depth + [1]
        shapes: list[tuple[int, int, int]] = []
        chunks: list[torch.Tensor] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1 / math.sqrt(n_in)  # nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in))
            w = (torch.rand(n_out, n_in, generator=g) * 2 - 1) * bound  # as nn.Linear stores it
            b = (torch.rand(n_out, generator=g) * 2 - 1) * bound
            chunks += [w.t().expand(k, -1, -1).reshape(-1), b.expand(k, -1).reshape(-1)]
            shapes += [(k, n_in, n_out), (k, 1, n_out)]
        self.k = k
        self.flat = torch.cat(chunks)  # (P,) every parameter
        self.grad = torch.zeros_like(self.flat)  # (P,) every gradient
        self.params = _views(self.flat, shapes)  # w0, b0, w1, b1, ...: leaves on flat's memory
        for p, gp in zip(self.params, _views(self.grad, shapes), strict=True):
            p.requires_grad_()
            p.grad = gp  # backward accumulates into this view, i.e. into self.grad
        self.shapes = shapes
        n = [a * b * c for a, b, c in shapes]
        # which variant each element belongs to, and whether it is a weight (not a bias)
        self.owner = torch.cat([torch.arange(k).repeat_interleave(m // k) for m in n])
        self.is_weight = torch.cat([torch.full((m,), i % 2 == 0) for i, m in enumerate(n)])

    def __call__(
        self, x: torch.Tensor, drop: torch.Tensor | None = None, g: torch.Generator | None = None
    ) -> torch.Tensor:
        """x (K, N, 2) -> logits (K, N, 1); drop (K, 1, 1): per-variant dropout rate."""
        ps = self.params
        h = x
        last = len(ps) // 2 - 1
        for i in range(last + 1):
            h = torch.baddbmm(ps[2 * i + 1], h, ps[2 * i])  # (K, N, out)
            if i < last:
                h = torch.relu(h)
                if drop is not None:  # inverted dropout: keep with prob 1-p, scale by 1/(1-p)
                    keep = torch.rand(h.shape, generator=g) >= drop
                    h = h * keep / (1 - drop)
        return h

    def weight_norm(self) -> torch.Tensor:
        """(K,) L2 norm of all weights (biases excluded, as weight decay leaves them)."""
        sq = self.flat**2 * self.is_weight
        return torch.zeros(self.k).index_add_(0, self.owner, sq).sqrt()

    def variant(self, flat: torch.Tensor, i: int) -> list[torch.Tensor]:
        """Variant i's parameters from a flat tensor: w0 (in, out), b0 (1, out), w1, ..."""
        return [p[i].clone() for p in _views(flat.detach(), self.shapes)]


def _views(flat: torch.Tensor, shapes: list[tuple[int, int, int]]) -> list[torch.Tensor]:
    """Consecutive pieces of a flat tensor viewed as the given shapes."""
    out, start = [], 0
    for shape in shapes:
        n = shape[0] * shape[1] * shape[2]
        out.append(flat[start : start + n].view(shape))
        start += n
    return out


class Adam:
    """Adam (Kingma and Ba, 2015) on one flat tensor, with AdamW's decoupled weight decay.

    The same arithmetic as torch.optim.AdamW, applied per element, so stacked variants train
    exactly as separate networks would; `decay` (P,) is 1 - lr * weight_decay per element.
    """

    def __init__(self, p: torch.Tensor, grad: torch.Tensor, lr: float, decay: torch.Tensor) -> None:
        self.p, self.g, self.lr, self.decay = p, grad, lr, decay
        self.b1, self.b2, self.eps = 0.9, 0.999, 1e-8  # torch's defaults
        self.m, self.v = torch.zeros_like(p), torch.zeros_like(p)
        self.t = 0

    def step(self) -> None:
        g = self.g
        self.t += 1
        with torch.no_grad():
            self.p.mul_(self.decay)  # decoupled: shrink the weights, not the gradient
            self.m.lerp_(g, 1 - self.b1)
            self.v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            denom = (self.v.sqrt() / math.sqrt(1 - self.b2**self.t)).add_(self.eps)
            self.p.addcdiv_(self.m, denom, value=-self.lr / (1 - self.b1**self.t))
        g.zero_()


def bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per variant: logits (K, N, 1) vs labels (N, 1) -> (K,)."""
    return F.binary_cross_entropy_with_logits(logits, y.expand_as(logits), reduction="none").mean(
        (1, 2)
    )


@dataclass
class Slot:
    """One distinct training configuration and everything measured while it trained."""

    width: int
    dropout: float
    weight_decay: float
    rotation: float
    steps: list[int] = field(default_factory=list)  # evaluation steps
    train: list[float] = field(default_factory=list)  # training loss without dropout or rotations
    val: list[float] = field(default_factory=list)
    norm: list[float] = field(default_factory=list)  # weight norm
    final: list[torch.Tensor] = field(default_factory=list)  # parameters at the end
    best: list[torch.Tensor] = field(default_factory=list)  # at the best validation step

    @property
    def best_index(self) -> int:
        """The evaluation with the lowest validation loss (the first, on ties)."""
        return min(range(len(self.val)), key=self.val.__getitem__)


def slot_key(v: CurveVariant, params: CurvesParams) -> tuple[int, float, float, float]:
    """(width, dropout rate, weight decay, rotation range) of a variant at these params."""
    return (
        int(getattr(params, v.width)),
        float(getattr(params, "dropout", 0.0)) if v.dropout else 0.0,
        float(getattr(params, "weight_decay", 0.0)) if v.weight_decay else 0.0,
        float(getattr(params, "rotation", 0.0)) if v.augment else 0.0,
    )


def eval_steps(steps: int) -> list[int]:
    """0 and CURVE_POINTS evenly spaced steps ending at `steps`."""
    return sorted({0} | {round(steps * i / CURVE_POINTS) for i in range(1, CURVE_POINTS + 1)})


@dataclass
class Trained:
    """What the engine hands to metrics and charts."""

    variants: tuple[CurveVariant, ...]
    slot_of: list[int]  # variant -> slot index
    slots: list[Slot]
    data: tuple[Split, Split, Split]
    params: CurvesParams


ProgressFn = Callable[[int, int, Trained], None]


def train_group(
    t: Trained, width: int, ctx: RunContext, done: int, total: int, report: ProgressFn
) -> None:
    """Train the slots of one width together as one stacked network."""
    params, slots = t.params, [s for s in t.slots if s.width == width]
    train, val, _ = t.data
    k = len(slots)
    net = StackedMLP(k, width, params.depth, generator(params.seed, INIT))
    drop = torch.tensor([s.dropout for s in slots]).view(k, 1, 1)
    turn = torch.tensor([s.rotation for s in slots]).view(k, 1, 1)
    wd = torch.tensor([s.weight_decay for s in slots])[net.owner] * net.is_weight  # (P,)
    opt = Adam(net.flat, net.grad, params.lr, 1 - params.lr * wd)
    use_drop, use_turn = bool((drop > 0).any()), bool((turn > 0).any())
    g = generator(params.seed, NOISE)
    x, xv = train.x.expand(k, -1, -1), val.x.expand(k, -1, -1)  # (K, N, 2)
    at = set(eval_steps(params.steps))
    every = max(1, total // PROGRESS_EVENTS)  # events over the whole run, all groups
    rows: list[tuple[int, torch.Tensor]] = []  # (step, (3, K)): train, val loss, weight norm
    best_val = torch.full((k,), math.inf)
    best = net.flat.clone()
    for step in range(params.steps + 1):
        ctx.check(done + step, total)
        if step in at:
            with torch.no_grad():
                row = torch.stack([bce(net(x), train.y), bce(net(xv), val.y), net.weight_norm()])
                better = row[1] < best_val  # (K,) strictly: the first of equal losses is kept
                best_val = torch.where(better, row[1], best_val)
                best = torch.where(better[net.owner], net.flat, best)
            rows.append((step, row))
        if (done + step) % every == 0 or step == params.steps:
            _record(slots, rows)
            rows = []
            report(done + step, total, t)
        if step == params.steps:
            break
        # rotate each point by a fresh random angle: the label depends only on the radius
        xb = x
        if use_turn:
            xb = rotate(x, (torch.rand(k, params.n_train, 1, generator=g) * 2 - 1) * math.pi * turn)
        loss = bce(net(xb, drop if use_drop else None, g), train.y)  # (K,)
        loss.sum().backward()  # the variants are independent: each gets its own gradient
        opt.step()
    for i, s in enumerate(slots):
        s.final, s.best = net.variant(net.flat, i), net.variant(best, i)


def _record(slots: list[Slot], rows: list[tuple[int, torch.Tensor]]) -> None:
    """Append the pending evaluations (one host copy) to each slot's history."""
    if not rows:
        return
    values = torch.stack([r for _, r in rows]).tolist()  # (E, 3, K)
    for i, s in enumerate(slots):
        s.steps += [step for step, _ in rows]
        s.train += [r[0][i] for r in values]
        s.val += [r[1][i] for r in values]
        s.norm += [r[2][i] for r in values]


def run_training(
    experiment: Experiment, params: CurvesParams, ctx: RunContext, report: ProgressFn
) -> Trained:
    """Train every distinct configuration the experiment's variants need."""
    variants = tuple(v for v in experiment.variants if isinstance(v, CurveVariant))
    assert len(variants) == len(experiment.variants), "generalization variants are CurveVariant"
    keys: list[tuple[int, float, float, float]] = []
    slot_of: list[int] = []
    for v in variants:
        key = slot_key(v, params)
        if key not in keys:
            keys.append(key)
        slot_of.append(keys.index(key))
    t = Trained(variants, slot_of, [Slot(*key) for key in keys], make_data(params), params)
    widths = list(dict.fromkeys(s.width for s in t.slots))
    total = len(widths) * params.steps
    for n, w in enumerate(widths):
        train_group(t, w, ctx, n * params.steps, total, report)
    return t


def predict(weights: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """One variant's network (w0 (in, out), b0 (1, out), ...) at x (N, 2) -> logits (N,)."""
    layers = len(weights) // 2
    h = x
    for i in range(layers):
        h = h @ weights[2 * i] + weights[2 * i + 1]  # (N, out)
        if i < layers - 1:
            h = torch.relu(h)
    return h[:, 0]


def model_of(t: Trained, k: int) -> list[torch.Tensor]:
    """The parameters variant k reports: the best validation step's or the last step's."""
    s = t.slots[t.slot_of[k]]
    return s.best if t.variants[k].restore_best else s.final


def variant_metrics(t: Trained, k: int) -> dict[str, Number]:
    """Everything the claims and charts read for variant k (its parameters are detached)."""
    s, model = t.slots[t.slot_of[k]], model_of(t, k)
    measured: dict[str, Number] = {}
    for name, d in zip(("train", "val", "test"), t.data, strict=True):
        logits = predict(model, d.x)
        loss = F.binary_cross_entropy_with_logits(logits, d.y[:, 0])
        measured[f"final_{name}_loss"] = num(float(loss))
        measured[f"final_{name}_acc"] = float(((logits > 0).float() == d.y[:, 0]).float().mean())
    b = s.best_index
    return {
        "final_loss": measured["final_train_loss"],
        **measured,
        "best_val_loss": num(s.val[b]),
        "best_step": float(s.steps[b]),
        "best_step_fraction": s.steps[b] / max(1, t.params.steps),
        "val_rise": _ratio(s.val[-1], s.val[b]),  # the run's final over best validation loss
        "train_fall": _ratio(s.train[-1], s.train[b]),  # final over best-step training loss
        "gap": _diff(measured["final_val_loss"], measured["final_train_loss"]),
        "weight_norm": num(float(torch.sqrt(sum((w**2).sum() for w in model[::2])))),
        "rotation_variance": num(rotation_variance(model, t.data[1].x)),
    }


def rotation_variance(model: list[torch.Tensor], x: torch.Tensor) -> float:
    """Mean over points x (N, 2) of the variance of P(class 1) over ANGLES rotations of x:
    0 for a model that depends only on the radius, as the true rule does."""
    angles = torch.arange(ANGLES).view(-1, 1, 1) * (2 * math.pi / ANGLES)  # (A, 1, 1)
    p = torch.sigmoid(predict(model, rotate(x.expand(ANGLES, -1, -1), angles).reshape(-1, 2)))
    return float(p.view(ANGLES, -1).var(dim=0).mean())


def _ratio(a: float, b: float) -> Number:
    return num(a / b) if b > 0 else None


def _diff(a: Number, b: Number) -> Number:
    return None if a is None or b is None else a - b
