"""SQLite's full text: contentless FTS5 tables ranked with bm25 and column weights, and an
FTS5 trigram table for "did you mean". All of search's SQLite-only SQL is here."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Table, insert

from app.search.fulltext import FullText
from app.search.model import (
    CLOSEST_WINDOW,
    COLUMN_WEIGHTS,
    MAX_TOTAL,
    TIER_COLUMNS,
    IndexRows,
    Term,
)

# One FTS5 table per bucket; "title" is the names table with a column filter.
TIER_TABLES = {
    "title": "search_names",
    "names": "search_names",
    "head": "search_head",
    "full": "search_full",
}
TRIGRAMS = "search_name_trigram"
TABLES = ("search_names", "search_head", "search_full", TRIGRAMS)
# The buckets hold folded text only (contentless); rowid = search_doc.id. FTS5 keeps its own
# index of 2- and 3-letter prefixes (see PREFIX_INDEX_MAX).
CREATE_TABLES = (
    "CREATE VIRTUAL TABLE search_names USING fts5(title, synonyms, joined, "
    "content='', prefix='2 3', tokenize='ascii')",
    "CREATE VIRTUAL TABLE search_head USING fts5(title, synonyms, joined, summary, "
    "content='', prefix='2 3', tokenize='ascii')",
    "CREATE VIRTUAL TABLE search_full USING fts5(title, synonyms, joined, summary, body, "
    "content='', prefix='2 3', tokenize='ascii')",
    # rowid = search_name.id
    f"CREATE VIRTUAL TABLE {TRIGRAMS} USING fts5(folded, content='', tokenize='trigram')",
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


def _matching(tier: str, terms: Sequence[Term], category: str | None) -> tuple[str, str, list[Any]]:
    """(table, "FROM ... WHERE ..." of the bucket's matches, its parameters)."""
    table = TIER_TABLES[tier]
    expression = match_expression(terms)
    if tier == "title":
        expression = f"{{title}} : ({expression})"
    sql = f" FROM {table} WHERE {table} MATCH ?"
    params: list[Any] = [expression]
    if category is not None:
        sql = (
            f" FROM {table} JOIN search_doc ON search_doc.id = {table}.rowid "
            f"WHERE {table} MATCH ? AND search_doc.category = ?"
        )
        params.append(category)
    return table, sql, params


class SQLiteFullText(FullText):
    tables = TABLES

    def _insert(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:  # executemany with no rows would run the statement once, unbound
            self.conn.exec_driver_sql(sql, [tuple(row) for row in rows])

    def write(self, table: Table, rows: Sequence[Sequence[Any]]) -> None:
        # sqlite3's own executemany of the compiled INSERT, without SQLAlchemy's work per row
        self._insert(str(insert(table).compile(dialect=self.conn.dialect)), rows)

    def create(self) -> None:
        for statement in CREATE_TABLES:
            self.conn.exec_driver_sql(statement)

    def clear(self) -> None:
        for table in self.tables:
            # FTS5's command for emptying a contentless table
            self.conn.exec_driver_sql(f"INSERT INTO {table} ({table}) VALUES ('delete-all')")  # noqa: S608

    @classmethod
    def after_load(cls, engine: Engine) -> None:
        """Nothing to do: FTS5 frees what a reload replaced as it goes."""

    def fill(self, index: IndexRows, fresh: bool) -> None:
        for tier in ("names", "head", "full"):
            width = len(TIER_COLUMNS[tier])
            self._insert(
                f"INSERT INTO {TIER_TABLES[tier]} (rowid, {', '.join(TIER_COLUMNS[tier])}) "  # noqa: S608
                f"VALUES ({_marks(width + 1)})",
                [row[: width + 1] for row in index.fields],
            )
        self._insert(
            f"INSERT INTO {TRIGRAMS} (rowid, folded) VALUES (?, ?)",  # noqa: S608
            [(row[0], row[4]) for row in index.names],
        )

    # ------------------------------------------------------------ matching

    def count(
        self, terms: Sequence[Term], category: str | None, ids: Sequence[int]
    ) -> tuple[int, int]:
        # Counting 90,000 matches of a two-letter prefix costs 12 ms, hence the LIMIT.
        table, matching, params = _matching("full", terms, category)
        among = f"id IN ({_marks(len(ids))})" if ids else "0"
        sql = (
            f"SELECT count(*), coalesce(sum({among}), 0) "  # noqa: S608
            f"FROM (SELECT {table}.rowid AS id{matching} LIMIT ?)"
        )
        count, matched = self.rows(sql, [*ids, *params, MAX_TOTAL + 1])[0]
        return int(count), int(matched)

    def nth_match(
        self, tier: str, terms: Sequence[Term], category: str | None, n: int
    ) -> int | None:
        table, matching, params = _matching(tier, terms, category)
        found = self.rows(
            f"SELECT {table}.rowid{matching} ORDER BY {table}.rowid LIMIT 1 OFFSET ?",  # noqa: S608
            [*params, n],
        )
        return int(found[0][0]) if found else None

    def rank(
        self,
        tier: str,
        terms: Sequence[Term],
        category: str | None,
        count: int,
        below: int | None,
    ) -> list[tuple[int, float]]:
        table, matching, params = _matching(tier, terms, category)
        if below is not None:
            matching += f" AND {table}.rowid < ?"
            params.append(below)
        # bm25 is negative, lower is better.
        weights = ", ".join(str(COLUMN_WEIGHTS[c]) for c in TIER_COLUMNS[tier])
        sql = (
            f"SELECT {table}.rowid, bm25({table}, {weights}) AS r{matching} "  # noqa: S608
            "ORDER BY r, 1 LIMIT ?"
        )
        return [(int(i), max(0.0, -float(r))) for i, r in self.rows(sql, [*params, count])]

    # ------------------------------------------------------------ did you mean

    def similar_names(self, wanted: str, grams: Sequence[str], limit: int) -> list[int]:
        # Names holding any of the trigrams, ranked by bm25 among the first CLOSEST_WINDOW.
        expression = " OR ".join(f'"{gram}"' for gram in grams)
        window = self.rows(
            f"SELECT rowid FROM {TRIGRAMS} WHERE {TRIGRAMS} MATCH ? "  # noqa: S608
            "ORDER BY rowid LIMIT 1 OFFSET ?",
            [expression, CLOSEST_WINDOW],
        )
        bound = " AND rowid < ?" if window else ""
        found = self.rows(
            f"SELECT rowid FROM {TRIGRAMS} WHERE {TRIGRAMS} MATCH ?{bound} "  # noqa: S608
            "ORDER BY rank LIMIT ?",
            [expression, *(window[0] if window else []), limit],
        )
        return [int(name_id) for (name_id,) in found]
