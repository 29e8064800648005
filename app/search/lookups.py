"""The queries search runs on the plain tables, the same on every database: the vocabulary
(words held, completions, typo candidates), names and documents."""

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, desc, func, select

from app.search.tables import doc, name, name_prefix, vocab, vocab_delete


@dataclass
class StoredDoc:
    """A document as search_doc holds it."""

    id: int
    slug: str
    title: str
    synonyms: list[str]
    summary: str
    body: str
    category: str


def _starting(
    column: ColumnElement[str], prefix: str
) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """A range on a bytewise column for "starts with prefix": folded text is [0-9a-z ], all
    below "~", and a range, unlike LIKE, uses the index on both databases."""
    return column >= prefix, column < prefix + "~"


# ---------------------------------------------------------------- vocabulary


def indexed(conn: Connection, words: Sequence[str]) -> set[str]:
    """The words the index holds whole."""
    if not words:
        return set()
    return set(conn.scalars(select(vocab.c.word).where(vocab.c.word.in_(words))))


def words_starting(conn: Connection, prefix: str, limit: int) -> list[str]:
    """Indexed words starting with prefix, in order, at most limit; joined names whose first
    word already starts with it (head >= len(prefix)) are left out."""
    query = (
        select(vocab.c.word)
        .where(*_starting(vocab.c.word, prefix), vocab.c.head < len(prefix))
        .order_by(vocab.c.word)
        .limit(limit)
    )
    return list(conn.scalars(query))


def deletion_candidates(conn: Connection, keys: Sequence[str]) -> list[tuple[str, int]]:
    """(word, documents holding it) of vocabulary words sharing a SymSpell deletion key."""
    query = (
        select(vocab.c.word, vocab.c.freq)
        .distinct()
        .join(vocab_delete, vocab_delete.c.word_id == vocab.c.id)
        .where(vocab_delete.c.key.in_(keys))
        .order_by(vocab.c.word)
    )
    return [(word, int(freq)) for word, freq in conn.execute(query)]


# ---------------------------------------------------------------- documents and names


def documents(conn: Connection, ids: Sequence[int]) -> dict[int, StoredDoc]:
    """The documents with these ids, by id."""
    if not ids:
        return {}
    rows = conn.execute(select(doc).where(doc.c.id.in_(ids)))
    return {
        row.id: StoredDoc(row.id, row.slug, row.title, json.loads(row.synonyms), *row[4:])
        for row in rows
    }


def exact_names(
    conn: Connection, names: Sequence[str], category: str | None
) -> list[tuple[int, str, bool]]:
    """(doc id, name, is title) of titles and synonyms equal to any of the folded names,
    compared folded or with the spaces removed: titles first, then shorter names."""
    folded = list(dict.fromkeys(n for n in names if n))
    if not folded:
        return []
    compacted = list(dict.fromkeys(n.replace(" ", "") for n in folded))
    query = (
        select(name.c.doc_id, name.c.name, name.c.is_title)
        .where(name.c.folded.in_(folded) | name.c.compact.in_(compacted))
        .order_by(desc(name.c.is_title), func.length(name.c.name), name.c.id)
    )
    if category is not None:
        query = query.join(doc, doc.c.id == name.c.doc_id).where(doc.c.category == category)
    return [(doc_id, text, bool(is_title)) for doc_id, text, is_title in conn.execute(query)]


def names_by_key(conn: Connection, key: str, is_title: bool, limit: int) -> list[tuple[int, str]]:
    """(doc id, name) of names starting with a 2-4 letter key (folded or compact), shortest
    first, then in name id order."""
    query = (
        select(name.c.doc_id, name.c.name)
        .join(name_prefix, name_prefix.c.name_id == name.c.id)
        .where(name_prefix.c.key == key, name_prefix.c.is_title == int(is_title))
        .order_by(name_prefix.c.length, name_prefix.c.name_id)
        .limit(limit)
    )
    return [(doc_id, text) for doc_id, text in conn.execute(query)]


def names_from(
    conn: Connection, column: str, value: str, is_title: bool, limit: int
) -> list[tuple[int, str, int, int]]:
    """(doc id, name, length of its compact form, name id) of up to limit names whose
    `column` ("folded" or "compact") starts with value, in any order."""
    query = (
        select(name.c.doc_id, name.c.name, func.length(name.c.compact), name.c.id)
        .where(*_starting(name.c[column], value), name.c.is_title == int(is_title))
        .limit(limit)
    )
    return [
        (doc_id, text, length, name_id) for doc_id, text, length, name_id in conn.execute(query)
    ]


def names_with_documents(
    conn: Connection, name_ids: Sequence[int]
) -> list[tuple[str, str, str, str, str]]:
    """(folded name, slug, title, summary, category) of these names, in the order given."""
    if not name_ids:
        return []
    query = (
        select(name.c.id, name.c.folded, doc.c.slug, doc.c.title, doc.c.summary, doc.c.category)
        .join(doc, doc.c.id == name.c.doc_id)
        .where(name.c.id.in_(name_ids))
    )
    rows = {row[0]: (row[1], row[2], row[3], row[4], row[5]) for row in conn.execute(query)}
    return [rows[i] for i in name_ids if i in rows]
