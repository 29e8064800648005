"""Did you mean: the terms whose names look most like text that found nothing (no-hit search
pages, 404 pages)."""

import difflib

from sqlmodel import Session

from app.search import lookups
from app.search.backend import fulltext_for
from app.search.model import CLOSEST_CANDIDATES, MAX_QUERY_CHARS, Entry
from app.text import fold


def closest(session: Session, text: str, count: int = 5) -> list[Entry]:
    """The terms whose title or synonym is closest to text: names sharing one of its first 24
    trigrams (three letters or spaces in a row), best first by difflib's ratio (0.5 at
    least)."""
    wanted = fold(text[:MAX_QUERY_CHARS])
    if len(wanted) < 3:
        return []
    grams = list(dict.fromkeys(wanted[i : i + 3] for i in range(len(wanted) - 2)))[:24]
    conn = session.connection()
    name_ids = fulltext_for(conn).similar_names(wanted, grams, CLOSEST_CANDIDATES)
    rows = [
        row
        for row in lookups.names_with_documents(conn, name_ids)
        if any(gram in row[0] for gram in grams)
    ]
    scored = sorted(
        ((difflib.SequenceMatcher(None, wanted, row[0]).ratio(), Entry(*row[1:])) for row in rows),
        key=lambda pair: -pair[0],
    )
    entries: dict[str, Entry] = {}
    for ratio, entry in scored:
        if ratio >= 0.5:
            entries.setdefault(entry.slug, entry)
    return list(entries.values())[:count]
