"""The architectures engines against plain references (hand-written recurrences, torch's
conv1d), and the published effects at settings test_experiments.py does not run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from app.demo.catalog import EXPERIMENTS, resolve
from app.demo.engines.architectures_conv import CNN
from app.demo.engines.architectures_recurrent import DTYPE, log_linear_r2, make_net, token_gradients
from app.demo.errors import RunCancelled
from app.demo.experiment import execute
from app.demo.families.architectures import FAMILY, MOTIF, RecurrentParams
from app.demo.result import DemoResult, Progress

NAMES = [name for name, e in EXPERIMENTS.items() if e.family == FAMILY]


def run(name: str, **params: object) -> DemoResult:
    experiment, p = resolve(name, {k: str(v) for k, v in params.items()})
    return execute(experiment, p)


def value(result: DemoResult, variant: str, key: str) -> float:
    """One variant's metric, which must be a number."""
    x = next(v.metrics for v in result.variants if v.name == variant)[key]
    assert x is not None, f"{variant}.{key} is undefined"
    return x


# ----------------------------------------------------------------------------- references


def reference_gradients(
    kind: str, net: torch.nn.Module, readout: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """||dL/dx_t|| from a recurrence written out step by step with the same weights."""
    w_ih, w_hh = net.weight_ih_l0, net.weight_hh_l0
    b = net.bias_ih_l0 + net.bias_hh_l0
    xs = [x[:, t].clone().requires_grad_(True) for t in range(x.shape[1])]  # (B, 1) each
    h = torch.zeros(x.shape[0], w_hh.shape[1], dtype=DTYPE)
    c = torch.zeros_like(h)
    for xt in xs:
        pre = xt @ w_ih.T + h @ w_hh.T + b
        if kind == "rnn":
            h = torch.tanh(pre)
        else:
            i, f, g, o = pre.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
    loss = F.binary_cross_entropy_with_logits(h @ readout, y)
    grads = torch.autograd.grad(loss, xs)
    return torch.stack([gr.norm() for gr in grads])


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_token_gradients_match_a_hand_written_recurrence(kind: str) -> None:
    p = RecurrentParams(seq_len=12, hidden=6, batch_size=8, forget_bias=1.0)
    g = torch.Generator().manual_seed(0)
    net = make_net(kind, p, g)
    x = torch.randint(0, 2, (8, 12, 1), generator=g).to(DTYPE) * 2 - 1
    y = (x[:, 0, 0] > 0).to(DTYPE)
    readout = torch.randn(6, generator=g, dtype=DTYPE)
    want = reference_gradients(kind, net, readout, x, y)
    torch.testing.assert_close(token_gradients(net, readout, x, y), want)


def test_lstm_forget_bias_is_set() -> None:
    net = make_net(
        "lstm", RecurrentParams(hidden=4, forget_bias=2.5), torch.Generator().manual_seed(0)
    )
    total = net.bias_ih_l0 + net.bias_hh_l0
    torch.testing.assert_close(total[4:8], torch.full((4,), 2.5, dtype=DTYPE))


def test_log_linear_r2() -> None:
    assert log_linear_r2([0.5**t for t in range(10)]) == pytest.approx(1.0)
    zigzag = log_linear_r2([1.0, 1e-6, 1.0, 1e-6, 1.0])
    assert zigzag is not None and zigzag < 0.2


def test_cnn_is_a_convolution() -> None:
    g = torch.Generator().manual_seed(0)
    cnn = CNN(channels=3)
    x = torch.randn(4, 20, generator=g)
    conv = F.conv1d(x[:, None], cnn.filters.weight[:, None], cnn.filters.bias)  # (B, C, positions)
    torch.testing.assert_close(cnn(x), cnn.head(torch.relu(conv).amax(dim=2)))
    assert cnn.filters.weight.shape == (3, MOTIF)


# ----------------------------------------------------------------------------- effects


def test_a_larger_forget_bias_keeps_more_gradient() -> None:
    """The cell state's gradient is multiplied by the forget gate, sigmoid(bias) at init."""
    factors = [
        value(run("rnn-vs-lstm", forget_bias=b), "lstm", "per_step_factor") for b in (-1, 1, 3)
    ]
    assert factors[0] < factors[1] < factors[2], factors
    assert factors[2] > 0.9


def test_rnn_vanishes_at_any_width() -> None:
    result = run("rnn-vs-lstm", hidden=128)
    assert all(c.holds for c in result.claims), result.claims


def test_more_data_does_not_teach_the_mlp_unseen_positions() -> None:
    result = run("cnn-vs-mlp", n_train=1024)
    assert all(c.holds for c in result.claims), result.claims


# ----------------------------------------------------------------------------- the run


@pytest.mark.parametrize("name", NAMES)
def test_progress_cancellation_and_budget(name: str) -> None:
    experiment, p = resolve(name, {})
    assert p.estimate_seconds() <= 1.0
    events: list[Progress] = []
    execute(experiment, p, on_progress=events.append)
    assert events and all(e.charts for e in events)
    with pytest.raises(RunCancelled):
        execute(experiment, p, should_stop=lambda: True)
