"""Direct checks of the language-model internals engines: perplexity is exp of torch's
cross-entropy, attention rows are causal distributions, the positions task is what it says."""

from __future__ import annotations

import copy
import math

import torch
from torch.nn import functional as F

from app.demo.engines import lm_attention, lm_perplexity, lm_positions
from app.demo.lm.text import glossary_text
from app.demo.lm.training import eval_starts, windows
from tests.lm_fixtures import tiny_lm


def test_perplexity_is_exp_of_the_mean_cross_entropy() -> None:
    lm = tiny_lm()
    model = copy.deepcopy(lm.model)
    ids = torch.tensor(glossary_text().val, dtype=torch.long)
    block = model.config.block_size
    x, y = windows(ids, eval_starts(len(ids), block, 8), block)
    for step in sorted(lm.checkpoints):
        model.load_state_dict(lm.checkpoints[step])
        ppl, _ = lm_perplexity.score(model, x, y)
        with torch.no_grad():
            logits, _ = model(x)
        ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1)).item()
        assert abs(ppl - math.exp(ce)) / math.exp(ce) < 1e-5, step


def test_attention_rows_sum_to_one_and_are_causal() -> None:
    ids = list(b"Attention is causal")
    for scale in (0.25, 1.0, 16.0):
        for att in lm_attention.attention(tiny_lm().model, ids, scale):
            assert att.shape[-2:] == (len(ids), len(ids))
            assert torch.allclose(att.sum(-1), torch.ones(att.shape[:-1]), atol=1e-5)
            assert float(att.triu(1).abs().max()) == 0.0


def test_entropy_of_uniform_rows() -> None:
    t = 5
    att = torch.ones(1, t, t).tril()
    att = att / att.sum(-1, keepdim=True)
    expected = sum(math.log2(i + 1) for i in range(t)) / t
    assert abs(float(lm_attention.head_entropy(att)[0]) - expected) < 1e-6


def test_the_positions_tasks() -> None:
    g = torch.Generator().manual_seed(0)
    for task in ("copy", "sort"):
        seq = lm_positions.sequences(task, 50, 4, g)
        assert seq.shape == (50, 9)
        assert bool((seq[:, 4] == lm_positions.SEP).all())
        digits, answer = seq[:, :4], seq[:, 5:]
        expected = digits if task == "copy" else digits.sort(dim=1).values
        assert torch.equal(answer, expected)
        assert int(seq[:, :4].max()) < lm_positions.DIGITS
