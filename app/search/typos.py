"""Typo machinery with no storage in it: edit budgets, SymSpell deletions and the optimal
string alignment distance."""

from app.search.model import MAX_WORD_CHARS, PREFIX_KEY


def typo_budget(word: str) -> int:
    """Edits allowed in a query word: none up to 3 letters, one for 4-7, two for 8 or more."""
    if word.isdigit() or len(word) > MAX_WORD_CHARS or len(word) < 4:
        return 0
    return 1 if len(word) < 8 else 2


def delete_depth(word: str) -> int:
    """Deletions stored for a vocabulary word: enough for any query within its budget."""
    if len(word) < 3:
        return 0
    return 1 if len(word) < 6 else 2


def deletes(word: str, depth: int) -> set[str]:
    """The word's first PREFIX_KEY letters with up to `depth` letters deleted (SymSpell)."""
    key = word[:PREFIX_KEY]
    found = {key}
    frontier = {key}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        found |= frontier
    return found


def _osa_last_row(a: str, b: str, limit: int) -> list[int] | None:
    """The last row of the optimal-string-alignment table of a against b: entry j is the
    distance from a to b[:j]. None as soon as every entry must exceed limit."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                value = min(value, previous2[j - 2] + 1)
            current[j] = value
        if min(current) > limit:
            return None
        previous2, previous = previous, current
    return previous


def osa_distance(a: str, b: str, limit: int, *, prefix: bool = False) -> int:
    """Optimal string alignment distance (insert, delete, substitute, transpose adjacent).

    With prefix=True, the distance from a to the closest prefix of b. Anything above limit is
    reported as limit + 1, and the work stops as soon as that is certain.
    """
    if not prefix and abs(len(a) - len(b)) > limit:
        return limit + 1
    row = _osa_last_row(a, b, limit)
    distance = limit + 1 if row is None else (min(row) if prefix else row[-1])
    return min(distance, limit + 1)


def best_prefix(word: str, candidate: str, limit: int) -> tuple[str, int]:
    """The prefix of candidate closest to word (the longest on ties) and its distance."""
    row = _osa_last_row(word, candidate, limit)
    if row is None:
        return candidate, limit + 1
    distance = min(row)
    length = max(j for j, d in enumerate(row) if d == distance)
    return candidate[:length], min(distance, limit + 1)
