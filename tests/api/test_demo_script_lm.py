"""GET /api/demo/script for the experiments on the language model: the script trains the
server's model itself and reproduces the API's numbers.

The server here runs the TINY model in a real demo worker (lm_start, one worker), trained or
loaded from the session's cache folder as any test server's. Each script is downloaded once
the worker reports its model ready, and run as test_demo_script.py runs the others: this
venv's Python, isolated mode, an empty folder, two at a time. The script trains the model
from the glossary's text it carries, and must find the same weights, bit for bit (it prints
their hash; the script and the API's result name the server's), then the same variants as
GET /api/demo: everything but the wall-clock timings (TIMINGS), which no two runs share.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.demo.catalog import EXPERIMENTS, resolve
from app.demo.script import NeedsModel, script_for
from app.demo.script_lm import ServerModel
from app.main import create_app
from tests.api.test_demo_script import (
    ALLOWED_IMPORTS,
    Downloaded,
    download_and_run,
    first_difference,
    imported_modules,
    without,
)
from tests.api.test_lm_api import ready_model
from tests.conftest import ROOT, make_settings

LM_PRESETS = sorted(name for name, e in EXPERIMENTS.items() if e.needs_model)
# Cheap parameters (the TINY model's training, ~4 s, is most of each script's time).
SMALL: dict[str, dict[str, str]] = {
    "knowledge-distillation": {"steps": "20"},
    "mixture-of-experts": {"steps": "20"},
    "lora": {"steps": "6"},
}
# Wall-clock measurements differ from run to run: everything else must be equal.
TIMINGS: dict[str, set[str]] = {
    "continuous-batching": {"ms_per_token"},
    "kv-cache": {"ms_per_token", "ms_per_token_short"},
    "mixed-precision": {"milliseconds"},
    "speculative-decoding": {"ms_per_token", "speedup"},  # speedup: a ratio of two timings
}


@pytest.fixture(scope="module")
def lm_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A server whose worker runs the TINY model on the repository's glossary."""
    root = tmp_path_factory.mktemp("script-lm-app")
    settings = make_settings(root, ROOT / "data", lm_start=True, demo_workers=1)
    with TestClient(create_app(settings)) as client:
        ready_model(client)
        yield client


@pytest.fixture(scope="module")
def lm_downloads(
    request: pytest.FixtureRequest,
    lm_client: TestClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Downloaded]:
    folder = tmp_path_factory.mktemp("lm-scripts")  # no `app` there
    return download_and_run(request, lm_client, SMALL, folder)


def test_every_experiment_on_the_language_model_is_listed() -> None:
    assert len(LM_PRESETS) >= 17 and "perplexity" in LM_PRESETS
    assert set(SMALL) <= set(LM_PRESETS) and set(TIMINGS) <= set(LM_PRESETS)


@pytest.mark.parametrize("name", LM_PRESETS)
def test_the_script_trains_the_servers_model_and_reproduces_the_api(
    name: str, lm_client: TestClient, lm_downloads: dict[str, Downloaded]
) -> None:
    got = lm_downloads[name]
    assert got.status == 200, got.text
    assert got.headers["content-disposition"] == f'attachment; filename="{name}.py"'
    assert not re.search(r"^\s*(from|import)\s+app\b", got.text, re.MULTILINE)
    assert imported_modules(got.text) <= ALLOWED_IMPORTS
    assert got.returncode == 0, got.stderr[-3000:]

    api = lm_client.get("/api/demo", params={"preset": name, **SMALL.get(name, {})})
    assert api.status_code == 200, api.text
    result = api.json()
    server_weights = result["model"]["weights_hash"]
    assert f"SERVER_WEIGHTS = {server_weights!r}" in got.text
    assert f"language model tiny: weights {server_weights}\n" in got.stderr, got.stderr[-600:]
    assert "its numbers will differ" not in got.stderr

    printed = json.loads(got.stdout)
    timings = TIMINGS.get(name, set())
    mismatch = first_difference(without(printed, timings), without(result["variants"], timings))
    assert mismatch is None, f"{mismatch} (metrics that differ: {differing(printed, result)})"
    # the timings are there (in some variants: a speed-up is relative to the baseline's),
    # only not compared
    assert timings <= {key for variant in printed for key in variant["metrics"]}


def differing(printed: list[dict[str, Any]], result: dict[str, Any]) -> list[str]:
    """The names of every metric whose values differ (a failure's message lists them)."""
    return sorted(
        {
            key
            for mine, theirs in zip(printed, result["variants"], strict=False)
            for key in mine["metrics"]
            if first_difference(mine["metrics"][key], theirs["metrics"].get(key)) is not None
        }
    )


def test_a_model_trained_on_other_entries_is_a_conflict(tmp_path: Path) -> None:
    """A server whose workers train on another data folder than the glossary the experiments
    read: the script would carry the wrong text for the model, so there is none."""
    from tests.factories import write_corpus

    other = ServerModel("tiny", write_corpus(tmp_path / "data"), None)
    with pytest.raises(NeedsModel, match="differ from the glossary"):
        script_for(*resolve("perplexity", {}), model=other)
    same = ServerModel("tiny", ROOT / "data", None)
    assert "SERVER_WEIGHTS = None" in script_for(*resolve("perplexity", {}), model=same)
