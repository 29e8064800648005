"""The signal-propagation family (being written)."""

from __future__ import annotations

from app.demo.experiment import Experiment

FAMILY = "signal-propagation"
EXPERIMENTS: tuple[Experiment, ...] = ()
