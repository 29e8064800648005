"""The PostgreSQL store: each bucket is a table of weighted tsvectors with a GIN index,
ranked with bm25 computed from ts_rank_cd; pg_trgm for "did you mean"; plain tables for
names, prefixes and the vocabulary. All of search's PostgreSQL-only SQL lives here.

Vectors are written from the folded words the shared code computes, never re-parsed by a
text search parser, so both backends hold the same tokens. Queries are tsquery literals of
[0-9a-z]+ lexemes (nothing a user types reaches the tsquery syntax), passed as parameters.

Ranking is FTS5's bm25 with column weights, computed the way FTS5 computes it: a sum over
the query's phrases (each option of each term: the word, a prefix's completions, typo
corrections) of idf * f * (k1 + 1) / (f + k1 * norm). ts_rank_cd (no normalization) of a
one-phrase query is exactly f, the sum of the phrase's occurrences' column weights; norm,
the row's length against the average (1 - b + b * length / average), is stored at build
time; idf comes from document frequencies per bucket kept in the vocabulary. Where this
differs from FTS5: a prefix's documents are the sum over the words it starts (FTS5 counts
the union); the full text gives synonyms and joined names one weight class (four classes
for five columns); and past SCORED_OPTIONS phrases, the options of a term are scored as one.
On the real corpus the two backends rank the same first hit for all of ~1,900 queries.

Reloads delete and re-insert rows in the load's transaction, so readers keep the old index
(MVCC) and are never blocked; the web engine reads in REPEATABLE READ, one snapshot per
request. after_load() vacuums the dead rows away once the load has committed. Only a change
of SCHEMA_VERSION (or the first load) drops and creates the tables, and readers then wait
for that load to commit.
"""

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from app.search.model import (
    CLOSEST_CANDIDATES,
    COLUMN_WEIGHTS,
    MAX_TOTAL,
    RANK_WINDOW,
    TIER_COLUMNS,
    TIERS,
    IndexRows,
    Term,
)
from app.search.store import DocRow, NameRow, Store

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"  # bump with any change to CREATE_TABLES or INDEXES
BM25_K1 = 1.2
BM25_B = 0.75
MAX_LEXEME_BYTES = 2047  # PostgreSQL's limit; longer words cannot be typed in a query anyway
MAX_POSITION = 16383  # positions past this one are stored as it
MAX_POSITIONS = 256  # positions kept per word and row
LEXEME = re.compile(r"[0-9a-z]+")
# bm25 scores each option of a term (a prefix's completions, a word's corrections) as a
# phrase of its own, at one ts_rank_cd per option and row; past this many, per term.
SCORED_OPTIONS = 32

# Weight classes per bucket: four for five columns, so the full text gives synonyms and
# joined names one class. ts_rank_cd's weights are COLUMN_WEIGHTS / 10 (it takes at most 1).
TIER_WEIGHTS = {
    "title": {"title": "A"},
    "names": {"title": "A", "synonyms": "B", "joined": "C"},
    "head": {"title": "A", "synonyms": "B", "joined": "C", "summary": "D"},
    "full": {"title": "A", "synonyms": "B", "joined": "B", "summary": "C", "body": "D"},
}
WEIGHT_SCALE = 10.0
# (table, tsvector column) per bucket: "title" holds the title alone but is normalized by
# the whole names row's length (its row's norm), as bm25 with a column filter is.
TIER_SOURCES = {
    "title": ("search_names", "title"),
    "names": ("search_names", "vec"),
    "head": ("search_head", "vec"),
    "full": ("search_full", "vec"),
}
TABLES = (
    "search_meta",
    "search_doc",
    "search_name",
    "search_name_prefix",
    "search_names",
    "search_head",
    "search_full",
    "search_vocab",
    "search_vocab_delete",
)
# Text the index compares by byte (ranges, prefixes) is COLLATE "C", as in SQLite.
CREATE_TABLES = (
    "CREATE TABLE search_meta (key text PRIMARY KEY, value text NOT NULL)",
    "CREATE TABLE search_doc (id integer NOT NULL, slug text NOT NULL, title text NOT NULL, "
    "synonyms text NOT NULL, summary text NOT NULL, body text NOT NULL, category text NOT NULL)",
    # Every title and synonym, folded two ways, for exact names, suggestions, did-you-mean.
    "CREATE TABLE search_name (id integer NOT NULL, doc_id integer NOT NULL, "
    'name text NOT NULL, is_title integer NOT NULL, folded text COLLATE "C" NOT NULL, '
    'compact text COLLATE "C" NOT NULL)',
    # Names by their first 2-4 letters, shortest first, from the index alone.
    'CREATE TABLE search_name_prefix (key text COLLATE "C" NOT NULL, '
    "is_title integer NOT NULL, length integer NOT NULL, name_id integer NOT NULL)",
    # The buckets: id = search_doc.id; norm is bm25's length normalization of the row.
    "CREATE TABLE search_names (id integer NOT NULL, category text NOT NULL, "
    "title tsvector NOT NULL, vec tsvector NOT NULL, norm real NOT NULL)",
    "CREATE TABLE search_head (id integer NOT NULL, category text NOT NULL, "
    "vec tsvector NOT NULL, norm real NOT NULL)",
    # The long vectors live out of line (toast), so counting matches reads narrow rows.
    "CREATE TABLE search_full (id integer NOT NULL, category text NOT NULL, "
    "vec tsvector NOT NULL, norm real NOT NULL) WITH (toast_tuple_target = 128)",
    # Every indexed word with its document frequency in each bucket, and the SymSpell
    # deletions of the words corrections may lead to (see the SQLite store).
    'CREATE TABLE search_vocab (id integer NOT NULL, word text COLLATE "C" NOT NULL, '
    "freq integer NOT NULL, head integer NOT NULL, freq_title integer NOT NULL, "
    "freq_names integer NOT NULL, freq_head integer NOT NULL)",
    'CREATE TABLE search_vocab_delete (key text COLLATE "C" NOT NULL, word_id integer NOT NULL)',
)
# Built after the first rows (faster than maintaining them row by row).
INDEXES = (
    "CREATE UNIQUE INDEX search_doc_id ON search_doc (id)",
    "CREATE UNIQUE INDEX search_doc_slug ON search_doc (slug)",
    "CREATE UNIQUE INDEX search_name_id ON search_name (id)",
    "CREATE INDEX search_name_folded ON search_name (folded)",
    "CREATE INDEX search_name_compact ON search_name (compact)",
    # On an expression that equality lookups of `folded` cannot use (pg_trgm answers "=" too,
    # lossily); a trailing space changes none of pg_trgm's trigrams.
    "CREATE INDEX search_name_trigram ON search_name USING gist ((folded || ' ') gist_trgm_ops)",
    "CREATE UNIQUE INDEX search_name_prefix_key "
    "ON search_name_prefix (key, is_title, length, name_id)",
    "CREATE UNIQUE INDEX search_names_id ON search_names (id)",
    "CREATE INDEX search_names_title ON search_names USING gin (title)",
    "CREATE INDEX search_names_vec ON search_names USING gin (vec)",
    "CREATE UNIQUE INDEX search_head_id ON search_head (id)",
    "CREATE INDEX search_head_vec ON search_head USING gin (vec)",
    "CREATE UNIQUE INDEX search_full_id ON search_full (id)",
    "CREATE INDEX search_full_vec ON search_full USING gin (vec)",
    "CREATE UNIQUE INDEX search_vocab_id ON search_vocab (id)",
    "CREATE UNIQUE INDEX search_vocab_word ON search_vocab (word)",
    "CREATE UNIQUE INDEX search_vocab_delete_key ON search_vocab_delete (key, word_id)",
)


def _weights(tier: str) -> list[float]:
    """ts_rank_cd's weights, {D, C, B, A}; a class shared by two columns takes the higher
    weight, an unused one the lowest (zero would divide by zero)."""
    by_class = dict.fromkeys("ABCD", 0.1)
    for column, weight_class in TIER_WEIGHTS[tier].items():
        by_class[weight_class] = max(by_class[weight_class], COLUMN_WEIGHTS[column] / WEIGHT_SCALE)
    return [by_class[c] for c in "DCBA"]


WEIGHTS = {tier: _weights(tier) for tier in TIERS}


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


def _lexeme(token: str, prefix: bool) -> str:
    """A quoted tsquery lexeme. Tokens are folded words, [0-9a-z]+: the check keeps it so."""
    assert LEXEME.fullmatch(token), token
    return f"'{token}':*" if prefix else f"'{token}'"


def term_query(term: Term) -> str:
    """One term as a tsquery: the OR of its options."""
    options = [_lexeme(token, prefix) for token, prefix in term.options()]
    return options[0] if len(options) == 1 else "(" + " | ".join(options) + ")"


def tsquery(terms: Sequence[Term]) -> str:
    """A tsquery literal requiring every term."""
    return " & ".join(term_query(term) for term in terms)


def _idf(documents: int, holding: int) -> float:
    """bm25's idf as FTS5 computes it (never below 1e-6)."""
    idf = math.log((documents - holding + 0.5) / (holding + 0.5))
    return idf if idf > 0 else 1e-6


class PostgresStore(Store):
    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        # Per search: (token, is a prefix) options -> documents per bucket holding them.
        self._counts: dict[tuple[tuple[str, bool], ...], tuple[int, list[list[int]]]] = {}

    def _execute(self, sql: str) -> None:
        self.conn.exec_driver_sql(sql)

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

    # ------------------------------------------------------------ the index's life

    def drop(self) -> None:
        self._execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)}")

    def _schema(self) -> str | None:
        if self.rows("SELECT to_regclass('search_meta') IS NULL")[0][0]:
            return None
        found = self.rows("SELECT value FROM search_meta WHERE key = 'schema'")
        return str(found[0][0]) if found else None

    def _copy(self, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        driver = self.conn.connection.driver_connection
        with driver.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def build(self, index: IndexRows) -> None:
        fresh = self._schema() != SCHEMA_VERSION
        if fresh:  # first load, or a new layout: readers wait for this load to commit
            self._execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            self.drop()
            for statement in CREATE_TABLES:
                self._execute(statement)
        else:  # row by row, so readers keep the old index until the commit
            for table in TABLES:
                self._execute(f"DELETE FROM {table}")  # noqa: S608
        self._copy(
            "search_meta",
            "key, value",
            [("schema", SCHEMA_VERSION), ("documents", str(len(index.docs)))],
        )
        self._copy("search_doc", "id, slug, title, synonyms, summary, body, category", index.docs)
        self._copy("search_name", "id, doc_id, name, is_title, folded, compact", index.names)
        self._copy("search_name_prefix", "key, is_title, length, name_id", index.prefixes)
        self._copy("search_vocab_delete", "key, word_id", index.deletes)
        texts = {
            row[0]: dict(zip(TIER_COLUMNS["full"], row[1:], strict=True)) for row in index.fields
        }
        tier_freq: dict[str, Counter[str]] = {
            tier: Counter() for tier in ("title", "names", "head")
        }
        norms: dict[str, dict[int, float]] = {}
        for tier in ("names", "head", "full"):
            lengths = {
                doc_id: sum(len(columns[name].split()) for name in TIER_COLUMNS[tier])
                for doc_id, columns in texts.items()
            }
            average = max(1e-9, sum(lengths.values()) / max(1, len(lengths)))
            norms[tier] = {i: 1 - BM25_B + BM25_B * n / average for i, n in lengths.items()}
        for columns in texts.values():
            for tier, counter in tier_freq.items():
                names = ("title",) if tier == "title" else TIER_COLUMNS[tier]
                counter.update(set(" ".join(columns[name] for name in names).split()))
        self._copy(
            "search_vocab",
            "id, word, freq, head, freq_title, freq_names, freq_head",
            [
                (
                    *row,
                    tier_freq["title"][row[1]],
                    tier_freq["names"][row[1]],
                    tier_freq["head"][row[1]],
                )
                for row in index.vocab
            ],
        )

        def vector(tier: str, doc_id: int) -> str:
            weights = TIER_WEIGHTS[tier]
            return tsvector(
                [(text, weights[name]) for name, text in texts[doc_id].items() if name in weights]
            )

        self._copy(
            "search_names",
            "id, category, title, vec, norm",
            [
                (i, row[6], vector("title", i), vector("names", i), norms["names"][i])
                for i, row in zip(texts, index.docs, strict=True)
            ],
        )
        for tier in ("head", "full"):
            self._copy(
                f"search_{tier}",
                "id, category, vec, norm",
                [
                    (i, row[6], vector(tier, i), norms[tier][i])
                    for i, row in zip(texts, index.docs, strict=True)
                ],
            )
        if fresh:
            for statement in INDEXES:
                self._execute(statement)
        self._execute(f"ANALYZE {', '.join(TABLES)}")

    @classmethod
    def after_load(cls, engine: Engine) -> None:
        """VACUUM ANALYZE the index tables: a reload leaves the previous rows dead in the
        tables and their GIN indexes, and until autovacuum comes by, searches take about
        three times as long (10,000 entries). VACUUM cannot run inside the load's
        transaction; the load has committed, so a failure here only logs."""
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {', '.join(TABLES)}")
        except DBAPIError:
            log.warning("could not vacuum the search index", exc_info=True)

    # ------------------------------------------------------------ vocabulary

    def indexed(self, words: Sequence[str]) -> set[str]:
        if not words:
            return set()
        rows = self.rows(
            "SELECT word FROM search_vocab WHERE word = ANY(%s::text[])", [list(words)]
        )
        return {word for (word,) in rows}

    def words_starting(self, prefix: str, limit: int) -> list[str]:
        rows = self.rows(
            "SELECT word FROM search_vocab WHERE word >= %s AND word < %s AND head < %s "
            "ORDER BY word LIMIT %s",
            [prefix, prefix + "~", len(prefix), limit],
        )
        return [word for (word,) in rows]

    def deletion_candidates(self, keys: Sequence[str]) -> list[tuple[str, int]]:
        rows = self.rows(
            "SELECT DISTINCT v.word, v.freq FROM search_vocab_delete d "
            "JOIN search_vocab v ON v.id = d.word_id WHERE d.key = ANY(%s::text[]) "
            "ORDER BY v.word",
            [list(keys)],
        )
        return [(word, int(freq)) for word, freq in rows]

    # ------------------------------------------------------------ names and documents

    def documents(self, ids: Sequence[int]) -> list[DocRow]:
        return self.rows(
            "SELECT id, slug, title, synonyms, summary, body, category FROM search_doc "
            "WHERE id = ANY(%s::integer[])",
            [list(ids)],
        )

    def exact_names(
        self, folded: Sequence[str], compacted: Sequence[str], category: str | None
    ) -> list[tuple[int, str, int]]:
        join, where, extra = "", "", []
        if category is not None:
            join, where = " JOIN search_doc d ON d.id = n.doc_id", " AND d.category = %s"
            extra = [category]
        return self.rows(
            f"SELECT n.doc_id, n.name, n.is_title FROM search_name n{join} "  # noqa: S608
            f"WHERE (n.folded = ANY(%s::text[]) OR n.compact = ANY(%s::text[])){where} "
            "ORDER BY n.is_title DESC, length(n.name), n.id",
            [list(folded), list(compacted), *extra],
        )

    def names_by_key(self, key: str, is_title: bool, limit: int) -> list[tuple[int, str]]:
        return self.rows(
            "SELECT n.doc_id, n.name FROM search_name_prefix p "
            "JOIN search_name n ON n.id = p.name_id WHERE p.key = %s AND p.is_title = %s "
            "ORDER BY p.length, p.name_id LIMIT %s",
            [key, int(is_title), limit],
        )

    def names_from(
        self, column: str, value: str, is_title: bool, limit: int
    ) -> list[tuple[int, str, int, int]]:
        assert column in ("folded", "compact")
        return self.rows(
            f"SELECT doc_id, name, length(compact), id FROM search_name "  # noqa: S608
            f"WHERE {column} >= %s AND {column} < %s AND is_title = %s LIMIT %s",
            [value, value + "~", int(is_title), limit],
        )

    # ------------------------------------------------------------ matching

    def count(
        self, terms: Sequence[Term], category: str | None, ids: Sequence[int]
    ) -> tuple[int, int]:
        where, extra = (" AND category = %s", [category]) if category is not None else ("", [])
        count, matched = self.matching(
            "SELECT count(*), count(*) FILTER (WHERE id = ANY(%s::integer[])) FROM "  # noqa: S608
            f"(SELECT id FROM search_full WHERE vec @@ %s::tsquery{where} LIMIT %s) AS m",
            [list(ids), tsquery(terms), *extra, MAX_TOTAL + 1],
        )[0]
        return int(count), int(matched)

    def _holding(self, options: Sequence[tuple[str, bool]]) -> tuple[int, list[list[int]]]:
        """The number of documents, and for each option how many documents of each bucket
        (in TIERS order) hold it; for a prefix, the sum over the words it starts."""
        key = tuple(options)
        if key not in self._counts:
            rows = self.rows(
                "SELECT (SELECT value FROM search_meta WHERE key = 'documents'), "
                "f.title, f.names, f.head, f.full FROM unnest(%s::text[], %s::text[]) "
                "WITH ORDINALITY AS o(low, high, n) CROSS JOIN LATERAL (SELECT "
                "coalesce(sum(freq_title), 0) AS title, coalesce(sum(freq_names), 0) AS names, "
                "coalesce(sum(freq_head), 0) AS head, coalesce(sum(freq), 0) AS full "
                "FROM search_vocab WHERE word >= o.low AND word <= o.high) AS f ORDER BY o.n",
                [
                    [token for token, _ in options],
                    [token + "~" if prefix else token for token, prefix in options],
                ],
            )
            documents = int(rows[0][0]) if rows and rows[0][0] is not None else 0
            self._counts[key] = (documents, [[int(v) for v in row[1:]] for row in rows])
        return self._counts[key]

    def _units(self, tier: str, terms: Sequence[Term]) -> list[tuple[str, float]]:
        """What bm25 sums over, as (tsquery, idf): each option of each term (FTS5's phrases)
        when there are at most SCORED_OPTIONS, otherwise each term, its options' documents
        summed. A lone unit's idf is left at 1: it scales every score alike."""
        options = [term.options() for term in terms]
        flat = [option for found in options for option in found]
        if len(flat) == 1:
            return [(tsquery(terms), 1.0)]
        documents, holding = self._holding(flat)
        column = TIERS.index(tier)
        if len(flat) <= SCORED_OPTIONS:
            return [
                (_lexeme(token, prefix), _idf(documents, min(documents, counts[column])))
                for (token, prefix), counts in zip(flat, holding, strict=True)
            ]
        units = []
        position = 0
        for term, found in zip(terms, options, strict=True):
            held = sum(counts[column] for counts in holding[position : position + len(found)])
            position += len(found)
            units.append((term_query(term), _idf(documents, min(documents, held))))
        return units

    def ranked(
        self,
        tier: str,
        terms: Sequence[Term],
        category: str | None,
        count: int,
        total: int | None = None,
    ) -> list[tuple[int, float]]:
        table, column = TIER_SOURCES[tier]
        base = f" FROM {table} WHERE {column} @@ %s::tsquery"
        params: list[Any] = [tsquery(terms)]
        if category is not None:
            base += " AND category = %s"
            params.append(category)
        bound = (
            []
            if total is not None and total <= RANK_WINDOW[tier]
            else self.matching(
                f"SELECT id{base} ORDER BY id LIMIT 1 OFFSET %s",  # noqa: S608
                [*params, RANK_WINDOW[tier]],
            )
        )
        if bound:
            base += " AND id < %s"
            params.append(bound[0][0])
        # bm25: the sum of idf * f * (k1 + 1) / (f + k1 * norm), f a unit's weighted
        # frequency in the row. OFFSET 0 keeps each ts_rank_cd to one call per row.
        units = self._units(tier, terms)
        frequencies = ", ".join(
            f"%s * ts_rank_cd(%s::real[], {column}, %s::tsquery, 0) AS f{i}"
            for i in range(len(units))
        )
        score = " + ".join(f"%s * f{i} / (f{i} + %s * norm)" for i in range(len(units)))
        sql = (
            f"SELECT id, {score} AS r FROM "  # noqa: S608
            f"(SELECT id, norm, {frequencies}{base} OFFSET 0) AS m ORDER BY r DESC, id LIMIT %s"
        )
        score_params = [v for _, idf in units for v in (idf * (BM25_K1 + 1), BM25_K1)]
        frequency_params = [v for query, _ in units for v in (WEIGHT_SCALE, WEIGHTS[tier], query)]
        rows = self.matching(sql, [*score_params, *frequency_params, *params, count])
        return [(int(i), float(r)) for i, r in rows]

    def closest_names(self, wanted: str, grams: Sequence[str]) -> list[NameRow]:
        # The nearest names by pg_trgm similarity, from the GiST index (no threshold); the
        # index orders by distance alone, so ties are broken afterwards.
        return self.rows(
            "SELECT n.folded, d.slug, d.title, d.summary, d.category FROM "
            "(SELECT id, (folded || ' ') <-> %s AS distance FROM search_name "
            "ORDER BY distance LIMIT %s) AS t "
            "JOIN search_name n ON n.id = t.id JOIN search_doc d ON d.id = n.doc_id "
            "ORDER BY t.distance, t.id",
            [wanted, CLOSEST_CANDIDATES],
        )
