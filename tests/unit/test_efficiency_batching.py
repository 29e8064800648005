"""Continuous batching: a batched step computes what each request computes alone, and the two
schedules take the steps a plain simulation of them says (an oracle that runs no model)."""

from __future__ import annotations

import copy

import torch

from app.demo.catalog import resolve
from app.demo.engines.efficiency_batching import (
    Request,
    batched_step,
    prefill,
    requested_lengths,
    serve,
)
from app.demo.families.efficiency_batching import MAX_OUTPUT, BatchingParams
from app.demo.lm.text import encode
from tests.lm_fixtures import tiny_lm


def params(**values: object) -> BatchingParams:
    _, p = resolve("continuous-batching", {k: str(v) for k, v in values.items()})
    assert isinstance(p, BatchingParams)
    return p


def simulated_steps(lengths: list[int], slots: int, continuous: bool) -> list[int]:
    """How many requests write a wanted token at each batched step. A request's first token
    comes from its prefill, so one that wants n tokens needs n - 1 steps."""
    waiting, batch, occupancy = [[n, 1] for n in lengths], [], []
    while waiting or batch:
        if continuous:
            batch = [r for r in batch if r[1] < r[0]]
        if continuous or not batch:
            while waiting and len(batch) < slots:
                batch.append(waiting.pop(0))
        active = [r for r in batch if r[1] < r[0]]
        if not active:
            batch = []
            continue
        occupancy.append(len(active))
        for r in batch:
            r[1] += 1
    return occupancy


def test_a_batched_step_computes_what_each_request_computes_alone() -> None:
    model = copy.deepcopy(tiny_lm().model)
    prompts = ["Dropout", "A transformer is", "x"]  # different lengths: the cache is padded
    batch = [Request(encode(p), 6) for p in prompts]
    with torch.no_grad():
        for r in batch:
            prefill(model, r, "cpu")
        for _ in range(5):
            batched_step(model, batch, "cpu")
        for r in batch:
            assert len(r.tokens) == 6 and len(r.used_logits) == 6
            logits, _ = model(torch.tensor([r.prompt + r.tokens[:-1]]))
            alone = logits[0, len(r.prompt) - 1 :]
            assert torch.allclose(alone, torch.stack(r.used_logits), atol=1e-5), r.prompt
            # greedy: each token is the likeliest under the model alone
            assert alone.argmax(-1).tolist() == r.tokens


def test_the_schedules_take_the_steps_a_plain_simulation_takes() -> None:
    model = tiny_lm().model
    for seed, slots in ((0, 4), (3, 3), (5, 1)):
        p = params(seed=seed, slots=slots, requests=10)
        lengths = requested_lengths(p)
        for schedule in ("static", "continuous"):
            served = serve(model, p, schedule, "cpu", lambda: None)
            expected = simulated_steps(lengths, slots, schedule == "continuous")
            assert expected, (seed, schedule)
            assert served.occupancy == expected, (seed, schedule)
            assert [len(r.used_logits) for r in served.requests] == lengths
            assert max(r.done_at for r in served.requests) == len(expected)


def test_static_batching_wastes_steps_only_when_lengths_differ() -> None:
    model = tiny_lm().model
    same = params(length_spread=0, requests=8, slots=4, mean_length=6)
    assert len(set(requested_lengths(same))) == 1
    steps = {s: serve(model, same, s, "cpu", lambda: None).steps for s in ("static", "continuous")}
    assert steps["static"] == steps["continuous"] == 2 * (6 - 1)
    mixed = params(length_spread=1, requests=8, slots=4, mean_length=6, seed=1)
    assert len(set(requested_lengths(mixed))) > 1
    served = {s: serve(model, mixed, s, "cpu", lambda: None) for s in ("static", "continuous")}
    assert served["static"].steps > served["continuous"].steps


def test_requested_lengths_stay_in_the_context() -> None:
    for seed in range(5):
        p = params(seed=seed, mean_length=MAX_OUTPUT, length_spread=1, requests=32, slots=8)
        lengths = requested_lengths(p)
        assert len(lengths) == 32 and 1 <= min(lengths) and max(lengths) <= MAX_OUTPUT
