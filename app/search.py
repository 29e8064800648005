"""Full-text search over the glossary: the FTS5 index (SQLite-only SQL lives here), query
escaping and ranking."""

from dataclasses import dataclass, field

from sqlalchemy import Connection, text
from sqlmodel import Session

from app.text import fold

# bm25 column weights: title and synonyms far above summary, summary above the long text.
WEIGHTS = {"title": 10.0, "synonyms": 8.0, "summary": 3.0, "body": 1.0}
MAX_QUERY_WORDS = 12


@dataclass
class Document:
    """One term as the index sees it."""

    slug: str
    title: str
    synonyms: list[str]
    summary: str
    body: str
    category: str


@dataclass
class Hit:
    slug: str
    title: str
    summary: str
    category: str
    score: float
    matched_field: str
    matched_synonym: str | None = None


@dataclass
class Results:
    query: str
    total: int
    hits: list[Hit] = field(default_factory=list)


def drop_index(conn: Connection) -> None:
    """Remove the index tables (part of the load transaction)."""
    conn.execute(text("DROP TABLE IF EXISTS term_fts"))


def build_index(conn: Connection, documents: list[Document]) -> None:
    """Create and fill the index in the caller's transaction."""
    conn.execute(
        text(
            "CREATE VIRTUAL TABLE term_fts USING fts5("
            "slug UNINDEXED, category UNINDEXED, title, synonyms, summary, body, "
            "tokenize = 'unicode61 remove_diacritics 2')"
        )
    )
    conn.execute(
        text(
            "INSERT INTO term_fts (slug, category, title, synonyms, summary, body) "
            "VALUES (:slug, :category, :title, :synonyms, :summary, :body)"
        ),
        [
            {
                "slug": d.slug,
                "category": d.category,
                "title": d.title,
                "synonyms": " | ".join(d.synonyms),
                "summary": d.summary,
                "body": d.body,
            }
            for d in documents
        ],
    )


def match_expression(query: str) -> str | None:
    """An FTS5 MATCH expression in which every user word is a quoted prefix term, so FTS5
    operators and punctuation typed by users are plain words. None when nothing is left."""
    words = fold(query).split()[:MAX_QUERY_WORDS]
    if not words:
        return None
    return " ".join(f'"{word}"*' for word in words)


def search(
    session: Session, query: str, *, limit: int = 20, offset: int = 0, category: str | None = None
) -> Results:
    """Ranked hits for a free-text query; an exact title or synonym always ranks first."""
    results = Results(query=query, total=0)
    expression = match_expression(query)
    if expression is None:
        return results
    weights = ", ".join(str(w) for w in (0.0, 0.0, *WEIGHTS.values()))
    where = "term_fts MATCH :expr" + (" AND category = :category" if category else "")
    params = {"expr": expression, "category": category}
    rows = session.connection().execute(
        text(
            f"SELECT slug, title, synonyms, summary, category, bm25(term_fts, {weights}) AS rank "  # noqa: S608  (fixed SQL; values are bound)
            f"FROM term_fts WHERE {where} ORDER BY rank"
        ),
        params,
    ).all()
    wanted = fold(query)
    hits = []
    for slug, title, synonyms, summary, category_slug, rank in rows:
        synonym_list = [s for s in synonyms.split(" | ") if s]
        exact_synonym = next((s for s in synonym_list if fold(s) == wanted), None)
        exact = fold(title) == wanted or exact_synonym is not None
        matched_synonym = exact_synonym or next(
            (s for s in synonym_list if all(w in fold(s) for w in wanted.split())), None
        )
        matched_field = "title" if all(w in fold(title) for w in wanted.split()) else (
            "synonyms" if matched_synonym else "text"
        )
        score = round(-float(rank) + (1000.0 if exact else 0.0), 4)
        hits.append(
            Hit(slug, title, summary, category_slug, score, matched_field, matched_synonym)
        )
    hits.sort(key=lambda hit: -hit.score)
    results.total = len(hits)
    results.hits = hits[offset : offset + limit]
    return results
