"""Answering a query: exact names first, then the buckets in order at the first typo level
that finds anything, scored, paged and highlighted."""

from collections.abc import Sequence

from sqlalchemy import Connection
from sqlmodel import Session

from app.search import lookups
from app.search.backend import fulltext_for
from app.search.highlight import Highlighter, excerpt, highlight
from app.search.inflection import is_abbreviation, name_variants
from app.search.lookups import StoredDoc
from app.search.model import BUCKET_SCORE, LEVEL_PENALTY, MAX_TOTAL, TIERS, Hit, Results, Term
from app.search.query import corrected_names, parse_query, prepare, stages
from app.text import fold


def _coverage(text: str, terms: Sequence[Term]) -> int:
    tokens = fold(text).split()
    tokens.append("".join(tokens))
    return sum(1 for term in terms if any(term.matches(t) for t in tokens))


def matched_name(doc: StoredDoc, terms: Sequence[Term]) -> tuple[str, str | None]:
    """("title", None) or ("synonyms", the synonym): the name holding the most words."""
    names: list[tuple[str, str | None]] = [("title", None)]
    names += [("synonyms", synonym) for synonym in doc.synonyms]
    return max(names, key=lambda n: _coverage(n[1] or doc.title, terms))  # first on ties


def _hit(
    doc: StoredDoc,
    terms: Sequence[Term],
    score: float,
    bucket: str,
    exact_name: tuple[str, bool] | None,
    highlighter: Highlighter,
) -> Hit:
    """A result: which field matched follows from the bucket that found it."""
    if exact_name is not None:
        name, is_title = exact_name
        matched_field, synonym = ("title", None) if is_title else ("synonyms", name)
    elif bucket == "title":
        matched_field, synonym = "title", None
    elif bucket in ("names", "corrected", "abbreviation"):
        matched_field, synonym = matched_name(doc, terms)
    else:
        matched_field, synonym = ("summary" if bucket == "head" else "body"), None
    snippet = (
        excerpt(doc.body, highlighter)
        if matched_field == "body"
        else highlight(doc.summary, highlighter)
    )
    return Hit(
        slug=doc.slug,
        title=doc.title,
        summary=doc.summary,
        category=doc.category,
        score=round(score, 4),
        matched_field=matched_field,
        matched_synonym=synonym,
        exact=exact_name is not None,
        title_html=str(highlight(doc.title, highlighter)),
        snippet_html=str(snippet),
    )


def _squash(relevance: float) -> float:
    """A relevance (>= 0, higher is better) to [0, 40): monotone, never crossing a bucket."""
    x = max(0.0, relevance)
    return 40.0 * x / (1.0 + x)


def _corrected_query(terms: Sequence[Term], top: StoredDoc | None) -> str:
    """The query as corrected, spelled the way the first hit spells it when it can."""
    words = []
    tokens = fold(" ".join([top.title, *top.synonyms, top.summary]) if top else "").split()
    for term in terms:
        if not term.alternatives or any(t == term.word for t in tokens):
            words.append(term.word)
            continue
        alt_term = Term("", False, term.alternatives)
        seen = next((t for t in tokens if alt_term.matches(t)), None)
        words.append(seen or term.alternatives[0].token)
    return " ".join(words)


NameRow = tuple[int, str, bool]


def _names_in_query(
    conn: Connection, words: list[str], category: str | None
) -> tuple[list[NameRow], list[int]]:
    """In one lookup: the entries the whole query names (as typed, else with other endings:
    "system prompts"), and, when it names none, the entries a word of a longer query names
    as an abbreviation ("MMLU benchmark"), in the query's order."""
    wanted = " ".join(words)
    variants = name_variants(words)
    single_words = words if len(words) > 1 else []
    rows = lookups.exact_names(conn, [wanted, *variants, *single_words], category)

    def keys(name: str) -> set[str]:
        folded = fold(name)
        return {folded, folded.replace(" ", "")}

    for spellings in ([wanted], variants):
        wanted_keys = {k for s in spellings for k in (s, s.replace(" ", ""))}
        exact = [row for row in rows if keys(row[1]) & wanted_keys]
        if exact:
            return exact, []
    if len(words) < 2:
        return [], []
    by_word = {fold(name): doc_id for doc_id, name, _ in reversed(rows) if is_abbreviation(name)}
    return [], list(dict.fromkeys(by_word[w] for w in words if w in by_word))


def search(
    session: Session, query: str, *, limit: int = 20, offset: int = 0, category: str | None = None
) -> Results:
    """Ranked hits for a free-text query; an exact title or synonym always ranks first."""
    results = Results(query=query, total=0)
    parsed = parse_query(query)
    if not parsed:
        return results
    conn = session.connection()
    parsed = prepare(conn, parsed)
    exact, abbreviations = _names_in_query(conn, [t.word for t in parsed], category)
    if exact and any(t.dead for t in parsed):  # a name with the spaces taken out
        parsed = [Term(t.word, t.prefix, completions=t.completions) for t in parsed]
    staged = stages(conn, parsed)
    for level, terms in staged:
        if level and exact:
            break  # an exact name is never a typo
        named = exact or (
            lookups.exact_names(conn, corrected_names(terms), category) if level else []
        )
        shortened = [] if level else abbreviations
        answer = _answer(conn, query, level, terms, named, shortened, category, offset, limit)
        if answer is None:
            continue
        if level == 0 and not exact and len(terms) > 1 and answer[1] in WEAK_BUCKETS:
            # the words of a phrase match only inside texts: a name a typo away is what was
            # meant ("lose function" -> Loss Function, though some text says "lose"); one
            # word found in a text is taken as typed ("saxe" is not "SAE")
            for typo_level, typo_terms in staged:
                corrected = lookups.exact_names(conn, corrected_names(typo_terms), category)
                if corrected:
                    no_abbreviations: list[int] = []
                    args = (typo_level, typo_terms, corrected, no_abbreviations)
                    answer = _answer(conn, query, *args, category, offset, limit) or answer
                    break
        return answer[0]
    return results


# Buckets where no name holds the query's words: a name within a typo is likelier meant.
WEAK_BUCKETS = ("head", "full")


def _answer(
    conn: Connection,
    query: str,
    level: int,
    terms: list[Term],
    named: list[NameRow],
    abbreviations: list[int],
    category: str | None,
    offset: int,
    limit: int,
) -> tuple[Results, str] | None:
    """One stage's results and the first hit's bucket; None when the stage finds nothing."""
    fulltext = fulltext_for(conn)
    needed = offset + limit
    results = Results(query=query, total=0)
    ranked: list[tuple[int, float, str, tuple[str, bool] | None]] = []
    seen: set[int] = set()
    for doc_id, name, is_title in named:
        if doc_id not in seen:
            bucket = "corrected" if level else ("exact_title" if is_title else "exact_synonym")
            ranked.append(
                (doc_id, BUCKET_SCORE[bucket], bucket, None if level else (name, is_title))
            )
            seen.add(doc_id)
    # an abbreviation's entry takes its bucket's place among the tiers, or a better one
    pending = [doc_id for doc_id in abbreviations if doc_id not in seen]
    count, among = fulltext.count(terms, category, sorted(seen | set(pending)))
    if not count and not seen and not pending:
        return None
    results.total_exact = count <= MAX_TOTAL
    total = count + len(seen) + len(pending) - among if results.total_exact else MAX_TOTAL
    known_total = total if results.total_exact else None
    for tier in [*TIERS, None]:
        if pending and (tier is None or BUCKET_SCORE[tier] < BUCKET_SCORE["abbreviation"]):
            ranked += [(d, BUCKET_SCORE["abbreviation"], "abbreviation", None) for d in pending]
            seen.update(pending)
            pending = []
        if tier is None or len(ranked) >= needed:
            break
        fetched = fulltext.ranked(tier, terms, category, needed + len(seen), known_total)
        for doc_id, relevance in fetched:
            if doc_id not in seen:
                seen.add(doc_id)
                if doc_id in pending:
                    pending.remove(doc_id)
                ranked.append((doc_id, BUCKET_SCORE[tier] + _squash(relevance), tier, None))
    page = ranked[offset:needed]
    docs = lookups.documents(conn, [doc_id for doc_id, _, _, _ in page])
    results.total = total
    highlighter = Highlighter(terms)
    results.hits = [
        _hit(docs[doc_id], terms, score - LEVEL_PENALTY * level, bucket, exact_name, highlighter)
        for doc_id, score, bucket, exact_name in page
    ]
    if level:
        top = docs.get(page[0][0]) if page else None
        results.corrected_query = _corrected_query(terms, top)
    return results, ranked[0][2] if ranked else "full"
