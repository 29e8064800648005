"""Direct checks of the mixture-of-experts and mixed-precision engines against plain
references: batched dispatch equals each token through its own expert, the hidden states and
the dense MLP rebuild the model's own logits, the load and Switch's balancing loss are what
they say; float16's limits are torch's, the gradients are autograd's, and what float16 loses
is what lies below its smallest subnormal."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn import functional as F

from app.demo.engines import efficiency_moe as moe_engine
from app.demo.engines import efficiency_precision as precision
from app.demo.families.efficiency_training import (
    FLOAT16_MAX,
    FLOAT16_NORMAL,
    FLOAT16_SUBNORMAL,
    N_EXPERTS,
)
from app.demo.lm.gpt import GPT
from app.demo.lm.training import windows
from tests.lm_fixtures import tiny_lm

C, HIDDEN = 16, 8


def small_moe(seed: int = 0) -> moe_engine.MoE:
    layer = moe_engine.MoE(C, N_EXPERTS, HIDDEN, 2, torch.Generator().manual_seed(seed))
    with torch.no_grad():  # biases non-zero, so that a wrong expert's bias shows
        layer.b_in.normal_(0, 0.1, generator=torch.Generator().manual_seed(seed + 1))
        layer.b_out.normal_(0, 0.1, generator=torch.Generator().manual_seed(seed + 2))
    return layer


def plain_expert(layer: moe_engine.MoE, e: int, x: torch.Tensor) -> torch.Tensor:
    """One token through expert e, written out."""
    return F.gelu(x @ layer.w_in[e] + layer.b_in[e]) @ layer.w_out[e] + layer.b_out[e]


@pytest.mark.parametrize("skewed", [False, True])
def test_dispatch_equals_each_token_through_its_expert(skewed: bool) -> None:
    layer = small_moe()
    g = torch.Generator().manual_seed(3)
    n = 50
    u = torch.randn(n, C, generator=g)
    expert = torch.randint(0, N_EXPERTS, (n,), generator=g)
    if skewed:  # most tokens on one expert, some experts with none
        expert = torch.where(torch.rand(n, generator=g) < 0.8, 5, expert % 3)
    counts = torch.bincount(expert, minlength=N_EXPERTS)
    assert skewed == bool((counts == 0).any())
    got = layer.experts(u, expert, counts)
    expected = torch.stack([plain_expert(layer, int(e), u[i]) for i, e in enumerate(expert)])
    assert got.shape == (n, C)
    assert torch.allclose(got, expected, atol=1e-6)


def test_forward_scales_by_the_chosen_experts_probability() -> None:
    layer = small_moe()
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        layer.w_gate.normal_(0, 1, generator=g)
    u, noise = torch.randn(30, C, generator=g), torch.randn(30, N_EXPERTS, generator=g)
    out, r = layer(u, noise)
    scores = u @ layer.w_gate + noise * F.softplus(u @ layer.w_noise)
    probs = scores.softmax(-1)
    assert torch.equal(r.expert, probs.argmax(-1))
    for i in range(len(u)):
        e = int(probs[i].argmax())
        assert torch.allclose(out[i], probs[i, e] * plain_expert(layer, e, u[i]), atol=1e-6)
    out.sum().backward()  # the task loss reaches the router through the gate
    assert float(layer.w_gate.grad.abs().sum()) > 0


def test_load_and_the_balancing_loss() -> None:
    g = torch.Generator().manual_seed(5)
    probs = torch.rand(40, N_EXPERTS, generator=g).softmax(-1)
    expert = torch.randint(0, N_EXPERTS, (40,), generator=g)
    r = moe_engine.Routing(probs, expert)
    assert int(r.counts.sum()) == 40
    assert abs(float(r.load.sum()) - 1) < 1e-6
    f = [sum(1 for e in expert.tolist() if e == i) / 40 for i in range(N_EXPERTS)]
    p = [float(probs[:, i].mean()) for i in range(N_EXPERTS)]
    expected = N_EXPERTS * sum(fi * pi for fi, pi in zip(f, p, strict=True))
    assert abs(float(r.balance_loss()) - expected) < 1e-5
    # even tokens and probabilities give 1; everything on one expert, surely, gives E
    even = moe_engine.Routing(torch.full((16, N_EXPERTS), 1 / N_EXPERTS), torch.arange(16) % 8)
    assert abs(float(even.balance_loss()) - 1) < 1e-6
    one = moe_engine.Routing(F.one_hot(torch.zeros(16, dtype=torch.long), N_EXPERTS).float(),
                             torch.zeros(16, dtype=torch.long))  # fmt: skip
    assert abs(float(one.balance_loss()) - N_EXPERTS) < 1e-6


def test_the_untrained_router_spreads_tokens_evenly() -> None:
    layer = small_moe()
    g = torch.Generator().manual_seed(6)
    n = 4096
    r = layer.route(torch.randn(n, C, generator=g) + 3.0, torch.randn(n, N_EXPERTS, generator=g))
    # zero router weights: only the noise decides; the shared offset of the inputs cannot
    assert float(r.load.max()) < 1.5 / N_EXPERTS
    assert float(r.load.min()) > 0.5 / N_EXPERTS


def test_entropy_bits() -> None:
    assert abs(moe_engine.entropy_bits(torch.full((8,), 1 / 8)) - 3) < 1e-9
    assert moe_engine.entropy_bits(F.one_hot(torch.tensor(2), 8).float()) == 0
    half = torch.tensor([0.5, 0.5, 0, 0, 0, 0, 0, 0])
    assert abs(moe_engine.entropy_bits(half) - 1) < 1e-9


def test_hidden_states_and_the_dense_mlp_give_the_models_logits() -> None:
    model: GPT = copy.deepcopy(tiny_lm().model)
    frozen = moe_engine.Frozen(model)
    g = torch.Generator().manual_seed(7)
    x = torch.randint(0, 256, (3, model.config.block_size), generator=g)
    y = torch.randint(0, 256, (3, model.config.block_size), generator=g)
    u, h, targets = frozen.tokens(x, y)
    assert u.shape == h.shape == (3 * model.config.block_size, model.config.n_embd)
    with torch.no_grad():
        logits, _ = model(x)
        rebuilt = model.head(model.ln_f(h + frozen.last.mlp(u)))
        dense = float(frozen.loss(h, frozen.last.mlp(u), targets))
        whole = float(model.loss(x, y))
    assert torch.allclose(rebuilt, logits.reshape(-1, logits.size(-1)), atol=1e-5)
    assert abs(dense - whole) < 1e-5


# ----------------------------------------------------------------------------- precision


def test_float16_limits_are_torchs() -> None:
    info = torch.finfo(torch.float16)
    assert FLOAT16_NORMAL == info.tiny
    assert FLOAT16_MAX == info.max
    smallest = torch.nextafter(torch.tensor(0.0, dtype=torch.float16), torch.tensor(1.0).half())
    assert float(smallest) == FLOAT16_SUBNORMAL
    # below half the smallest subnormal a value rounds to zero; bfloat16 keeps it
    tiny = torch.tensor([0.4 * FLOAT16_SUBNORMAL, 0.6 * FLOAT16_SUBNORMAL])
    assert tiny.half().tolist() == [0.0, FLOAT16_SUBNORMAL]
    assert bool((tiny.bfloat16() != 0).all())


def batch(n: int = 2) -> tuple[GPT, torch.Tensor, torch.Tensor]:
    model = tiny_lm().model
    ids = torch.tensor(list(b"Mixed precision keeps float32 master weights. " * 8))
    x, y = windows(ids, torch.tensor([0, 37][:n]), model.config.block_size)
    return model, x, y


def test_float32_gradients_are_autograds_and_scaling_is_undone() -> None:
    model, x, y = batch()
    ref = copy.deepcopy(model)
    ref.train()
    ref.loss(x, y).backward()
    expected = torch.cat([p.grad.reshape(-1) for p in ref.parameters()])
    got = precision.gradients(model, x, y, torch.float32, 1.0, "cpu")
    assert torch.allclose(got.weights, expected, atol=1e-7)
    scaled = precision.gradients(model, x, y, torch.float32, 1024.0, "cpu")
    assert torch.allclose(scaled.weights, expected, rtol=1e-4, atol=1e-9)
    # d loss / d logits is (softmax - one_hot) / number of tokens
    with torch.no_grad():
        logits, _ = model(x)
    p = logits.reshape(-1, logits.size(-1)).softmax(-1)
    by_hand = (p - F.one_hot(y.reshape(-1), p.size(-1))) / y.numel()
    assert torch.allclose(got.logits, by_hand.reshape(-1), atol=1e-8)


def test_what_float16_loses_is_below_its_range() -> None:
    model, x, y = batch()
    ref = precision.gradients(model, x, y, torch.float32, 1.0, "cpu")
    half = precision.gradients(model, x, y, torch.float16, 1.0, "cpu")
    lost = (ref.logits != 0) & (half.logits == 0)
    assert int(lost.sum()) > 0, "the tiny model's batch should lose some logit gradients"
    # each lost entry was below float16's smallest subnormal (2x margin for the float16
    # forward pass's own rounding of the probabilities)
    assert float(ref.logits[lost].abs().max()) < 2 * FLOAT16_SUBNORMAL
    scaled = precision.gradients(model, x, y, torch.float16, 2.0**14, "cpu")
    assert int(((ref.logits != 0) & (scaled.logits == 0)).sum()) < int(lost.sum()) // 10


def test_underflow_counts_entries_zero_only_in_the_second() -> None:
    ref = torch.tensor([1.0, 2e-9, 0.0, -3e-9, 5.0])
    got = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])
    assert precision.underflow(ref, got) == 3 / 4
    assert precision.underflow(torch.zeros(3), torch.zeros(3)) is None


def test_histogram_bins_by_power_of_two() -> None:
    g = torch.tensor([1.5, 1.0, 0.3, -0.3, 0.0, 2.0**-60])
    hist = dict(precision.histogram(g))
    assert abs(sum(v for v in hist.values() if v is not None) - 1) < 1e-9
    assert hist[0.0] == 2 / 5  # 1.0 and 1.5 lie in [2^0, 2^1)
    assert hist[-2.0] == 2 / 5  # |0.3| lies in [2^-2, 2^-1)
    assert hist[float(precision.HIST_LOW)] == 1 / 5  # clamped to the lowest bin
    assert math.isclose(sum(1 for _ in hist), precision.HIST_HIGH - precision.HIST_LOW + 1)
