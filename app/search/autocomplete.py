"""Autocomplete: one suggestion per term, the name (title or synonym) the letters typed so far
lead to."""

from sqlalchemy import Connection
from sqlmodel import Session

from app.search import lookups
from app.search.backend import fulltext_for
from app.search.model import PREFIX_KEYS, PREFIX_SCAN, SUGGEST_MIN_CHARS, Suggestion, Term
from app.search.query import corrected_names, parse_query, prepare, stages
from app.search.results import matched_name


def _name_starts(
    conn: Connection, wanted: str, is_title: bool, limit: int
) -> list[tuple[int, str]]:
    """(doc id, name) of titles or synonyms starting with the query (folded, or with the
    spaces taken out), shortest first."""
    if len(wanted) in PREFIX_KEYS:
        rows = lookups.names_by_key(conn, wanted, is_title, limit * 4)
    else:
        candidates: list[tuple[int, str, int, int]] = []
        for column, value in (("folded", wanted), ("compact", wanted.replace(" ", ""))):
            candidates += lookups.names_from(conn, column, value, is_title, PREFIX_SCAN)
        rows = [(doc_id, name) for doc_id, name, *_ in sorted(candidates, key=lambda r: r[2:])]
    found: dict[int, str] = {}
    for doc_id, name in rows:
        found.setdefault(doc_id, name)
    return list(found.items())[:limit]


def suggest(session: Session, query: str, *, limit: int = 8) -> list[Suggestion]:
    """Autocomplete, one suggestion per term: exact names; titles starting with the query;
    titles holding every word; synonyms starting with the query; titles or synonyms holding
    every word, with typo tolerance when nothing else matched."""
    parsed = parse_query(query)
    wanted = " ".join(t.word for t in parsed)
    if len(wanted.replace(" ", "")) < SUGGEST_MIN_CHARS:
        return []
    conn = session.connection()
    fulltext = fulltext_for(conn)
    parsed = prepare(conn, parsed)
    picked: dict[int, tuple[str, bool]] = {}  # doc id -> (name, is an exact name)
    for doc_id, name, _ in lookups.exact_names(conn, [wanted], None):
        picked.setdefault(doc_id, (name, True))

    def add_ranked(tier: str, terms: list[Term]) -> bool:
        ranked = fulltext.ranked(tier, terms, None, limit + len(picked))
        docs = lookups.documents(conn, [doc_id for doc_id, _ in ranked if doc_id not in picked])
        for doc_id, _ in ranked:
            if doc_id in docs:
                field_name, synonym = matched_name(docs[doc_id], terms)
                name = synonym if field_name == "synonyms" and synonym else docs[doc_id].title
                picked.setdefault(doc_id, (name, False))
        return bool(ranked)

    if len(picked) < limit:
        for doc_id, name in _name_starts(conn, wanted, True, limit):
            picked.setdefault(doc_id, (name, False))
    if len(picked) < limit:
        add_ranked("title", parsed)
    if len(picked) < limit:
        for doc_id, name in _name_starts(conn, wanted, False, limit):
            picked.setdefault(doc_id, (name, False))
    if len(picked) < limit:
        for level, terms in stages(conn, parsed):
            if level:
                if picked:
                    break  # typo tolerance only when nothing else matched
                for doc_id, name, _ in lookups.exact_names(conn, corrected_names(terms), None):
                    picked.setdefault(doc_id, (name, False))
            if add_ranked("names", terms) or picked:
                break
    ids = list(picked)[:limit]
    docs = lookups.documents(conn, ids)
    return [
        Suggestion(name=picked[i][0], title=docs[i].title, slug=docs[i].slug, exact=picked[i][1])
        for i in ids
    ]
