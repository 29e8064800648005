"""The SQLite store: FTS5 contentless tables ranked with bm25, an FTS5 trigram table for
"did you mean", plain tables for names, prefixes and the vocabulary. All of search's
SQLite-only SQL lives here."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from app.search.model import (
    CLOSEST_CANDIDATES,
    CLOSEST_WINDOW,
    COLUMN_WEIGHTS,
    MAX_TOTAL,
    RANK_WINDOW,
    TIER_COLUMNS,
    IndexRows,
    Term,
)
from app.search.store import DocRow, NameRow, Store

# One FTS5 table per bucket; "title" is the names table with a column filter.
TIER_TABLES = {
    "title": "search_names",
    "names": "search_names",
    "head": "search_head",
    "full": "search_full",
}
FTS_TABLES = ("search_names", "search_head", "search_full")
TABLES = ("search_doc", "search_name", "search_name_prefix", "search_vocab", "search_vocab_delete")
VIRTUAL_TABLES = (*FTS_TABLES, "search_name_trigram")
SCHEMA = (
    "CREATE TABLE search_doc (id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE, "
    "title TEXT NOT NULL, synonyms TEXT NOT NULL, summary TEXT NOT NULL, body TEXT NOT NULL, "
    "category TEXT NOT NULL)",
    "CREATE INDEX search_doc_category ON search_doc (category)",
    # Every title and synonym, folded two ways, for exact names, suggestions, did-you-mean.
    "CREATE TABLE search_name (id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL, "
    "name TEXT NOT NULL, is_title INTEGER NOT NULL, folded TEXT NOT NULL, compact TEXT NOT NULL)",
    "CREATE INDEX search_name_folded ON search_name (folded)",
    "CREATE INDEX search_name_compact ON search_name (compact)",
    # Autocomplete on a few letters: names by their first 2-4 letters, shortest first, from
    # the index alone (a range scan sorted by length costs 10 ms at 100,000 entries).
    "CREATE TABLE search_name_prefix (key TEXT NOT NULL, is_title INTEGER NOT NULL, "
    "length INTEGER NOT NULL, name_id INTEGER NOT NULL, "
    "PRIMARY KEY (key, is_title, length, name_id)) WITHOUT ROWID",
    # The three buckets hold folded text only (contentless); rowid = search_doc.id.
    "CREATE VIRTUAL TABLE search_names USING fts5(title, synonyms, joined, "
    "content='', prefix='2 3', tokenize='ascii')",
    "CREATE VIRTUAL TABLE search_head USING fts5(title, synonyms, joined, summary, "
    "content='', prefix='2 3', tokenize='ascii')",
    "CREATE VIRTUAL TABLE search_full USING fts5(title, synonyms, joined, summary, body, "
    "content='', prefix='2 3', tokenize='ascii')",
    "CREATE VIRTUAL TABLE search_name_trigram USING fts5(folded, content='', tokenize='trigram')",
    # Every indexed word, for completions and typo corrections, and the SymSpell deletions
    # of the words corrections may lead to. `head` is 0 for a word of the text; for a joined
    # name ("layernormalization") it is the length of its first word.
    "CREATE TABLE search_vocab (id INTEGER PRIMARY KEY, word TEXT NOT NULL UNIQUE, "
    "freq INTEGER NOT NULL, head INTEGER NOT NULL)",
    "CREATE TABLE search_vocab_delete (key TEXT NOT NULL, word_id INTEGER NOT NULL, "
    "PRIMARY KEY (key, word_id)) WITHOUT ROWID",
)


def fts_group(term: Term) -> str:
    """A term as an FTS5 group. Words are [0-9a-z]+ after folding and are quoted, so nothing
    a user types (quotes, *, NEAR, AND/OR/NOT, :, ^, -) acts as an operator."""
    options = [f'"{token}"*' if prefix else f'"{token}"' for token, prefix in term.options()]
    return options[0] if len(options) == 1 else "(" + " OR ".join(options) + ")"


def match_expression(terms: Sequence[Term]) -> str | None:
    """An FTS5 MATCH expression requiring every term; None when there is nothing to match."""
    return " AND ".join(fts_group(term) for term in terms) if terms else None


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _category_join(table: str, category: str | None) -> tuple[str, str, list[Any]]:
    if category is None:
        return "", "", []
    return (
        f" JOIN search_doc ON search_doc.id = {table}.rowid",
        " AND search_doc.category = ?",
        [category],
    )


class SQLiteStore(Store):
    def _insert(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:  # executemany with no rows would run the statement once, unbound
            self.conn.exec_driver_sql(sql, list(rows))

    def drop(self) -> None:
        for table in ("term_fts", *VIRTUAL_TABLES, *TABLES):  # term_fts: the first index's name
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")

    def build(self, index: IndexRows) -> None:
        self.drop()  # the load's transaction keeps the old index for readers until it commits
        for statement in SCHEMA:
            self.conn.exec_driver_sql(statement)
        self._insert("INSERT INTO search_doc VALUES (?, ?, ?, ?, ?, ?, ?)", index.docs)
        self._insert("INSERT INTO search_name VALUES (?, ?, ?, ?, ?, ?)", index.names)
        self._insert(
            "INSERT INTO search_name_trigram (rowid, folded) VALUES (?, ?)",
            [(row[0], row[4]) for row in index.names],
        )
        self._insert("INSERT INTO search_name_prefix VALUES (?, ?, ?, ?)", index.prefixes)
        for table, tier in (("search_names", "names"), ("search_head", "head")):
            width = len(TIER_COLUMNS[tier])
            columns = ", ".join(TIER_COLUMNS[tier])
            self._insert(
                f"INSERT INTO {table} (rowid, {columns}) VALUES (?{', ?' * width})",  # noqa: S608
                [row[: width + 1] for row in index.fields],
            )
        columns = ", ".join(TIER_COLUMNS["full"])
        self._insert(
            f"INSERT INTO search_full (rowid, {columns}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
            index.fields,
        )
        self._insert("INSERT INTO search_vocab VALUES (?, ?, ?, ?)", index.vocab)
        self._insert("INSERT INTO search_vocab_delete VALUES (?, ?)", index.deletes)

    @classmethod
    def after_load(cls, engine: Engine) -> None:
        """Nothing to do: the load's transaction dropped and recreated the tables."""

    # ------------------------------------------------------------ vocabulary

    def indexed(self, words: Sequence[str]) -> set[str]:
        if not words:
            return set()
        sql = f"SELECT word FROM search_vocab WHERE word IN ({_marks(len(words))})"  # noqa: S608
        return {word for (word,) in self.rows(sql, words)}

    def words_starting(self, prefix: str, limit: int) -> list[str]:
        rows = self.rows(
            "SELECT word FROM search_vocab WHERE word >= ? AND word < ? AND head < ? "
            "ORDER BY word LIMIT ?",
            [prefix, prefix + "~", len(prefix), limit],
        )
        return [word for (word,) in rows]

    def deletion_candidates(self, keys: Sequence[str]) -> list[tuple[str, int]]:
        sql = (
            "SELECT DISTINCT v.word, v.freq FROM search_vocab_delete d "  # noqa: S608
            f"JOIN search_vocab v ON v.id = d.word_id WHERE d.key IN ({_marks(len(keys))}) "
            "ORDER BY v.word"
        )
        return [(word, int(freq)) for word, freq in self.rows(sql, keys)]

    # ------------------------------------------------------------ names and documents

    def documents(self, ids: Sequence[int]) -> list[DocRow]:
        if not ids:
            return []
        sql = (
            "SELECT id, slug, title, synonyms, summary, body, category "  # noqa: S608
            f"FROM search_doc WHERE id IN ({_marks(len(ids))})"
        )
        return self.rows(sql, ids)

    def exact_names(
        self, folded: Sequence[str], compacted: Sequence[str], category: str | None
    ) -> list[tuple[int, str, int]]:
        join, where, extra = _category_join("search_name", category)
        join = join.replace("search_name.rowid", "search_name.doc_id")
        sql = (
            f"SELECT search_name.doc_id, search_name.name, search_name.is_title "  # noqa: S608
            f"FROM search_name{join} WHERE (search_name.folded IN ({_marks(len(folded))}) "
            f"OR search_name.compact IN ({_marks(len(compacted))})){where} "
            f"ORDER BY search_name.is_title DESC, length(search_name.name), search_name.id"
        )
        return self.rows(sql, [*folded, *compacted, *extra])

    def names_by_key(self, key: str, is_title: bool, limit: int) -> list[tuple[int, str]]:
        return self.rows(
            "SELECT n.doc_id, n.name FROM search_name_prefix p "
            "JOIN search_name n ON n.id = p.name_id WHERE p.key = ? AND p.is_title = ? "
            "ORDER BY p.length, p.name_id LIMIT ?",
            [key, int(is_title), limit],
        )

    def names_from(
        self, column: str, value: str, is_title: bool, limit: int
    ) -> list[tuple[int, str, int, int]]:
        assert column in ("folded", "compact")
        sql = (
            f"SELECT doc_id, name, length(compact), id FROM search_name "  # noqa: S608
            f"WHERE {column} >= ? AND {column} < ? AND is_title = ? LIMIT ?"
        )
        return self.rows(sql, [value, value + "~", int(is_title), limit])

    # ------------------------------------------------------------ matching

    def count(
        self, terms: Sequence[Term], category: str | None, ids: Sequence[int]
    ) -> tuple[int, int]:
        # Counting 90,000 matches of a two-letter prefix costs 12 ms, hence the LIMIT.
        join, where, extra = _category_join("search_full", category)
        among = f"id IN ({_marks(len(ids))})" if ids else "0"
        sql = (
            f"SELECT count(*), coalesce(sum({among}), 0) FROM (SELECT search_full.rowid AS id "  # noqa: S608
            f"FROM search_full{join} WHERE search_full MATCH ?{where} LIMIT ?)"
        )
        params = [*ids, match_expression(terms), *extra, MAX_TOTAL + 1]
        count, matched = self.rows(sql, params)[0]
        return int(count), int(matched)

    def ranked(
        self,
        tier: str,
        terms: Sequence[Term],
        category: str | None,
        count: int,
        total: int | None = None,
    ) -> list[tuple[int, float]]:
        table = TIER_TABLES[tier]
        expression = match_expression(terms)
        if tier == "title":
            expression = f"{{title}} : ({expression})"
        join, where, extra = _category_join(table, category)
        base = f" FROM {table}{join} WHERE {table} MATCH ?{where}"
        params: list[Any] = [expression, *extra]
        bound = (
            []
            if total is not None and total <= RANK_WINDOW[tier]
            else self.rows(
                f"SELECT {table}.rowid{base} ORDER BY {table}.rowid LIMIT 1 OFFSET ?",  # noqa: S608
                [*params, RANK_WINDOW[tier]],
            )
        )
        if bound:
            base += f" AND {table}.rowid < ?"
            params.append(bound[0][0])
        # bm25: negative, lower is better.
        weights = ", ".join(str(COLUMN_WEIGHTS[c]) for c in TIER_COLUMNS[tier])
        sql = f"SELECT {table}.rowid, bm25({table}, {weights}) AS r{base} ORDER BY r, 1 LIMIT ?"  # noqa: S608
        return [(int(i), max(0.0, -float(r))) for i, r in self.rows(sql, [*params, count])]

    def closest_names(self, wanted: str, grams: Sequence[str]) -> list[NameRow]:
        # Names holding any of the trigrams, ranked by bm25 among the first CLOSEST_WINDOW.
        expression = " OR ".join(f'"{gram}"' for gram in grams)
        window = self.rows(
            "SELECT rowid FROM search_name_trigram WHERE search_name_trigram MATCH ? "
            "ORDER BY rowid LIMIT 1 OFFSET ?",
            [expression, CLOSEST_WINDOW],
        )
        bound = " AND rowid < ?" if window else ""
        return self.rows(
            "SELECT n.folded, d.slug, d.title, d.summary, d.category FROM "  # noqa: S608
            "(SELECT rowid AS id FROM search_name_trigram "
            f"WHERE search_name_trigram MATCH ?{bound} ORDER BY rank LIMIT ?) AS t "
            "JOIN search_name n ON n.id = t.id JOIN search_doc d ON d.id = n.doc_id",
            [expression, *(window[0] if window else []), CLOSEST_CANDIDATES],
        )
