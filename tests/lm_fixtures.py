"""The tiny language model tests run LM experiments on: trained once per test process from
the repository's own data/ (a few seconds), exactly as the server trains its full one."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@functools.cache
def tiny_lm() -> Any:
    """A TrainedLM of the TINY spec (app/demo/lm/config.py), shared by the process's tests."""
    import torch

    from app.demo.lm.config import TINY
    from app.demo.lm.text import read_text
    from app.demo.lm.training import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(TINY, read_text(DATA_DIR))
    finally:
        torch.set_num_threads(threads)
