"""The optimization family (being written)."""

from __future__ import annotations

from app.demo.experiment import Experiment

FAMILY = "optimization"
EXPERIMENTS: tuple[Experiment, ...] = ()
