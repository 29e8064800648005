"""Decoding with the trained model: next-token distributions, sampling (temperature, top-k,
top-p), greedy decoding and beam search, one token per forward pass with a KV cache.

When the context outgrows block_size the cache is dropped and the last block_size - 1 tokens
are run again (a sliding window), so generation can run longer than the model's context.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from app.demo.lm.gpt import GPT, KV

# allowed(ids so far) -> boolean mask over the vocabulary, or None for no constraint
Constraint = Callable[[list[int]], torch.Tensor | None]


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0  # 0: greedy (argmax)
    top_k: int = 0  # 0: no top-k truncation
    top_p: float = 1.0  # 1: no nucleus truncation


class Stepper:
    """Feeds tokens to the model one at a time, keeping the KV cache within block_size."""

    def __init__(self, model: GPT, prompt: list[int]) -> None:
        if not prompt:
            raise ValueError("a prompt needs at least one token")
        self.model, self.ids = model, list(prompt)
        self.past: list[KV] | None = None
        self.logits = self._run(self.ids[-model.config.block_size :])

    def _run(self, ids: list[int]) -> torch.Tensor:
        x = torch.tensor([ids], dtype=torch.long)
        with torch.no_grad():
            logits, self.past = self.model(x, self.past)
        return logits[0, -1]  # (vocab,)

    def push(self, token: int) -> torch.Tensor:
        """Append a token; the logits for the next one."""
        self.ids.append(token)
        block = self.model.config.block_size
        cached = 0 if self.past is None else self.past[0][0].size(2)
        if cached + 1 > block:  # slide: rebuild the cache on the last block - 1 tokens
            self.past = None
            self.logits = self._run(self.ids[-(block - 1) :])
        else:
            self.logits = self._run([token])
        return self.logits


def truncate(logits: torch.Tensor, s: Sampling) -> torch.Tensor:
    """Logits scaled by 1/T with everything outside top-k / the top-p nucleus set to -inf."""
    z = logits / s.temperature
    if s.top_k > 0 and s.top_k < z.numel():
        kth = torch.topk(z, s.top_k).values[-1]
        z = z.masked_fill(z < kth, float("-inf"))
    if s.top_p < 1.0:
        probs = z.softmax(-1)
        sorted_p, order = probs.sort(descending=True)
        # keep the smallest prefix whose mass reaches top_p (always at least one token)
        outside = (sorted_p.cumsum(-1) - sorted_p) >= s.top_p
        z = z.clone()
        z[order[outside]] = float("-inf")
    return z


def entropy_bits(logits: torch.Tensor) -> float:
    """Entropy of softmax(logits) in bits (tokens at -inf contribute nothing)."""
    logp = logits.log_softmax(-1)
    p = logp.exp()
    return float(-(p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum().item() / math.log(2))


def generate(
    model: GPT,
    prompt: list[int],
    n_tokens: int,
    sampling: Sampling,
    generator: torch.Generator,
    stop: Callable[[list[int]], bool] | None = None,
    constraint: Constraint | None = None,
) -> list[int]:
    """The new tokens (not the prompt). stop(new tokens) ends generation early."""
    stepper = Stepper(model, prompt)
    out: list[int] = []
    logits = stepper.logits
    for _ in range(n_tokens):
        if constraint is not None:
            allowed = constraint(out)
            if allowed is not None:
                logits = logits.masked_fill(~allowed, float("-inf"))
        if sampling.temperature == 0:
            token = int(logits.argmax().item())
        else:
            probs = truncate(logits, sampling).softmax(-1)
            token = int(torch.multinomial(probs, 1, generator=generator).item())
        out.append(token)
        if stop is not None and stop(out):
            break
        logits = stepper.push(token)
    return out


def sequence_logprob(model: GPT, prompt: list[int], continuation: list[int]) -> float:
    """log p(continuation | prompt) under the model, natural log (one forward pass when the
    whole sequence fits the context)."""
    ids = prompt + continuation
    block = model.config.block_size
    ids = ids[-block:]
    start = len(ids) - len(continuation)
    if start < 1:
        raise ValueError("the continuation must fit the context with one prompt token")
    x = torch.tensor([ids[:-1]], dtype=torch.long)
    with torch.no_grad():
        logits, _ = model(x)
    logp = logits[0].log_softmax(-1)
    targets = torch.tensor(ids[1:])
    picked = logp[torch.arange(len(targets)), targets]
    return float(picked[start - 1 :].sum().item())


def beam_search(
    model: GPT, prompt: list[int], n_tokens: int, width: int
) -> list[tuple[list[int], float]]:
    """Beam search (no length penalty): the width best continuations of exactly n_tokens and
    their log-probabilities, best first. prompt + n_tokens must fit block_size."""
    if len(prompt) + n_tokens > model.config.block_size:
        raise ValueError("beam search runs within one context window")
    beams: list[tuple[list[int], float]] = [([], 0.0)]
    x = torch.tensor([prompt], dtype=torch.long)
    with torch.no_grad():
        logits, past = model(x)
        for _ in range(n_tokens):
            logp = logits[:, -1].log_softmax(-1)  # (beams, vocab)
            scores = torch.tensor([s for _, s in beams])[:, None] + logp
            top = torch.topk(scores.flatten(), width)
            vocab = logp.size(-1)
            rows = (top.indices // vocab).tolist()
            toks = (top.indices % vocab).tolist()
            beams = [
                (beams[r][0] + [t], float(v))
                for r, t, v in zip(rows, toks, top.values.tolist(), strict=True)
            ]
            index = torch.tensor(rows)
            past = [(k[index], v[index]) for k, v in past]
            logits, past = model(torch.tensor([[t] for t in toks]), past)
    return beams
