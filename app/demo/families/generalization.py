"""The generalization family (being written)."""

from __future__ import annotations

from app.demo.experiment import Experiment

FAMILY = "generalization"
EXPERIMENTS: tuple[Experiment, ...] = ()
