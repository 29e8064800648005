"""Tokens and formats: BPE round-trips and merges most-frequent-first, the chat template's
special ids, and the JSON constraint allowing only prefixes of valid records."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from app.demo.lm import bpe
from app.demo.lm.text import ASSISTANT, BOS, END, SYSTEM, USER, VOCAB_SIZE, encode

TEXT = (
    "the cat sat on the mat; the cat ate the rat. Ünïcödé 日本語 text, emoji 🙂🙂 and "
    "tabs\tand\nnew lines  with   spaces. the the the aaaa aaaaa"
)


@pytest.mark.parametrize(
    "sample", ["", "a", "  ", "héllo wörld", "日本語のテキスト", "🙂 x 🙂", "\x00\u200b\n\t end"]
)
def test_bpe_round_trips_any_unicode(sample: str) -> None:
    tok = bpe.train(TEXT * 3, 80)
    for text in (sample, TEXT, sample + TEXT):
        assert tok.decode(tok.encode(text)) == text


def test_bpe_round_trips_random_unicode() -> None:
    rng = random.Random(0)  # noqa: S311
    tok = bpe.train(TEXT * 3, 60)
    for _ in range(50):
        text = "".join(
            chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x2FFFF)]))
            for _ in range(rng.randrange(0, 30))
        )
        text = text.encode("utf-8", errors="ignore").decode("utf-8")
        assert tok.decode(tok.encode(text)) == text


def test_merges_are_most_frequent_pair_first() -> None:
    """Replay each merge on the chunks and check it against a brute-force count."""
    tok = bpe.train(TEXT, 40)
    assert tok.merges
    words = [list(c.encode("utf-8")) for c in bpe.chunks(TEXT)]
    for k, (pair, n) in enumerate(zip(tok.merges, tok.counts, strict=True)):
        counts: Counter[tuple[int, int]] = Counter()
        for w in words:
            for i in range(len(w) - 1):
                counts[(w[i], w[i + 1])] += 1
        best = max(counts.values())
        assert counts[pair] == best == n, (k, pair)
        words = [list(bpe.merge_word(tuple(w), pair, 256 + k)) for w in words]


def test_more_merges_never_more_tokens() -> None:
    tok = bpe.train(TEXT * 2, 60)
    lengths = [len(tok.truncated(n).encode(TEXT)) for n in range(len(tok.merges) + 1)]
    assert all(b <= a for a, b in zip(lengths, lengths[1:], strict=False))
    assert lengths[-1] < lengths[0]


def test_chat_template_ids_contain_the_special_ids() -> None:
    from app.demo.engines.lm_formats import chat_prompts, expected_specials
    from app.demo.families.lm_formats import ChatParams

    prompts = chat_prompts(ChatParams())
    ids = prompts["with-template"]
    assert [i for i in ids if i >= 256] == [BOS, SYSTEM, END, USER, END, ASSISTANT]
    assert expected_specials(["system", "user"]) == [BOS, SYSTEM, END, USER, END, ASSISTANT]
    assert all(i < 256 for i in prompts["plain-text"])
    assert ids == encode(
        "<|bos|><|system|>You answer from the glossary.<|end|>"
        "<|user|>What is dropout?<|end|><|assistant|>",
        specials=True,
    )


CATS = ("inference-deployment", "training", "transformers")


def _completes(c: object, prefix: list[int]) -> str:
    """Finish prefix with the first allowed byte at every step."""
    from app.demo.engines.lm_structured import JsonRecordConstraint

    assert isinstance(c, JsonRecordConstraint)
    out = list(prefix)
    while (allowed := c.allowed_bytes(out)) is not None:
        assert allowed, out
        out.append(allowed[0])
    return bytes(out).decode()


def test_json_constraint_allows_only_prefixes_of_valid_json() -> None:
    from app.demo.engines.lm_structured import PROMPT, JsonRecordConstraint, valid_record

    rng = random.Random(0)  # noqa: S311
    for _ in range(30):
        c = JsonRecordConstraint(CATS, max_term=12)
        out: list[int] = []
        while (mask := c(out)) is not None:
            assert mask.shape == (VOCAB_SIZE,) and not mask[256:].any()
            allowed = mask.nonzero().flatten().tolist()
            assert allowed == sorted(c.allowed_bytes(out) or [])
            # every allowed byte keeps a prefix that some completion makes valid
            for b in rng.sample(allowed, min(3, len(allowed))):
                assert valid_record(PROMPT + _completes(c, out + [b]), CATS)
            out.append(rng.choice(allowed))
            assert len(out) < 100
        doc = PROMPT + bytes(out).decode()
        assert valid_record(doc, CATS)
        assert json.loads(doc)["category"] in CATS
    # forbidden: an empty term, a quote or backslash in the wrong place, a wrong category
    c = JsonRecordConstraint(CATS, max_term=12)
    assert ord('"') not in (c.allowed_bytes([]) or [])
    assert ord("\\") not in (c.allowed_bytes(list(b"ab")) or [])
    assert c.allowed_bytes(list(b"x" * 12)) == [ord('"')]
    assert c.allowed_bytes(list(b'x", "category": "t')) == [ord("r")]
