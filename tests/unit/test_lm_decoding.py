"""Direct checks of the decoding experiments' building blocks on the tiny model: truncation
keeps what it says, temperature 1 changes nothing, batched decoding matches generate(),
beam width 1 is greedy, and the repeated n-gram rate counts what it says."""

from __future__ import annotations

import math

import pytest
import torch

from app.demo.engines.lm_decoding import decode_rows, prompt_ids, repeated_ngram_rate
from app.demo.lm.generate import Sampling, beam_search, generate, sequence_logprob, truncate
from tests.lm_fixtures import tiny_lm

PROMPT = "The learning rate"


@pytest.fixture(scope="module")
def logits() -> torch.Tensor:
    model = tiny_lm().model
    with torch.no_grad():
        out, _ = model(torch.tensor([prompt_ids(PROMPT)]))
    return out[0, -1]


@pytest.mark.parametrize("k", [1, 5, 40])
def test_top_k_keeps_exactly_k(logits: torch.Tensor, k: int) -> None:
    z = truncate(logits, Sampling(top_k=k))
    kept = torch.isfinite(z)
    assert int(kept.sum()) == k
    assert set(torch.topk(logits, k).indices.tolist()) == set(kept.nonzero().flatten().tolist())


@pytest.mark.parametrize("p", [0.01, 0.5, 0.9, 0.99])
def test_top_p_keeps_the_smallest_set_reaching_p(logits: torch.Tensor, p: float) -> None:
    z = truncate(logits, Sampling(top_p=p))
    kept = torch.isfinite(z)
    probs = logits.softmax(-1)
    mass = float(probs[kept].sum())
    assert mass >= p - 1e-6
    # the smallest such set: without its least likely token it falls short of p
    assert mass - float(probs[kept].min()) < p
    assert int(kept.sum()) >= 1


def test_temperature_one_leaves_the_distribution_unchanged(logits: torch.Tensor) -> None:
    z = truncate(logits, Sampling(temperature=1.0))
    assert torch.allclose(z.softmax(-1), logits.softmax(-1))


def test_batched_decoding_matches_generate() -> None:
    model = tiny_lm().model
    ids = prompt_ids(PROMPT)
    rules = [Sampling(temperature=0), Sampling(top_k=5), Sampling(temperature=0.7)]
    rows = decode_rows(model, ids, rules, 80, seed=3)  # 80 tokens: past the context window
    for rule, row in zip(rules, rows, strict=True):
        expected = generate(model, ids, 80, rule, torch.Generator().manual_seed(3))
        assert row.tokens == expected, rule
    assert rows[1].kept == [5] * 80


def test_beam_width_one_is_greedy() -> None:
    model = tiny_lm().model
    ids = prompt_ids(PROMPT)
    greedy = generate(model, ids, 24, Sampling(temperature=0), torch.Generator())
    [(beam, score)] = beam_search(model, ids, 24, 1)
    assert beam == greedy
    assert math.isclose(score, sequence_logprob(model, ids, greedy), abs_tol=1e-3)


def test_repeated_ngram_rate() -> None:
    assert repeated_ngram_rate(list(b"abcdefgh")) == 0
    assert repeated_ngram_rate(list(b"abcdabcd")) == 1 / 5  # only the second abcd repeats
    assert repeated_ngram_rate(list(b"aaaaaa")) == 2 / 3
    assert repeated_ngram_rate(list(b"abc")) is None
