"""The queries search runs on the plain tables, the same on every database: the vocabulary
(words held, completions, typo candidates), names and documents.

Each statement is built once, with bind parameters: a search runs a dozen small statements,
and building one per call costs several times what the database spends answering it."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Select,
    bindparam,
    desc,
    func,
    select,
)

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


def _starting(column: ColumnElement[str]) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """ "column starts with the prefix" as a range (see _prefix), which, unlike LIKE, uses
    the index on both databases."""
    return column >= bindparam("start"), column < bindparam("end")


def _prefix(prefix: str) -> dict[str, str]:
    """The range of a prefix: folded text is [0-9a-z ], all below "~"."""
    return {"start": prefix, "end": prefix + "~"}


def _many(key: str) -> ColumnElement[list[object]]:
    return bindparam(key, expanding=True)


INDEXED = select(vocab.c.word).where(vocab.c.word.in_(_many("words")))
WORDS_STARTING = (
    select(vocab.c.word)
    .where(*_starting(vocab.c.word), vocab.c.head < bindparam("length"))
    .order_by(vocab.c.word)
    .limit(bindparam("limit"))
)
DELETION_CANDIDATES = (
    select(vocab.c.word, vocab.c.freq)
    .distinct()
    .join(vocab_delete, vocab_delete.c.word_id == vocab.c.id)
    .where(vocab_delete.c.key.in_(_many("keys")))
    .order_by(vocab.c.word)
)
DOCUMENTS = select(doc).where(doc.c.id.in_(_many("ids")))
EXACT_NAMES = (
    select(name.c.doc_id, name.c.name, name.c.is_title)
    .where(name.c.folded.in_(_many("folded")) | name.c.compact.in_(_many("compacted")))
    .order_by(desc(name.c.is_title), func.length(name.c.name), name.c.id)
)
EXACT_NAMES_IN_CATEGORY = EXACT_NAMES.join(doc, doc.c.id == name.c.doc_id).where(
    doc.c.category == bindparam("category")
)
NAMES_BY_KEY = (
    select(name.c.doc_id, name.c.name)
    .join(name_prefix, name_prefix.c.name_id == name.c.id)
    .where(name_prefix.c.key == bindparam("key"), name_prefix.c.is_title == bindparam("is_title"))
    .order_by(name_prefix.c.length, name_prefix.c.name_id)
    .limit(bindparam("limit"))
)
NAMES_FROM: dict[str, Select[int, str, int, int]] = {
    column: select(name.c.doc_id, name.c.name, func.length(name.c.compact), name.c.id)
    .where(*_starting(name.c[column]), name.c.is_title == bindparam("is_title"))
    .limit(bindparam("limit"))
    for column in ("folded", "compact")
}
NAMES_WITH_DOCUMENTS = (
    select(name.c.id, name.c.folded, doc.c.slug, doc.c.title, doc.c.summary, doc.c.category)
    .join(doc, doc.c.id == name.c.doc_id)
    .where(name.c.id.in_(_many("ids")))
)


def _rows(conn: Connection, statement: Executable, params: dict[str, Any]) -> Sequence[Any]:
    """Every row at once: iterating a result fetches its rows one by one."""
    return conn.execute(statement, params).all()


# ---------------------------------------------------------------- vocabulary


def indexed(conn: Connection, words: Sequence[str]) -> set[str]:
    """The words the index holds whole."""
    if not words:
        return set()
    return {word for (word,) in _rows(conn, INDEXED, {"words": list(words)})}


def words_starting(conn: Connection, prefix: str, limit: int) -> list[str]:
    """Indexed words starting with prefix, in order, at most limit; joined names whose first
    word already starts with it (head >= len(prefix)) are left out."""
    params = {**_prefix(prefix), "length": len(prefix), "limit": limit}
    return [word for (word,) in _rows(conn, WORDS_STARTING, params)]


def deletion_candidates(conn: Connection, keys: Sequence[str]) -> list[tuple[str, int]]:
    """(word, documents holding it) of vocabulary words sharing a SymSpell deletion key."""
    rows = _rows(conn, DELETION_CANDIDATES, {"keys": list(keys)})
    return [(word, int(freq)) for word, freq in rows]


# ---------------------------------------------------------------- documents and names


def documents(conn: Connection, ids: Sequence[int]) -> dict[int, StoredDoc]:
    """The documents with these ids, by id."""
    if not ids:
        return {}
    return {
        doc_id: StoredDoc(doc_id, slug, title, json.loads(synonyms), summary, body, category)
        for doc_id, slug, title, synonyms, summary, body, category in _rows(
            conn, DOCUMENTS, {"ids": list(ids)}
        )
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
    params: dict[str, Any] = {"folded": folded, "compacted": compacted}
    query = EXACT_NAMES
    if category is not None:
        query, params["category"] = EXACT_NAMES_IN_CATEGORY, category
    return [(doc_id, text, bool(is_title)) for doc_id, text, is_title in _rows(conn, query, params)]


def names_by_key(conn: Connection, key: str, is_title: bool, limit: int) -> list[tuple[int, str]]:
    """(doc id, name) of names starting with a 2-4 letter key (folded or compact), shortest
    first, then in name id order."""
    rows = _rows(conn, NAMES_BY_KEY, {"key": key, "is_title": int(is_title), "limit": limit})
    return [(doc_id, text) for doc_id, text in rows]


def names_from(
    conn: Connection, column: str, value: str, is_title: bool, limit: int
) -> list[tuple[int, str, int, int]]:
    """(doc id, name, length of its compact form, name id) of up to limit names whose
    `column` ("folded" or "compact") starts with value, in any order."""
    params = {**_prefix(value), "is_title": int(is_title), "limit": limit}
    return [(d, text, length, i) for d, text, length, i in _rows(conn, NAMES_FROM[column], params)]


def names_with_documents(
    conn: Connection, name_ids: Sequence[int]
) -> list[tuple[str, str, str, str, str]]:
    """(folded name, slug, title, summary, category) of these names, in the order given."""
    if not name_ids:
        return []
    rows = {
        name_id: (folded, slug, title, summary, category)
        for name_id, folded, slug, title, summary, category in _rows(
            conn, NAMES_WITH_DOCUMENTS, {"ids": list(name_ids)}
        )
    }
    return [rows[i] for i in name_ids if i in rows]
