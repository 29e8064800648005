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


@functools.cache
def full_lm() -> Any:
    """The FULL model the server trains, for the tests that check each language-model
    experiment's published claims on the model visitors see (the tiny one is too small to
    reproduce them all: merging its four small heads barely hurts it). Loaded or trained by
    the server's own service, keyed like the server's weights, in a cache folder the test
    processes share (make test's SQLite and PostgreSQL runs train it once, ~45 s)."""
    import os
    import tempfile

    import torch

    from app.demo.lm.config import FULL
    from app.demo.lm.service import LanguageModelService

    root = Path(os.environ.get("GLOSSARY_TEST_LM_CACHE") or tempfile.gettempdir())
    service = LanguageModelService(FULL, DATA_DIR, root / "glossary-test-lm")
    threads = torch.get_num_threads()
    service.start()
    try:
        return service.wait(timeout=1800)
    finally:
        service.stop()
        torch.set_num_threads(threads)
