"""Claims: a published effect stated as a check on a run's own numbers (no torch here).

A claim reads the run's metrics (per variant, plus run-level ones under RUN) and computes
`holds` in the run; nothing about the outcome is written by hand. The first claim of an
experiment is its main one: the experiment's counterfactual settings must make it fail.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from app.demo.result import ClaimResult, Number

RUN = "run"  # the metrics key of run-level measures (comparisons across variants)
Metrics = Mapping[str, Mapping[str, Number]]

_OPS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "<": (operator.lt, "below"),
    "<=": (operator.le, "at most"),
    ">": (operator.gt, "above"),
    ">=": (operator.ge, "at least"),
}


@dataclass(frozen=True)
class Claim:
    """measure(metrics) must satisfy `op bound` (or lie in [low, high] for op 'between')."""

    id: str
    statement: str
    measure: Callable[[Metrics], Number]
    op: str
    bound: float
    high: float | None = None  # upper end for op "between"
    citation: str | None = None  # where it differs from the experiment's

    @property
    def expected(self) -> str:
        if self.op == "between":
            return f"between {_num(self.bound)} and {_num(self.high)}"
        return f"{_OPS[self.op][1]} {_num(self.bound)}"

    def check(self, metrics: Metrics, citation: str) -> ClaimResult:
        measured = self.measure(metrics)
        if measured is not None and not math.isfinite(measured):
            measured = None
        holds = measured is not None and self._holds(measured)
        return ClaimResult(
            id=self.id,
            statement=self.statement,
            measured=measured,
            expected=self.expected,
            holds=holds,
            citation=self.citation or citation,
        )

    def _holds(self, x: float) -> bool:
        if self.op == "between":
            assert self.high is not None
            return self.bound <= x <= self.high
        return _OPS[self.op][0](x, self.bound)


def metric(variant: str, name: str) -> Callable[[Metrics], Number]:
    """A measure that reads one metric of one variant (or of RUN)."""
    return lambda m: m[variant][name]


def ratio(
    a: Callable[[Metrics], Number], b: Callable[[Metrics], Number]
) -> Callable[[Metrics], Number]:
    """a / b, None when either is undefined or b is 0."""

    def measure(m: Metrics) -> Number:
        x, y = a(m), b(m)
        if x is None or y is None or y == 0:
            return None
        return x / y

    return measure


def _num(x: float | None) -> str:
    if x is None:
        return "?"
    if x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e4):
        mantissa, exponent = f"{x:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{x:.3g}"
