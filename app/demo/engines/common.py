"""What every engine shares: CPU set-up, number conversion, chart building blocks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from app.demo.result import Chart, Number, Series


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


def release_cpu() -> None:
    """Undo configure_cpu's per-thread denormal flush, so that the thread's other work (a
    test process's own floats, say) sees IEEE arithmetic again."""
    torch.set_flush_denormal(False)


def torch_version() -> str:
    return str(torch.__version__)


def num(x: float) -> Number:
    """A float for JSON: None when it is not finite (a diverged run)."""
    return float(x) if math.isfinite(x) else None


def nums(t: torch.Tensor | Sequence[float]) -> list[Number]:
    values = t.tolist() if isinstance(t, torch.Tensor) else list(t)
    return [num(float(x)) for x in values]


def curve(label: str, ys: Sequence[Number], variant: str | None = None, x0: int = 0) -> Series:
    """A series y by step (x = x0, x0 + 1, ...)."""
    return Series(
        label=label, variant=variant, points=[(float(x0 + i), y) for i, y in enumerate(ys)]
    )


def loss_chart(
    chart_id: str, title: str, series: list[Series], finding: str = "", y_log: bool = False
) -> Chart:
    """Loss by step for each series."""
    return Chart(
        id=chart_id,
        kind="line",
        title=title,
        x_label="step",
        y_label="loss",
        y_log=y_log,
        series=series,
        finding=finding,
    )


def fmt(x: float | None) -> str:
    """A number for a sentence: 0.83, 12, 3e-07; 'undefined' for a missing value."""
    if x is None or not math.isfinite(x):
        return "undefined"
    if x == 0:
        return "0"
    if 0.01 <= abs(x) < 1000:
        return f"{x:.2g}"
    return f"{x:.0e}"


def and_list(parts: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def train_val_chart(
    variants: Sequence[tuple[str, str]],
    train: list[list[Number]],
    held_out: list[list[tuple[float, Number]]],
    *,
    title: str,
    held_out_name: str,
) -> Chart:
    """Each variant's training loss by step (solid) and held-out loss (dashed), log scale.

    variants: (name, label) pairs in the order of `train` and `held_out`."""
    series: list[Series] = []
    for k, (name, label) in enumerate(variants[: len(train)]):
        series.append(curve(f"{label} (train batch)", train[k], name))
        series.append(
            Series(
                label=f"{label} ({held_out_name})", variant=name, points=held_out[k], style="dashed"
            )
        )
    finals = [
        f"{fmt(held_out[k][-1][1])} ({label})"
        for k, (_, label) in enumerate(variants[: len(held_out)])
    ]
    return loss_chart(
        "loss",
        title,
        series,
        finding=f"Final {held_out_name} loss: " + and_list(finals) + ".",
        y_log=True,
    )
