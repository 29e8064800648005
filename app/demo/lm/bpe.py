"""Byte-pair encoding (Sennrich et al., 2016) on UTF-8 bytes, in pure Python (no torch).

Text is split into chunks (a run of spaces followed by a run of non-spaces, or trailing
spaces), so merges never cross a word boundary, and the concatenated chunks are the text
exactly. Training repeatedly merges the most frequent adjacent pair of symbols (ties: the
smallest pair of ids), with the pair counts kept up to date incrementally: a merge only
recounts the distinct chunks that contain the pair. Token ids: 0-255 are bytes, 256 + i is
the i-th merge.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

_CHUNK = re.compile(r"\s*\S+|\s+")
Pair = tuple[int, int]


def chunks(text: str) -> list[str]:
    """The text as word-like chunks; "".join(chunks(t)) == t."""
    return _CHUNK.findall(text)


def pair_counts(words: dict[tuple[int, ...], int]) -> Counter[Pair]:
    """Adjacent pairs (overlapping) in every word, weighted by the word's frequency."""
    counts: Counter[Pair] = Counter()
    for word, n in words.items():
        for pair in zip(word, word[1:], strict=False):
            counts[pair] += n
    return counts


def merge_word(word: tuple[int, ...], pair: Pair, new: int) -> tuple[int, ...]:
    """Replace every non-overlapping occurrence of pair (left to right) with new."""
    out: list[int] = []
    i, n = 0, len(word)
    while i < n:
        if i + 1 < n and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


@dataclass
class BPE:
    """Merges learned in order; encode applies them, decode joins the bytes."""

    merges: list[Pair] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # each merge's pair count when learned

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    def token_bytes(self) -> list[bytes]:
        table = [bytes([i]) for i in range(256)]
        for a, b in self.merges:
            table.append(table[a] + table[b])
        return table

    def truncated(self, n: int) -> BPE:
        """The tokenizer with only the first n merges."""
        return BPE(self.merges[:n], self.counts[:n])

    def encode(self, text: str) -> list[int]:
        ranks = {pair: i for i, pair in enumerate(self.merges)}
        cache: dict[str, list[int]] = {}
        ids: list[int] = []
        for chunk in chunks(text):
            if chunk not in cache:
                cache[chunk] = _encode_chunk(list(chunk.encode("utf-8")), ranks)
            ids += cache[chunk]
        return ids

    def decode(self, ids: list[int]) -> str:
        table = self.token_bytes()
        return b"".join(table[i] for i in ids).decode("utf-8", errors="replace")

    def pieces(self, ids: list[int]) -> list[str]:
        """Each token as text (a piece that is not whole UTF-8 shows its bytes as <0xNN>)."""
        table = self.token_bytes()
        out = []
        for i in ids:
            raw = table[i]
            try:
                out.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                out.append("".join(f"<0x{b:02X}>" for b in raw))
        return out


def _encode_chunk(word: list[int], ranks: dict[Pair, int]) -> list[int]:
    """Apply the lowest-ranked merge present, again and again (as training did)."""
    while len(word) > 1:
        best = min((ranks.get(p, len(ranks)), p) for p in zip(word, word[1:], strict=False))
        if best[0] == len(ranks):
            break
        word = list(merge_word(tuple(word), best[1], 256 + best[0]))
    return word


def train(
    text: str,
    n_merges: int,
    check: Callable[[int, int], None] | None = None,
) -> BPE:
    """Learn up to n_merges merges, most frequent pair first (stops when no pair occurs twice)."""
    words: dict[tuple[int, ...], int] = Counter(tuple(c.encode("utf-8")) for c in chunks(text))
    counts = pair_counts(words)
    where: defaultdict[Pair, set[tuple[int, ...]]] = defaultdict(set)
    for word in words:
        for pair in zip(word, word[1:], strict=False):
            where[pair].add(word)
    bpe = BPE()
    for step in range(n_merges):
        if check is not None:
            check(step, n_merges)
        if not counts:
            break
        pair, n = max(counts.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))
        if n < 2:
            break
        new = 256 + len(bpe.merges)
        bpe.merges.append(pair)
        bpe.counts.append(n)
        for word in list(where.pop(pair, ())):
            if word not in words:
                continue
            freq = words.pop(word)
            merged = merge_word(word, pair, new)
            for p in zip(word, word[1:], strict=False):
                counts[p] -= freq
                if counts[p] <= 0:
                    del counts[p]
                where[p].discard(word)
            words[merged] = words.get(merged, 0) + freq
            for p in zip(merged, merged[1:], strict=False):
                counts[p] += freq
                where[p].add(merged)
    return bpe
