"""(being written)"""

from __future__ import annotations

from app.demo.experiment import Experiment

EXPERIMENTS: tuple[Experiment, ...] = ()
