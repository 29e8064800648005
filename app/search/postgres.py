"""PostgreSQL's full text: one table of weighted tsvectors per bucket with a GIN index, ranked
with ts_rank_cd term by term, and pg_trgm for "did you mean". All of search's
PostgreSQL-only SQL is here.

Vectors are written from the folded words the shared code computes, never re-parsed by a
text search parser, so both databases hold the same tokens. Queries are tsquery literals of
[0-9a-z]+ lexemes (nothing a user types reaches the tsquery syntax), passed as parameters.

Reloads delete and re-insert rows in the load's transaction, so readers keep the old index
(MVCC) and are never blocked; the web engine reads in REPEATABLE READ, one snapshot per
request. after_load() vacuums the dead rows away once the load has committed.
"""

import logging
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.exc import DBAPIError

from app.search.fulltext import FullText
from app.search.model import COLUMN_WEIGHTS, MAX_TOTAL, TIER_COLUMNS, IndexRows, Term
from app.search.tables import TABLES as PLAIN_TABLES

log = logging.getLogger(__name__)

MAX_LEXEME_BYTES = 2047  # PostgreSQL's limit; longer words cannot be typed in a query anyway
MAX_POSITION = 16383  # positions past this one are stored as it
MAX_POSITIONS = 256  # positions kept per word and row
LEXEME = re.compile(r"[0-9a-z]+")
# ts_rank_cd's normalization: divide by 1 + the log of the row's length, so a long row
# does not win on its many words alone (bm25's length normalization, on SQLite, does more).
NORMALIZATION = 1

# One table per bucket, as on SQLite; "title" is the names table with every lexeme of the
# query restricted to the title's weight class (FTS5's column filter): its rows are ranked,
# and normalized by length, as whole names rows.
TIER_TABLES = {
    "title": "search_names",
    "names": "search_names",
    "head": "search_head",
    "full": "search_full",
}
TITLE_CLASS = "A"
# Weight classes per table: four for five columns, so the full text gives synonyms and
# joined names one class. ts_rank_cd's weights are COLUMN_WEIGHTS / 10 (it takes at most 1).
TABLE_WEIGHTS = {
    "search_names": {"title": "A", "synonyms": "B", "joined": "C"},
    "search_head": {"title": "A", "synonyms": "B", "joined": "C", "summary": "D"},
    "search_full": {"title": "A", "synonyms": "B", "joined": "B", "summary": "C", "body": "D"},
}
WEIGHT_SCALE = 10.0
TABLES = tuple(TABLE_WEIGHTS)
CREATE_TABLES = (
    # id = search_doc.id
    "CREATE TABLE search_names (id integer PRIMARY KEY, category text NOT NULL, "
    "vec tsvector NOT NULL)",
    "CREATE TABLE search_head (id integer PRIMARY KEY, category text NOT NULL, "
    "vec tsvector NOT NULL)",
    # The long vectors live out of line (toast), so counting matches reads narrow rows.
    "CREATE TABLE search_full (id integer PRIMARY KEY, category text NOT NULL, "
    "vec tsvector NOT NULL) WITH (toast_tuple_target = 128)",
    # On an expression that equality lookups of `folded` cannot use (pg_trgm answers "=" too,
    # lossily); a trailing space changes none of pg_trgm's trigrams.
    "CREATE INDEX search_name_trigram ON search_name USING gist ((folded || ' ') gist_trgm_ops)",
)
# Built once the first rows are in: much faster than maintaining them row by row.
GIN_INDEXES = (
    "CREATE INDEX search_names_vec ON search_names USING gin (vec)",
    "CREATE INDEX search_head_vec ON search_head USING gin (vec)",
    "CREATE INDEX search_full_vec ON search_full USING gin (vec)",
)


def _weights(table: str) -> list[float]:
    """ts_rank_cd's weights, {D, C, B, A}; a class shared by two columns takes the higher
    weight, an unused one the lowest."""
    by_class = dict.fromkeys("ABCD", 0.1)
    for column, weight_class in TABLE_WEIGHTS[table].items():
        by_class[weight_class] = max(by_class[weight_class], COLUMN_WEIGHTS[column] / WEIGHT_SCALE)
    return [by_class[c] for c in "DCBA"]


WEIGHTS = {table: _weights(table) for table in TABLES}


def tsvector(columns: Sequence[tuple[str, str]]) -> str:
    """A tsvector literal of folded texts, each a (text, weight class): positions run on
    across the columns, as when vectors are concatenated."""
    found: dict[str, list[str]] = {}
    position = 0
    for text, weight_class in columns:
        for word in text.split():
            position += 1
            if len(word) > MAX_LEXEME_BYTES:
                continue
            places = found.setdefault(word, [])
            if len(places) < MAX_POSITIONS and position <= MAX_POSITION:
                places.append(f"{position}{weight_class}")
            elif not places:
                places.append(f"{MAX_POSITION}{weight_class}")
    return " ".join(f"'{word}':{','.join(places)}" for word, places in found.items())


def _lexeme(token: str, prefix: bool, classes: str) -> str:
    """A quoted tsquery lexeme, found in the weight classes given (all when none). Tokens are
    folded words, [0-9a-z]+: the check keeps it so."""
    assert LEXEME.fullmatch(token), token
    label = ("*" if prefix else "") + classes
    return f"'{token}':{label}" if label else f"'{token}'"


def term_query(term: Term, classes: str = "") -> str:
    """One term as a tsquery: the OR of its options."""
    options = [_lexeme(token, prefix, classes) for token, prefix in term.options()]
    return options[0] if len(options) == 1 else "(" + " | ".join(options) + ")"


def tsquery(terms: Sequence[Term], classes: str = "") -> str:
    """A tsquery literal requiring every term."""
    return " & ".join(term_query(term, classes) for term in terms)


def _matching(tier: str, terms: Sequence[Term], category: str | None) -> tuple[str, str, list[Any]]:
    """(weight classes searched, "FROM ... WHERE ..." of the bucket's matches, parameters)."""
    table = TIER_TABLES[tier]
    classes = TITLE_CLASS if tier == "title" else ""
    sql = f" FROM {table} WHERE vec @@ %s::tsquery"
    params: list[Any] = [tsquery(terms, classes)]
    if category is not None:
        sql += " AND category = %s"
        params.append(category)
    return classes, sql, params


class PostgresFullText(FullText):
    tables = TABLES

    def matching(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Rows of a statement matching a tsquery, through the GIN index, planned for its
        parameters every time. The planner costs a sequential scan of a bucket by its heap,
        which is small (the vectors live in toast), not by the vectors it would decompress
        to evaluate @@, and so picks it wrongly; and psycopg prepares a statement run five
        times, after which PostgreSQL may settle on a generic plan, blind to how common a
        word is. The setting lasts for this statement only; the three are one round trip."""
        driver = self.conn.connection.driver_connection
        assert driver is not None
        with driver.pipeline():
            driver.execute("SET LOCAL enable_seqscan = off")
            cursor = driver.execute(sql, tuple(params), prepare=False)
            driver.execute("RESET enable_seqscan")
        try:
            rows: list[Any] = cursor.fetchall()
        finally:
            cursor.close()
        return rows

    # ------------------------------------------------------------ building

    def create(self) -> None:
        self.conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for statement in CREATE_TABLES:
            self.conn.exec_driver_sql(statement)

    def clear(self) -> None:
        for table in self.tables:  # row by row, so readers keep the old index until the commit
            self.conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608

    def _copy(self, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        driver = self.conn.connection.driver_connection
        with driver.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def write(self, table: Table, rows: Sequence[Sequence[Any]]) -> None:
        self._copy(table.name, ", ".join(table.columns.keys()), rows)

    def fill(self, index: IndexRows, fresh: bool) -> None:
        categories = {row[0]: row[6] for row in index.docs}

        def vector(table: str, row: tuple[Any, ...]) -> str:
            weights = TABLE_WEIGHTS[table]
            texts = zip(TIER_COLUMNS["full"], row[1:], strict=True)
            return tsvector([(text, weights[name]) for name, text in texts if name in weights])

        for table in TABLES:
            self._copy(
                table,
                "id, category, vec",
                [(row[0], categories[row[0]], vector(table, row)) for row in index.fields],
            )
        if fresh:
            for statement in GIN_INDEXES:
                self.conn.exec_driver_sql(statement)
        self.conn.exec_driver_sql(f"ANALYZE {', '.join(self._all_tables())}")

    @classmethod
    def _all_tables(cls) -> list[str]:
        return [table.name for table in PLAIN_TABLES] + list(cls.tables)

    @classmethod
    def after_load(cls, engine: Engine) -> None:
        """VACUUM ANALYZE the index tables: a reload leaves the previous rows dead in the
        tables and their GIN indexes, and until autovacuum comes by, searches take about
        three times as long (10,000 entries). VACUUM cannot run inside the load's
        transaction; the load has committed, so a failure here only logs."""
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {', '.join(cls._all_tables())}")
        except DBAPIError:
            log.warning("could not vacuum the search index", exc_info=True)

    # ------------------------------------------------------------ matching

    def count(
        self, terms: Sequence[Term], category: str | None, ids: Sequence[int]
    ) -> tuple[int, int]:
        _, matching, params = _matching("full", terms, category)
        count, matched = self.matching(
            "SELECT count(*), count(*) FILTER (WHERE id = ANY(%s::integer[])) "  # noqa: S608
            f"FROM (SELECT id{matching} LIMIT %s) AS m",
            [list(ids), *params, MAX_TOTAL + 1],
        )[0]
        return int(count), int(matched)

    def nth_match(
        self, tier: str, terms: Sequence[Term], category: str | None, n: int
    ) -> int | None:
        _, matching, params = _matching(tier, terms, category)
        found = self.matching(
            f"SELECT id{matching} ORDER BY id LIMIT 1 OFFSET %s",  # noqa: S608
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
        classes, matching, params = _matching(tier, terms, category)
        if below is not None:
            matching += " AND id < %s"
            params.append(below)
        # The sum of each term's ts_rank_cd: of the whole query, ts_rank_cd would reward
        # words standing close together over the columns holding them (a title word far from
        # a body word would lose to the same word in the synonyms, nearer the body).
        score = (
            "(SELECT sum(ts_rank_cd(%s::real[], vec, term, %s)) FROM unnest(%s::tsquery[]) term)"
        )
        sql = f"SELECT id, {score} AS r{matching} ORDER BY r DESC, id LIMIT %s"  # noqa: S608
        term_queries = [term_query(term, classes) for term in terms]
        weights = WEIGHTS[TIER_TABLES[tier]]
        rows = self.matching(sql, [weights, NORMALIZATION, term_queries, *params, count])
        return [(int(i), float(r)) for i, r in rows]

    # ------------------------------------------------------------ did you mean

    def similar_names(self, wanted: str, grams: Sequence[str], limit: int) -> list[int]:
        # The nearest names by pg_trgm similarity, from the GiST index (no threshold); the
        # index orders by distance alone, so ties are broken afterwards.
        found = self.rows(
            "SELECT id FROM (SELECT id, (folded || ' ') <-> %s AS distance FROM search_name "
            "ORDER BY distance LIMIT %s) AS t ORDER BY distance, id",
            [wanted, limit],
        )
        return [int(name_id) for (name_id,) in found]
