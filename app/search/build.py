"""Building the index, inside the content load's transaction: what it holds for the documents
(index_rows), written to the plain tables and the database's full-text tables."""

import json
from collections import Counter
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, delete, select

from app.search import tables
from app.search.backend import fulltext_class, fulltext_for
from app.search.model import MAX_WORD_CHARS, PREFIX_KEYS, Document, IndexRows
from app.search.typos import delete_depth, deletes
from app.text import fold

# Bump with any change to a table, here or in a dialect: the next load then recreates them
# all instead of swapping their rows.
SCHEMA_VERSION = "3"


def _names(document: Document) -> list[tuple[str, bool]]:
    return [(document.title, True), *((synonym, False) for synonym in document.synonyms)]


def index_rows(documents: Sequence[Document]) -> IndexRows:
    """What the index holds for the documents, whichever database stores it."""
    index = IndexRows([], [], [], [], [], [])
    vocabulary: Counter[str] = Counter()  # word -> documents holding it
    correctable: set[str] = set()  # words typos are corrected to (not the joined names)
    heads: dict[str, int] = {}  # joined name -> shortest first word it was joined from
    for doc_id, document in enumerate(documents, start=1):
        index.docs.append(
            (
                doc_id,
                document.slug,
                document.title,
                json.dumps(document.synonyms),
                document.summary,
                document.body,
                document.category,
            )
        )
        joined = []
        for name, is_title in _names(document):
            folded = fold(name)
            index.names.append(
                (len(index.names) + 1, doc_id, name, int(is_title), folded, folded.replace(" ", ""))
            )
            if " " in folded:
                joined.append(folded.replace(" ", ""))
                first = len(folded.split(" ", 1)[0])
                heads[joined[-1]] = min(heads.get(joined[-1], first), first)
        # Synonyms repeat words ("Residual network", "Deep residual network"); each word
        # counts once, so a term with many similar synonyms does not outrank its title.
        synonyms = " ".join(dict.fromkeys(" ".join(fold(s) for s in document.synonyms).split()))
        row = (
            doc_id,
            fold(document.title),
            synonyms,
            " ".join(dict.fromkeys(joined)),
            fold(document.summary),
            fold(document.body),
        )
        index.fields.append(row)
        words = set(" ".join(row[1:]).split())
        vocabulary.update(words)
        correctable.update(words.difference(row[3].split()))
    index.prefixes = [
        (key, is_title, len(joined_name), name_id)
        for name_id, _, _, is_title, folded, joined_name in index.names
        for key in sorted(
            {
                v[:n]
                for v in (folded, joined_name)
                for n in PREFIX_KEYS
                if len(v) >= n and not v[:n].endswith(" ")
            }
        )
    ]
    ordered = sorted(vocabulary)
    index.vocab = [
        (word_id, word, vocabulary[word], 0 if word in correctable else heads[word])
        for word_id, word in enumerate(ordered, start=1)
    ]
    index.deletes = [
        (key, word_id)
        for word_id, word in enumerate(ordered, start=1)
        if word in correctable
        and not word.isdigit()
        and len(word) <= MAX_WORD_CHARS
        and delete_depth(word)
        for key in sorted(deletes(word, delete_depth(word)))
    ]
    return index


def _schema_version(conn: Connection) -> str | None:
    """The layout the index was built with; None before the first load."""
    if not conn.dialect.has_table(conn, tables.meta.name):
        return None
    return conn.scalar(select(tables.meta.c.value).where(tables.meta.c.key == "schema"))


def drop_index(conn: Connection) -> None:
    """Remove every index table (in the caller's transaction)."""
    fulltext_for(conn).drop()
    tables.metadata.drop_all(conn)


def build_index(conn: Connection, documents: Sequence[Document]) -> None:
    """Fill the index with the documents, replacing what it held, in the caller's
    transaction: readers keep the previous index until it commits. The tables keep their
    rows' place when their layout is current (PostgreSQL readers are then never blocked);
    the first load, or one after a layout change, creates them."""
    index = index_rows(documents)
    fulltext = fulltext_for(conn)
    fresh = _schema_version(conn) != SCHEMA_VERSION
    if fresh:
        drop_index(conn)
        tables.metadata.create_all(conn)
        fulltext.create()
    else:
        for table in tables.TABLES:
            conn.execute(delete(table))
        fulltext.clear()
    fulltext.write(tables.meta, [("schema", SCHEMA_VERSION)])
    fulltext.write(tables.doc, index.docs)
    fulltext.write(tables.name, index.names)
    fulltext.write(tables.name_prefix, index.prefixes)
    fulltext.write(tables.vocab, index.vocab)
    fulltext.write(tables.vocab_delete, index.deletes)
    fulltext.fill(index, fresh)


def after_load(engine: Engine) -> None:
    """Housekeeping once the transaction that ran build_index has committed (PostgreSQL
    vacuums the rows the reload replaced)."""
    fulltext_class(engine.dialect.name).after_load(engine)
