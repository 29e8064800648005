"""Search over the glossary: the index (SQLite FTS5; all SQLite-only search SQL lives here),
query parsing, typo tolerance, ranking, highlighting, suggestions and "did you mean".

Everything lives in tables that build_index() creates inside the content-load transaction;
the web process only reads them. How a query is answered (Meilisearch/Algolia-style bucket
ranking, on FTS5):

1. The query is folded (case, diacritics, punctuation) into at most MAX_QUERY_WORDS words,
   and every word must match (AND). The last word is also a prefix ("resid" finds Residual
   Connection); so is an earlier word the index does not hold whole, or one with few
   completions ("grad desc"). A prefix with few completions is matched as the OR of them.
2. Exact names first: a title or synonym equal to the query, compared folded or with the
   spaces removed ("Layer-Norm", "layer norm" and "layernorm" are one name).
3. Typos, Algolia's "min" strategy: only when the words as typed find nothing, one edit is
   allowed in words of 4-7 letters, then two in words of 8 or more (insert, delete,
   substitute, transpose), each level first for the words the index does not know. The
   corrections are gathered with a SymSpell deletion table over every indexed word and
   checked with an optimal-string-alignment distance.
4. Inside a level the buckets are: names equal to the corrected query, then documents whose
   title holds every word, then title and synonyms, then those and the summary, then the
   whole text. Each bucket is an FTS5 table of its own (bm25 with column weights), so the
   long text is only ranked when the earlier buckets do not fill the page. Past
   RANK_WINDOW matches a bucket ranks a window of them, and counting stops at MAX_TOTAL.
"""

import difflib
import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import Connection
from sqlmodel import Session

from app.text import fold

MAX_QUERY_CHARS = 400  # folding more is wasted work: only MAX_QUERY_WORDS words are used
MAX_QUERY_WORDS = 12
MAX_WORD_CHARS = 40  # longer "words" are matched as typed, never corrected
PREFIX_MIN_CHARS = 2
SUGGEST_MIN_CHARS = 2
PREFIX_KEYS = range(2, 5)  # prefix lengths search_name_prefix holds
PREFIX_SCAN = 2_000  # names starting with a longer prefix looked at, at most
# SymSpell: deletions are generated from a word's first PREFIX_KEY letters only, which keeps
# the table small; candidates are then checked against the whole word.
PREFIX_KEY = 7
MAX_ALTERNATIVES = 8  # typo corrections kept per query word (fewest edits, most frequent)
MAX_COMBINATIONS = 64  # corrected queries looked up as exact names
MAX_TOTAL = 10_000  # matches are counted up to here (the API pages no further); then "10000+"
MAX_EXPANSIONS = 128  # a prefix with at most this many words is matched as their OR
PREFIX_INDEX_MAX = 3  # FTS5 keeps its own index of 2- and 3-letter prefixes (prefix='2 3')
# bm25 ranks every match of an expression; a word found in most of 100,000 bodies would cost
# ~80 ms. Each bucket ranks only its first RANK_WINDOW matches (in rowid order) beyond that.
RANK_WINDOW = {"title": 20_000, "names": 20_000, "head": 5_000, "full": 2_000}
# bm25 column weights: title and synonyms far above summary, summary above the long text.
COLUMN_WEIGHTS = {"title": 10.0, "synonyms": 8.0, "joined": 6.0, "summary": 3.0, "body": 1.0}
TIER_COLUMNS = {
    "title": ("title", "synonyms", "joined"),
    "names": ("title", "synonyms", "joined"),
    "head": ("title", "synonyms", "joined", "summary"),
    "full": ("title", "synonyms", "joined", "summary", "body"),
}
# The buckets in rank order: every word in the title; in the title and synonyms; in those and
# the summary; anywhere. "title" is the names table restricted to its title column.
TIER_TABLES = {
    "title": "search_names",
    "names": "search_names",
    "head": "search_head",
    "full": "search_full",
}
FTS_TABLES = ("search_names", "search_head", "search_full")
# Scores only order the hits; the buckets are far enough apart that bm25 never crosses them.
BUCKET_SCORE = {
    "exact_title": 1000.0,
    "exact_synonym": 950.0,
    "corrected": 850.0,
    "title": 700.0,
    "names": 550.0,
    "head": 400.0,
    "full": 250.0,
}
LEVEL_PENALTY = 50.0
SNIPPET_CHARS = 220
CLOSEST_WINDOW = 4_000  # "did you mean" ranks names sharing trigrams among this many
WORD_RUN = re.compile(r"[^\W_]+")

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


# ---------------------------------------------------------------- data shapes


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
    exact: bool = False
    title_html: str = ""
    snippet_html: str = ""


@dataclass
class Results:
    query: str
    total: int
    hits: list[Hit] = field(default_factory=list)
    corrected_query: str | None = None
    total_exact: bool = True  # False: more than MAX_TOTAL match, and total is MAX_TOTAL


@dataclass
class Suggestion:
    """One autocomplete entry: the name that matched (a title or a synonym) and its term."""

    name: str
    title: str
    slug: str
    exact: bool


@dataclass(frozen=True)
class Entry:
    """A term as "did you mean" lists it."""

    slug: str
    title: str
    summary: str
    category: str


@dataclass(frozen=True)
class Alternative:
    """A typo correction of a query word: a whole vocabulary word, or a corrected prefix."""

    token: str
    prefix: bool
    distance: int
    freq: int
    completions: tuple[str, ...] | None = None  # see Term.completions


@dataclass(frozen=True)
class Term:
    """One query word and what may stand for it at the current typo level."""

    word: str
    prefix: bool
    alternatives: tuple[Alternative, ...] = ()
    # A prefix's indexed words, when there are few: FTS5 merges every doclist of a prefix
    # query up front ("model"* costs 15 ms at 100,000 entries), an OR of words is lazy.
    completions: tuple[str, ...] | None = None
    known: bool = True  # the index holds the word (or, for a prefix, a word it starts)

    @property
    def dead(self) -> bool:
        """Matches nothing: unknown, with no correction."""
        return not self.known and not self.alternatives

    def matches(self, token: str) -> bool:
        if token == self.word or (self.prefix and token.startswith(self.word)):
            return True
        return any(
            token == alt.token or (alt.prefix and token.startswith(alt.token))
            for alt in self.alternatives
        )

    def fts(self) -> str:
        """This word as an FTS5 group. Words are [0-9a-z]+ after folding and are quoted, so
        nothing a user types (quotes, *, NEAR, AND/OR/NOT, :, ^, -) acts as an operator."""
        options = _fts_options(self.word, self.prefix, self.completions)
        for alt in self.alternatives:
            options += _fts_options(alt.token, alt.prefix, alt.completions)
        options = list(dict.fromkeys(options))
        return options[0] if len(options) == 1 else "(" + " OR ".join(options) + ")"


def _fts_options(token: str, prefix: bool, completions: tuple[str, ...] | None) -> list[str]:
    if not prefix:
        return [f'"{token}"']
    if completions is None:
        return [f'"{token}"*']
    return [f'"{word}"' for word in completions] or [f'"{token}"']  # none: matches nothing


# ---------------------------------------------------------------- folding and distances


def compact(value: str) -> str:
    """Folded with the spaces removed: 'Layer-Norm', 'layer norm', 'LayerNorm' -> 'layernorm'."""
    return fold(value).replace(" ", "")


def query_words(query: str) -> list[str]:
    return fold(query[:MAX_QUERY_CHARS]).split()[:MAX_QUERY_WORDS]


def parse_query(query: str) -> list[Term]:
    """The words of a query as level-0 terms: as typed, long-enough words also as prefixes
    (prepare() keeps that for the last word and for words the index does not hold)."""
    return [
        Term(word, prefix=PREFIX_MIN_CHARS <= len(word) <= MAX_WORD_CHARS)
        for word in query_words(query)
    ]


def _completions(conn: Connection, prefix: str) -> tuple[str, ...] | None:
    """Every indexed word starting with prefix, or None when FTS5's own prefix index serves
    it (2-3 letters) or there are more than MAX_EXPANSIONS."""
    if len(prefix) <= PREFIX_INDEX_MAX:
        return None
    # A joined name whose first word already starts with the prefix adds nothing: the
    # document holds that word too ("adam" need not list "adamoptimizer").
    rows = _rows(
        conn,
        "SELECT word FROM search_vocab WHERE word >= ? AND word < ? AND head < ? "
        "ORDER BY word LIMIT ?",
        [prefix, prefix + "~", len(prefix), MAX_EXPANSIONS + 1],
    )
    return None if len(rows) > MAX_EXPANSIONS else tuple(word for (word,) in rows)


def prepare(conn: Connection, terms: Sequence[Term]) -> list[Term]:
    """Level-0 terms against the index: prefixes get their completions, and every term learns
    whether the index knows it. A word before the last one that the index holds whole stays
    a prefix only when its completions are few ("grad desc" finds gradient descent, but
    "model selu" does not pay for FTS5 merging every word that starts with "model")."""
    words = list(dict.fromkeys(t.word for t in terms))
    sql = f"SELECT word FROM search_vocab WHERE word IN ({_marks(len(words))})"  # noqa: S608
    indexed = {word for (word,) in _rows(conn, sql, words)} if words else set()
    prepared = []
    for position, term in enumerate(terms):
        prefix = term.prefix
        completions = _completions(conn, term.word) if prefix else None
        if prefix and completions is None and position < len(terms) - 1:
            prefix = term.word not in indexed
        known = term.word in indexed or (prefix and completions != ())
        prepared.append(Term(term.word, prefix, term.alternatives, completions, known))
    return prepared


def match_expression(terms: Sequence[Term]) -> str | None:
    """An FTS5 MATCH expression requiring every term; None when there is nothing to match."""
    return " AND ".join(term.fts() for term in terms) if terms else None


def typo_budget(word: str) -> int:
    """Edits allowed in a query word: none up to 3 letters, one for 4-7, two for 8 or more."""
    if word.isdigit() or len(word) > MAX_WORD_CHARS or len(word) < 4:
        return 0
    return 1 if len(word) < 8 else 2


def delete_depth(word: str) -> int:
    """Deletions stored for a vocabulary word: enough for any query within its budget."""
    if len(word) < 3:
        return 0
    return 1 if len(word) < 6 else 2


def deletes(word: str, depth: int) -> set[str]:
    """The word's first PREFIX_KEY letters with up to `depth` letters deleted (SymSpell)."""
    key = word[:PREFIX_KEY]
    found = {key}
    frontier = {key}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        found |= frontier
    return found


def _osa_last_row(a: str, b: str, limit: int) -> list[int] | None:
    """The last row of the optimal-string-alignment table of a against b: entry j is the
    distance from a to b[:j]. None as soon as every entry must exceed limit."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                value = min(value, previous2[j - 2] + 1)
            current[j] = value
        if min(current) > limit:
            return None
        previous2, previous = previous, current
    return previous


def osa_distance(a: str, b: str, limit: int, *, prefix: bool = False) -> int:
    """Optimal string alignment distance (insert, delete, substitute, transpose adjacent).

    With prefix=True, the distance from a to the closest prefix of b. Anything above limit is
    reported as limit + 1, and the work stops as soon as that is certain.
    """
    if not prefix and abs(len(a) - len(b)) > limit:
        return limit + 1
    row = _osa_last_row(a, b, limit)
    distance = limit + 1 if row is None else (min(row) if prefix else row[-1])
    return min(distance, limit + 1)


def _best_prefix(word: str, candidate: str, limit: int) -> tuple[str, int]:
    """The prefix of candidate closest to word (the longest on ties) and its distance."""
    row = _osa_last_row(word, candidate, limit)
    if row is None:
        return candidate, limit + 1
    distance = min(row)
    length = max(j for j, d in enumerate(row) if d == distance)
    return candidate[:length], min(distance, limit + 1)


# ---------------------------------------------------------------- building the index


def _insert(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:  # executemany with no rows would run the statement once, unbound
        conn.exec_driver_sql(sql, list(rows))


def drop_index(conn: Connection) -> None:
    """Remove the index tables (part of the load transaction)."""
    for table in ("term_fts", *VIRTUAL_TABLES, *TABLES):  # term_fts: the first index's name
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")


def _names(document: Document) -> list[tuple[str, bool]]:
    return [(document.title, True), *((synonym, False) for synonym in document.synonyms)]


def build_index(conn: Connection, documents: list[Document]) -> None:
    """Create and fill every search table in the caller's transaction."""
    for statement in SCHEMA:
        conn.exec_driver_sql(statement)
    doc_rows: list[tuple[Any, ...]] = []
    name_rows: list[tuple[Any, ...]] = []
    tier_rows: list[tuple[int, str, str, str, str, str]] = []
    vocabulary: Counter[str] = Counter()  # word -> documents holding it
    correctable: set[str] = set()  # words typos are corrected to (not the joined names)
    heads: dict[str, int] = {}  # joined name -> shortest first word it was joined from
    for doc_id, document in enumerate(documents, start=1):
        doc_rows.append(
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
            name_rows.append(
                (len(name_rows) + 1, doc_id, name, int(is_title), folded, folded.replace(" ", ""))
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
        tier_rows.append(row)
        words = set(" ".join(row[1:]).split())
        vocabulary.update(words)
        correctable.update(words.difference(row[3].split()))
    _insert(conn, "INSERT INTO search_doc VALUES (?, ?, ?, ?, ?, ?, ?)", doc_rows)
    _insert(conn, "INSERT INTO search_name VALUES (?, ?, ?, ?, ?, ?)", name_rows)
    _insert(
        conn,
        "INSERT INTO search_name_trigram (rowid, folded) VALUES (?, ?)",
        [(row[0], row[4]) for row in name_rows],
    )
    _insert(
        conn,
        "INSERT INTO search_name_prefix VALUES (?, ?, ?, ?)",
        [
            (key, is_title, len(joined_name), name_id)
            for name_id, _, _, is_title, folded, joined_name in name_rows
            for key in {
                v[:n]
                for v in (folded, joined_name)
                for n in PREFIX_KEYS
                if len(v) >= n and not v[:n].endswith(" ")
            }
        ],
    )
    for tier in ("names", "head", "full"):
        table = TIER_TABLES[tier]
        width = len(TIER_COLUMNS[tier])
        columns = ", ".join(TIER_COLUMNS[tier])
        _insert(
            conn,
            f"INSERT INTO {table} (rowid, {columns}) VALUES (?{', ?' * width})",  # noqa: S608
            [row[: width + 1] for row in tier_rows],
        )
    ordered = sorted(vocabulary)
    _insert(
        conn,
        "INSERT INTO search_vocab VALUES (?, ?, ?, ?)",
        [
            (word_id, word, vocabulary[word], 0 if word in correctable else heads[word])
            for word_id, word in enumerate(ordered, start=1)
        ],
    )
    _insert(
        conn,
        "INSERT INTO search_vocab_delete VALUES (?, ?)",
        [
            (key, word_id)
            for word_id, word in enumerate(ordered, start=1)
            if word in correctable
            and not word.isdigit()
            and len(word) <= MAX_WORD_CHARS
            and delete_depth(word)
            for key in deletes(word, delete_depth(word))
        ],
    )


# ---------------------------------------------------------------- SQL helpers


def _rows(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Rows of one statement, run on the session's own DB-API connection (and transaction):
    a search runs a dozen small statements, and SQLAlchemy's per-statement work would cost
    as much as SQLite's."""
    cursor = conn.connection.driver_connection.execute(sql, tuple(params))  # type: ignore[union-attr]
    try:
        return cursor.fetchall()  # type: ignore[no-any-return]
    finally:
        cursor.close()


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


def _count(
    conn: Connection, expression: str, category: str | None, ids: Sequence[int] = ()
) -> tuple[int, int]:
    """How many documents the expression matches, up to MAX_TOTAL + 1 (counting 90,000
    matches of a two-letter prefix costs 12 ms), and how many of `ids` are among those."""
    join, where, extra = _category_join("search_full", category)
    among = f"id IN ({_marks(len(ids))})" if ids else "0"
    sql = (
        f"SELECT count(*), coalesce(sum({among}), 0) FROM (SELECT search_full.rowid AS id "  # noqa: S608
        f"FROM search_full{join} WHERE search_full MATCH ?{where} LIMIT ?)"
    )
    count, matched = _rows(conn, sql, [*ids, expression, *extra, MAX_TOTAL + 1])[0]
    return int(count), int(matched)


def _ranked(
    conn: Connection,
    tier: str,
    expression: str,
    category: str | None,
    count: int,
    total: int | None = None,
) -> list[tuple[int, float]]:
    """The `count` best documents of one bucket, as (id, bm25); lower bm25 is better.
    `total`, when known, bounds the bucket's matches (it is the whole-text count)."""
    table = TIER_TABLES[tier]
    if tier == "title":
        expression = f"{{title}} : ({expression})"
    join, where, extra = _category_join(table, category)
    base = f" FROM {table}{join} WHERE {table} MATCH ?{where}"
    params: list[Any] = [expression, *extra]
    # Past the window, rank the first RANK_WINDOW matches only (see RANK_WINDOW).
    bound = (
        []
        if total is not None and total <= RANK_WINDOW[tier]
        else _rows(
            conn,
            f"SELECT {table}.rowid{base} ORDER BY {table}.rowid LIMIT 1 OFFSET ?",  # noqa: S608
            [*params, RANK_WINDOW[tier]],
        )
    )
    if bound:
        base += f" AND {table}.rowid < ?"
        params.append(bound[0][0])
    weights = ", ".join(str(COLUMN_WEIGHTS[c]) for c in TIER_COLUMNS[tier])
    sql = f"SELECT {table}.rowid, bm25({table}, {weights}) AS r{base} ORDER BY r, 1 LIMIT ?"  # noqa: S608
    return [(int(i), float(r)) for i, r in _rows(conn, sql, [*params, count])]


def _exact_names(
    conn: Connection, names: Sequence[str], category: str | None
) -> list[tuple[int, str, bool]]:
    """(doc id, name, is title) for titles/synonyms equal to any of the folded names."""
    folded = list(dict.fromkeys(n for n in names if n))
    if not folded:
        return []
    compacted = list(dict.fromkeys(n.replace(" ", "") for n in folded))
    join, where, extra = _category_join("search_name", category)
    join = join.replace("search_name.rowid", "search_name.doc_id")
    sql = (
        f"SELECT search_name.doc_id, search_name.name, search_name.is_title "  # noqa: S608
        f"FROM search_name{join} WHERE (search_name.folded IN ({_marks(len(folded))}) "
        f"OR search_name.compact IN ({_marks(len(compacted))})){where} "
        f"ORDER BY search_name.is_title DESC, length(search_name.name), search_name.id"
    )
    rows = _rows(conn, sql, [*folded, *compacted, *extra])
    return [(int(doc_id), name, bool(is_title)) for doc_id, name, is_title in rows]


# ---------------------------------------------------------------- typo tolerance


def corrections(conn: Connection, word: str, *, prefix: bool) -> list[Alternative]:
    """Vocabulary words (or, for a prefix, corrected prefixes) within the word's budget,
    fewest edits first, then most frequent."""
    budget = typo_budget(word)
    if budget == 0:
        return []
    keys = sorted(deletes(word, budget))
    sql = (
        "SELECT DISTINCT v.word, v.freq FROM search_vocab_delete d "  # noqa: S608
        f"JOIN search_vocab v ON v.id = d.word_id WHERE d.key IN ({_marks(len(keys))})"
    )
    found: dict[str, Alternative] = {}
    unmatched = []
    known = False  # the word itself is in the vocabulary: no need to guess what it starts
    for candidate, freq in _rows(conn, sql, keys):
        if candidate == word:
            known = True
            continue
        distance = osa_distance(word, candidate, budget)
        if distance <= budget:
            found[candidate] = Alternative(candidate, False, distance, int(freq))
        else:
            unmatched.append((candidate, int(freq)))
    if prefix and not found and not known and len(word) >= 5:
        # Still typing: "atenti" -> the prefix "attenti" (of attention).
        for candidate, freq in unmatched:
            corrected, distance = _best_prefix(word, candidate, budget)
            if distance <= budget and corrected != word:
                best = found.get(corrected)
                if best is None or best.freq < freq:
                    found[corrected] = Alternative(corrected, True, distance, freq)
        for corrected, alt in list(found.items()):
            found[corrected] = Alternative(
                alt.token, True, alt.distance, alt.freq, _completions(conn, corrected)
            )
    ranked = sorted(found.values(), key=lambda a: (a.distance, -a.freq, a.token))
    return ranked[:MAX_ALTERNATIVES]


def stages(conn: Connection, terms: list[Term]) -> Iterator[tuple[int, list[Term]]]:
    """(typo level, terms) to try in order until one matches: as typed; then one edit in the
    words the index does not know; one edit in any word ("lose function"); two edits, again
    unknown words first. A stage that adds nothing, or holds a term that can match nothing,
    is skipped. Corrections are looked up only when a stage needs them."""
    options: dict[int, list[Alternative]] = {}
    tried: list[list[Term]] = []
    top = max(typo_budget(t.word) for t in terms)
    for level, everyone in [(0, False), *((lv, e) for lv in (1, 2) for e in (False, True))]:
        if level > top:
            break
        staged = []
        for i, term in enumerate(terms):
            if level and (everyone or not term.known) and i not in options:
                options[i] = corrections(conn, term.word, prefix=term.prefix)
            alts = options.get(i, []) if level and (everyone or not term.known) else []
            kept = tuple(a for a in alts if a.distance <= level)
            staged.append(Term(term.word, term.prefix, kept, term.completions, term.known))
        if staged in tried or any(t.dead for t in staged):
            continue
        tried.append(staged)
        yield level, staged


def _corrected_names(terms: Sequence[Term]) -> list[str]:
    """Whole-query spellings made of each word or its whole-word corrections."""
    choices = [[t.word, *(a.token for a in t.alternatives if not a.prefix)] for t in terms]
    names = []
    for combination in product(*choices):
        names.append(" ".join(combination))
        if len(names) >= MAX_COMBINATIONS:
            break
    return names


# ---------------------------------------------------------------- highlighting


class Highlighter:
    """Finds the words a query matched in display text, folded the way the index folds it.

    One regular expression does the work in C: a run of letters and digits matches when it
    starts with a prefix term or equals a whole-word term, ignoring case; runs holding
    non-ASCII letters ("naïve") are folded and checked in Python.
    """

    def __init__(self, terms: Sequence[Term]) -> None:
        self.terms = tuple(terms)
        prefixes = {t.word for t in terms if t.prefix}
        prefixes |= {a.token for t in terms for a in t.alternatives if a.prefix}
        words = {t.word for t in terms if not t.prefix}
        words |= {a.token for t in terms for a in t.alternatives if not a.prefix}
        options = []
        if prefixes:
            options.append(f"(?:{'|'.join(sorted(prefixes))})[^\\W_]*")
        if words:
            options.append(f"(?:{'|'.join(sorted(words))})(?![^\\W_])")
        hit = f"(?P<hit>{'|'.join(options)})|" if options else ""
        self.pattern = re.compile(
            f"(?<![^\\W_])(?:{hit}(?P<wide>[^\\W_]*[^\\W\\x00-\\x7f][^\\W_]*))",
            re.IGNORECASE,
        )
        self.known: dict[str, bool] = {}

    def matches(self, token: str) -> bool:
        """Whether a folded token is one of the query's words (or starts with a prefix)."""
        found = self.known.get(token)
        if found is None:
            found = self.known[token] = any(term.matches(token) for term in self.terms)
        return found

    def hits(self, text: str) -> Iterator[re.Match[str]]:
        for match in self.pattern.finditer(text):
            if match.group("wide") is None or any(
                self.matches(token) for token in fold(match.group()).split()
            ):
                yield match


def highlight(text: str, highlighter: Highlighter) -> Markup:
    """The text HTML-escaped, with every matching word in <mark>."""
    parts: list[Markup] = []
    last = 0
    for match in highlighter.hits(text):
        parts.append(escape(text[last : match.start()]))
        parts.append(Markup("<mark>%s</mark>") % match.group())
        last = match.end()
    parts.append(escape(text[last:]))
    return Markup("").join(parts)


def excerpt(text: str, highlighter: Highlighter, width: int = SNIPPET_CHARS) -> Markup:
    """A highlighted passage of about `width` characters around the first match."""
    first = next(highlighter.hits(text), None)
    start = 0
    if first is not None:
        start = max(0, first.start() - width // 3)
        space = text.rfind(" ", 0, start)
        start = 0 if space < 0 else space + 1
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    body = highlight(text[start:end].strip(), highlighter)
    return Markup("").join(
        [
            Markup("… ") if start > 0 else Markup(""),
            body,
            Markup(" …") if end < len(text) else Markup(""),
        ]
    )


# ---------------------------------------------------------------- searching


@dataclass
class _Doc:
    id: int
    slug: str
    title: str
    synonyms: list[str]
    summary: str
    body: str
    category: str


def _documents(conn: Connection, ids: Sequence[int]) -> dict[int, _Doc]:
    if not ids:
        return {}
    sql = (
        "SELECT id, slug, title, synonyms, summary, body, category FROM search_doc "  # noqa: S608
        f"WHERE id IN ({_marks(len(ids))})"
    )
    return {
        int(row[0]): _Doc(int(row[0]), row[1], row[2], json.loads(row[3]), *row[4:])
        for row in _rows(conn, sql, ids)
    }


def _coverage(text: str, terms: Sequence[Term]) -> int:
    tokens = fold(text).split()
    tokens.append("".join(tokens))
    return sum(1 for term in terms if any(term.matches(t) for t in tokens))


def _matched_name(doc: _Doc, terms: Sequence[Term]) -> tuple[str, str | None]:
    """("title", None) or ("synonyms", the synonym): the name holding the most words."""
    names: list[tuple[str, str | None]] = [("title", None)]
    names += [("synonyms", synonym) for synonym in doc.synonyms]
    return max(names, key=lambda n: _coverage(n[1] or doc.title, terms))  # first on ties


def _hit(
    doc: _Doc,
    terms: Sequence[Term],
    score: float,
    bucket: str,
    exact_name: tuple[str, bool] | None,
    highlighter: Highlighter,
) -> Hit:
    """A result: which field matched follows from the bucket that found it."""
    if exact_name is not None:
        name, is_title = exact_name
        matched_field, synonym = ("title", None) if is_title else ("synonyms", name)
    elif bucket == "title":
        matched_field, synonym = "title", None
    elif bucket in ("names", "corrected"):
        matched_field, synonym = _matched_name(doc, terms)
    else:
        matched_field, synonym = ("summary" if bucket == "head" else "body"), None
    snippet = (
        excerpt(doc.body, highlighter)
        if matched_field == "body"
        else highlight(doc.summary, highlighter)
    )
    return Hit(
        slug=doc.slug,
        title=doc.title,
        summary=doc.summary,
        category=doc.category,
        score=round(score, 4),
        matched_field=matched_field,
        matched_synonym=synonym,
        exact=exact_name is not None,
        title_html=str(highlight(doc.title, highlighter)),
        snippet_html=str(snippet),
    )


def _squash(bm25: float) -> float:
    """bm25 (negative, lower is better) to [0, 40): monotone, never crossing a bucket."""
    x = max(0.0, -bm25)
    return 40.0 * x / (1.0 + x)


def _corrected_query(terms: Sequence[Term], top: _Doc | None) -> str:
    words = []
    tokens = fold(" ".join([top.title, *top.synonyms, top.summary]) if top else "").split()
    for term in terms:
        if not term.alternatives or any(t == term.word for t in tokens):
            words.append(term.word)
            continue
        alt_term = Term("", False, term.alternatives)
        seen = next((t for t in tokens if alt_term.matches(t)), None)
        words.append(seen or term.alternatives[0].token)
    return " ".join(words)


def search(
    session: Session, query: str, *, limit: int = 20, offset: int = 0, category: str | None = None
) -> Results:
    """Ranked hits for a free-text query; an exact title or synonym always ranks first."""
    results = Results(query=query, total=0)
    parsed = parse_query(query)
    if not parsed:
        return results
    conn = session.connection()
    parsed = prepare(conn, parsed)
    needed = offset + limit
    wanted = " ".join(t.word for t in parsed)
    exact = _exact_names(conn, [wanted], category)
    if exact and any(t.dead for t in parsed):  # a name with the spaces taken out
        parsed = [Term(t.word, t.prefix, completions=t.completions) for t in parsed]
    for level, terms in stages(conn, parsed):
        if level and exact:
            break  # an exact name is never a typo
        expression = match_expression(terms)
        assert expression is not None
        named = exact or (_exact_names(conn, _corrected_names(terms), category) if level else [])
        ranked: list[tuple[int, float, str, tuple[str, bool] | None]] = []
        seen: set[int] = set()
        for doc_id, name, is_title in named:
            if doc_id not in seen:
                bucket = "corrected" if level else ("exact_title" if is_title else "exact_synonym")
                ranked.append(
                    (doc_id, BUCKET_SCORE[bucket], bucket, None if level else (name, is_title))
                )
                seen.add(doc_id)
        count, among = _count(conn, expression, category, sorted(seen))
        if not count and not seen:
            continue
        results.total_exact = count <= MAX_TOTAL
        total = count + len(seen) - among if results.total_exact else MAX_TOTAL
        known_total = total if results.total_exact else None
        for tier in TIER_TABLES:
            if len(ranked) >= needed:
                break
            fetched = _ranked(conn, tier, expression, category, needed + len(seen), known_total)
            for doc_id, bm25 in fetched:
                if doc_id not in seen:
                    seen.add(doc_id)
                    ranked.append((doc_id, BUCKET_SCORE[tier] + _squash(bm25), tier, None))
        page = ranked[offset:needed]
        docs = _documents(conn, [doc_id for doc_id, _, _, _ in page])
        results.total = total
        highlighter = Highlighter(terms)
        results.hits = [
            _hit(
                docs[doc_id], terms, score - LEVEL_PENALTY * level, bucket, exact_name, highlighter
            )
            for doc_id, score, bucket, exact_name in page
        ]
        if level:
            top = docs.get(page[0][0]) if page else None
            results.corrected_query = _corrected_query(terms, top)
        return results
    return results


# ---------------------------------------------------------------- suggestions


def _name_starts(
    conn: Connection, wanted: str, is_title: bool, limit: int
) -> list[tuple[int, str]]:
    """(doc id, name) of titles or synonyms starting with the query (folded, or with the
    spaces taken out), shortest first."""
    if len(wanted) in PREFIX_KEYS:
        rows = _rows(
            conn,
            "SELECT n.doc_id, n.name FROM search_name_prefix p "
            "JOIN search_name n ON n.id = p.name_id WHERE p.key = ? AND p.is_title = ? "
            "ORDER BY p.length, p.name_id LIMIT ?",
            [wanted, int(is_title), limit * 4],
        )
    else:
        rows = []
        for column, value in (("folded", wanted), ("compact", wanted.replace(" ", ""))):
            sql = (
                f"SELECT doc_id, name, length(compact), id FROM search_name "  # noqa: S608
                f"WHERE {column} >= ? AND {column} < ? AND is_title = ? LIMIT ?"
            )
            rows += _rows(conn, sql, [value, value + "~", int(is_title), PREFIX_SCAN])
        rows = [(doc_id, name) for doc_id, name, *_ in sorted(rows, key=lambda r: (r[2], r[3]))]
    found: dict[int, str] = {}
    for doc_id, name in rows:
        found.setdefault(int(doc_id), name)
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
    parsed = prepare(conn, parsed)
    picked: dict[int, tuple[str, bool]] = {}
    for doc_id, name, _ in _exact_names(conn, [wanted], None):
        picked.setdefault(doc_id, (name, True))

    def add_ranked(tier: str, terms: list[Term]) -> bool:
        expression = match_expression(terms)
        assert expression is not None
        ranked = _ranked(conn, tier, expression, None, limit + len(picked))
        docs = _documents(conn, [doc_id for doc_id, _ in ranked if doc_id not in picked])
        for doc_id, _ in ranked:
            if doc_id in docs:
                field_name, synonym = _matched_name(docs[doc_id], terms)
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
                for doc_id, name, _ in _exact_names(conn, _corrected_names(terms), None):
                    picked.setdefault(doc_id, (name, False))
            if add_ranked("names", terms) or picked:
                break
    ids = list(picked)[:limit]
    docs = _documents(conn, ids)
    return [
        Suggestion(name=picked[i][0], title=docs[i].title, slug=docs[i].slug, exact=picked[i][1])
        for i in ids
    ]


# ---------------------------------------------------------------- did you mean


def closest(session: Session, text: str, count: int = 5) -> list[Entry]:
    """The terms whose title or synonym is closest to text (no-hit and 404 pages): names
    sharing trigrams with it, best first by difflib's ratio (0.5 at least)."""
    wanted = fold(text[:MAX_QUERY_CHARS])
    if len(wanted) < 3:
        return []
    grams = list(dict.fromkeys(wanted[i : i + 3] for i in range(len(wanted) - 2)))[:24]
    expression = " OR ".join(f'"{gram}"' for gram in grams)
    conn = session.connection()
    window = _rows(
        conn,
        "SELECT rowid FROM search_name_trigram WHERE search_name_trigram MATCH ? "
        "ORDER BY rowid LIMIT 1 OFFSET ?",
        [expression, CLOSEST_WINDOW],
    )
    bound = " AND rowid < ?" if window else ""
    rows = _rows(
        conn,
        "SELECT n.folded, d.slug, d.title, d.summary, d.category FROM "  # noqa: S608
        "(SELECT rowid AS id FROM search_name_trigram "
        f"WHERE search_name_trigram MATCH ?{bound} ORDER BY rank LIMIT 100) AS t "
        "JOIN search_name n ON n.id = t.id JOIN search_doc d ON d.id = n.doc_id",
        [expression, *(window[0] if window else [])],
    )
    scored = sorted(
        ((difflib.SequenceMatcher(None, wanted, row[0]).ratio(), Entry(*row[1:])) for row in rows),
        key=lambda pair: -pair[0],
    )
    entries: dict[str, Entry] = {}
    for ratio, entry in scored:
        if ratio >= 0.5:
            entries.setdefault(entry.slug, entry)
    return list(entries.values())[:count]
