"""From what was typed to the terms to match: folding and parsing, prefixes and their
completions, typo corrections, and the typo levels to try in order."""

from collections.abc import Iterator, Sequence
from itertools import product

from sqlalchemy import Connection

from app.search import lookups
from app.search.model import (
    MAX_ALTERNATIVES,
    MAX_COMBINATIONS,
    MAX_EXPANSIONS,
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    MAX_WORD_CHARS,
    PREFIX_INDEX_MAX,
    PREFIX_MIN_CHARS,
    Alternative,
    Term,
)
from app.search.typos import best_prefix, deletes, osa_distance, typo_budget
from app.text import fold


def compact(value: str) -> str:
    """Folded with the spaces removed: 'Layer-Norm', 'layer norm', 'LayerNorm' -> 'layernorm'."""
    return fold(value).replace(" ", "")


def query_words(query: str) -> list[str]:
    """The folded words of a query that search uses."""
    return fold(query[:MAX_QUERY_CHARS]).split()[:MAX_QUERY_WORDS]


def parse_query(query: str) -> list[Term]:
    """The words of a query as level-0 terms: as typed, long-enough words also as prefixes
    (prepare() keeps that for the last word and for words the index does not hold)."""
    return [
        Term(word, prefix=PREFIX_MIN_CHARS <= len(word) <= MAX_WORD_CHARS)
        for word in query_words(query)
    ]


def _completions(conn: Connection, prefix: str) -> tuple[str, ...] | None:
    """Every indexed word starting with prefix, or None when the prefix is matched as a
    prefix: 2-3 letters (see PREFIX_INDEX_MAX) or more than MAX_EXPANSIONS words."""
    if len(prefix) <= PREFIX_INDEX_MAX:
        return None
    # A joined name whose first word already starts with the prefix adds nothing: the
    # document holds that word too ("adam" need not list "adamoptimizer").
    words = lookups.words_starting(conn, prefix, MAX_EXPANSIONS + 1)
    return None if len(words) > MAX_EXPANSIONS else tuple(words)


def prepare(conn: Connection, terms: Sequence[Term]) -> list[Term]:
    """Level-0 terms against the index: prefixes get their completions, and every term learns
    whether the index knows it. A word before the last one that the index holds whole stays
    a prefix only when its completions are few ("grad desc" finds gradient descent, but
    "model selu" does not pay for matching every word that starts with "model")."""
    indexed = lookups.indexed(conn, list(dict.fromkeys(t.word for t in terms)))
    prepared = []
    for position, term in enumerate(terms):
        prefix = term.prefix
        completions = _completions(conn, term.word) if prefix else None
        if prefix and completions is None and position < len(terms) - 1:
            prefix = term.word not in indexed
        known = term.word in indexed or (prefix and completions != ())
        prepared.append(Term(term.word, prefix, term.alternatives, completions, known))
    return prepared


# ---------------------------------------------------------------- typo tolerance


def corrections(conn: Connection, word: str, *, prefix: bool) -> list[Alternative]:
    """Vocabulary words (or, for a prefix, corrected prefixes) within the word's budget,
    fewest edits first, then most frequent."""
    budget = typo_budget(word)
    if budget == 0:
        return []
    found: dict[str, Alternative] = {}
    unmatched = []
    known = False  # the word itself is in the vocabulary: no need to guess what it starts
    for candidate, freq in lookups.deletion_candidates(conn, sorted(deletes(word, budget))):
        if candidate == word:
            known = True
            continue
        distance = osa_distance(word, candidate, budget)
        if distance <= budget:
            found[candidate] = Alternative(candidate, False, distance, freq)
        else:
            unmatched.append((candidate, freq))
    if prefix and not found and not known and len(word) >= 5:
        # Still typing: "atenti" -> the prefix "attenti" (of attention).
        for candidate, freq in unmatched:
            corrected, distance = best_prefix(word, candidate, budget)
            if distance <= budget and corrected != word:
                best = found.get(corrected)
                if best is None or best.freq < freq:
                    found[corrected] = Alternative(corrected, True, distance, freq)
        for corrected, alt in list(found.items()):
            found[corrected] = Alternative(
                alt.token, True, alt.distance, alt.freq, _completions(conn, corrected)
            )
    ranked = sorted(found.values(), key=lambda a: (a.distance, -a.freq, a.token))
    return ranked[:MAX_ALTERNATIVES]


def stages(conn: Connection, terms: list[Term]) -> Iterator[tuple[int, list[Term]]]:
    """(typo level, terms) to try in order until one matches: as typed; then one edit in the
    words the index does not know; one edit in any word ("lose function"); two edits, again
    unknown words first. A stage that adds nothing, or holds a term that can match nothing,
    is skipped. Corrections are looked up only when a stage needs them."""
    options: dict[int, list[Alternative]] = {}
    tried: list[list[Term]] = []
    top = max(typo_budget(t.word) for t in terms)
    for level, everyone in [(0, False), *((lv, e) for lv in (1, 2) for e in (False, True))]:
        if level > top:
            break
        staged = []
        for i, term in enumerate(terms):
            if level and (everyone or not term.known) and i not in options:
                options[i] = corrections(conn, term.word, prefix=term.prefix)
            alts = options.get(i, []) if level and (everyone or not term.known) else []
            kept = tuple(a for a in alts if a.distance <= level)
            staged.append(Term(term.word, term.prefix, kept, term.completions, term.known))
        if staged in tried or any(t.dead for t in staged):
            continue
        tried.append(staged)
        yield level, staged


def corrected_names(terms: Sequence[Term]) -> list[str]:
    """Whole-query spellings made of each word or its whole-word corrections."""
    choices = [[t.word, *(a.token for a in t.alternatives if not a.prefix)] for t in terms]
    names = []
    for combination in product(*choices):
        names.append(" ".join(combination))
        if len(names) >= MAX_COMBINATIONS:
            break
    return names
