"""A small regression and a one-hidden-layer tanh MLP, K copies trained at once with SGD.

Shared by the learning-rate sweep and the schedules: every copy starts from the same weights
and sees the same batches; only its learning rate (a (K,) tensor, which may change every
step) differs. Weights are stacked with a leading K dimension and stored transposed,
(K, in, out), so one torch.baddbmm runs all K copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

D_IN = 8  # input features
TEACHER_WIDTH = 32  # hidden units of the random teacher that makes the targets


@dataclass
class Regression:
    x_train: torch.Tensor  # (N, D)
    y_train: torch.Tensor  # (N, 1)
    x_val: torch.Tensor  # (N, D) held out, from the same teacher
    y_val: torch.Tensor  # (N, 1)


def make_regression(seed: int, n: int, noise: float) -> Regression:
    """Targets of a fixed random tanh teacher, standardized, plus Gaussian label noise."""
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(2 * n, D_IN, generator=g)
    w1 = torch.randn(D_IN, TEACHER_WIDTH, generator=g) / math.sqrt(D_IN)
    w2 = torch.randn(TEACHER_WIDTH, 1, generator=g) / math.sqrt(TEACHER_WIDTH)
    y = torch.tanh(1.5 * x @ w1) @ w2  # (2N, 1)
    y = (y - y.mean()) / y.std() + noise * torch.randn(2 * n, 1, generator=g)
    return Regression(x[:n], y[:n], x[n:], y[n:])


class StackedMLP:
    """K copies of Linear(D, H) -> tanh -> Linear(H, 1), all from one initialization."""

    def __init__(self, k: int, hidden: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)

        # nn.Linear's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn once and copied
        def uniform(*shape: int, fan_in: int) -> torch.Tensor:
            w = (torch.rand(1, *shape, generator=g) * 2 - 1) / math.sqrt(fan_in)
            return w.repeat(k, *([1] * len(shape))).requires_grad_()

        self.w1 = uniform(D_IN, hidden, fan_in=D_IN)  # (K, D, H)
        self.b1 = uniform(1, hidden, fan_in=D_IN)  # (K, 1, H)
        self.w2 = uniform(hidden, 1, fan_in=hidden)  # (K, H, 1)
        self.b2 = uniform(1, 1, fan_in=hidden)  # (K, 1, 1)
        self.k = k

    @property
    def params(self) -> list[torch.Tensor]:
        return [self.w1, self.b1, self.w2, self.b2]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, D), shared by all copies -> predictions (K, N, 1)."""
        h = torch.tanh(torch.baddbmm(self.b1, x.expand(self.k, *x.shape), self.w1))
        return torch.baddbmm(self.b2, h, self.w2)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean squared error of every copy: (K,)."""
        return (self(x) - y).square().mean(dim=(1, 2))

    def sgd_step(self, x: torch.Tensor, y: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """One SGD step of every copy on (x, y) at its own lr (K,); returns the losses (K,).

        The copies are independent, so the gradient of the summed loss is each copy's own."""
        loss = self.loss(x, y)
        grads = torch.autograd.grad(loss.sum(), self.params)
        with torch.no_grad():
            for p, gr in zip(self.params, grads, strict=True):
                p.sub_(lr.view(-1, 1, 1) * gr)
        return loss.detach()

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Losses (K,) without building a graph."""
        with torch.no_grad():
            return self.loss(x, y)
