"""What the signal-propagation engines share: log-scale points and a random generator."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from app.demo.engines.common import num
from app.demo.result import Number, Series

# The measurements of this family span 10-20 orders of magnitude (a residual falling to
# rounding, a Jacobian's singular values), beyond float32's resolution (about 1e-7 of the
# largest value), so they run in float64: at initialization it costs little.
DTYPE = torch.float64


def generator(seed: int) -> torch.Generator:
    """A CPU generator: the same draws on every device, so a run is reproducible anywhere."""
    return torch.Generator().manual_seed(seed)


def positive(x: float) -> Number:
    """A value for a log-scale axis: None unless finite and above zero."""
    y = num(x)
    return y if y is not None and y > 0 else None


def log_series(label: str, variant: str | None, ys: Sequence[float], x0: int = 0) -> Series:
    """y by index (x = x0, x0 + 1, ...) for a log-scale chart."""
    return Series(
        label=label,
        variant=variant,
        points=[(float(x0 + i), positive(y)) for i, y in enumerate(ys)],
    )
