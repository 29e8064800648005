"""The architectures family (being written)."""

from __future__ import annotations

from app.demo.experiment import Experiment

FAMILY = "architectures"
EXPERIMENTS: tuple[Experiment, ...] = ()
