"""Search over the glossary: the index (SQLite FTS5; all SQLite-only search SQL lives here),
query parsing, typo tolerance, ranking, highlighting, suggestions and "did you mean".

How a query is answered (Meilisearch/Algolia-style bucket ranking, on FTS5):

1. The query is folded (case, diacritics, punctuation) into at most MAX_QUERY_WORDS words.
   Every word must match (AND); a word of PREFIX_MIN_CHARS or more also matches as a prefix.
2. Exact names first: a title or synonym equal to the query, compared folded or with the
   spaces removed ("Layer-Norm", "layer norm" and "layernorm" are one name).
3. Typo levels, Algolia's "min" strategy: level 0 uses the words as typed; only when it finds
   nothing does level 1 allow one edit per word (words of 4-7 letters), and level 2 two edits
   (8 letters or more). Corrections come from a vocabulary of every indexed word, gathered
   with a SymSpell deletion table and checked with an optimal-string-alignment distance.
4. Inside a level the buckets are: names equal to the corrected query, then documents whose
   title holds every word, then title and synonyms, then those and the summary, then the
   whole text. Each bucket is an FTS5 table of its own (bm25 with column weights), so the
   long text is only ranked when the earlier buckets do not fill the page.
"""

import difflib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
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
# SymSpell: deletions are generated from a word's first PREFIX_KEY letters only, which keeps
# the table small; candidates are then checked against the whole word.
PREFIX_KEY = 7
MAX_ALTERNATIVES = 8  # typo corrections kept per query word (fewest edits, most frequent)
MAX_COMBINATIONS = 64  # corrected queries looked up as exact names
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
TIER_TABLES = {"title": "search_names", "names": "search_names", "head": "search_head",
               "full": "search_full"}
FTS_TABLES = ("search_names", "search_head", "search_full")
# Scores only order the hits; the buckets are far enough apart that bm25 never crosses them.
BUCKET_SCORE = {"exact_title": 1000.0, "exact_synonym": 950.0, "corrected": 850.0,
                "title": 700.0, "names": 550.0, "head": 400.0, "full": 250.0}
LEVEL_PENALTY = 50.0
SNIPPET_CHARS = 220
WORD_RUN = re.compile(r"[^\W_]+")

TABLES = ("search_doc", "search_name", "search_vocab", "search_vocab_delete")
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
    # The three buckets hold folded text only (contentless); rowid = search_doc.id.
    "CREATE VIRTUAL TABLE search_names USING fts5(title, synonyms, joined, "
    "content='', prefix='2 3', tokenize='ascii')",
    "CREATE VIRTUAL TABLE search_head USING fts5(title, synonyms, joined, summary, "
    "content='', prefix='2 3', tokenize='ascii')",
    "CREATE VIRTUAL TABLE search_full USING fts5(title, synonyms, joined, summary, body, "
    "content='', prefix='2 3', tokenize='ascii')",
    "CREATE VIRTUAL TABLE search_name_trigram USING fts5(folded, content='', tokenize='trigram')",
    # Typo tolerance: distinct folded words and their SymSpell deletions.
    "CREATE TABLE search_vocab (id INTEGER PRIMARY KEY, word TEXT NOT NULL UNIQUE, "
    "freq INTEGER NOT NULL)",
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


@dataclass(frozen=True)
class Term:
    """One query word and what may stand for it at the current typo level."""

    word: str
    prefix: bool
    alternatives: tuple[Alternative, ...] = ()

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
        options = [f'"{self.word}"' + ("*" if self.prefix else "")]
        options += [f'"{a.token}"' + ("*" if a.prefix else "") for a in self.alternatives]
        return options[0] if len(options) == 1 else "(" + " OR ".join(options) + ")"


# ---------------------------------------------------------------- folding and distances

def compact(value: str) -> str:
    """Folded with the spaces removed: 'Layer-Norm', 'layer norm', 'LayerNorm' -> 'layernorm'."""
    return fold(value).replace(" ", "")


def query_words(query: str) -> list[str]:
    return fold(query[:MAX_QUERY_CHARS]).split()[:MAX_QUERY_WORDS]


def parse_query(query: str) -> list[Term]:
    """The words of a query as level-0 terms: as typed, long-enough words also as prefixes."""
    return [
        Term(word, prefix=PREFIX_MIN_CHARS <= len(word) <= MAX_WORD_CHARS)
        for word in query_words(query)
    ]


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
    vocabulary: Counter[str] = Counter()
    for doc_id, document in enumerate(documents, start=1):
        doc_rows.append((doc_id, document.slug, document.title, json.dumps(document.synonyms),
                         document.summary, document.body, document.category))
        joined = []
        for name, is_title in _names(document):
            folded = fold(name)
            name_rows.append((len(name_rows) + 1, doc_id, name, int(is_title), folded,
                              folded.replace(" ", "")))
            if " " in folded:
                joined.append(folded.replace(" ", ""))
        # Synonyms repeat words ("Residual network", "Deep residual network"); each word
        # counts once, so a term with many similar synonyms does not outrank its title.
        synonyms = " ".join(dict.fromkeys(" ".join(fold(s) for s in document.synonyms).split()))
        row = (doc_id, fold(document.title), synonyms, " ".join(dict.fromkeys(joined)),
               fold(document.summary), fold(document.body))
        tier_rows.append(row)
        vocabulary.update(set(" ".join(row[1:]).split()))
    conn.exec_driver_sql("INSERT INTO search_doc VALUES (?, ?, ?, ?, ?, ?, ?)", doc_rows)
    conn.exec_driver_sql("INSERT INTO search_name VALUES (?, ?, ?, ?, ?, ?)", name_rows)
    conn.exec_driver_sql(
        "INSERT INTO search_name_trigram (rowid, folded) VALUES (?, ?)",
        [(row[0], row[4]) for row in name_rows],
    )
    for tier in ("names", "head", "full"):
        table = TIER_TABLES[tier]
        width = len(TIER_COLUMNS[tier])
        columns = ", ".join(TIER_COLUMNS[tier])
        conn.exec_driver_sql(
            f"INSERT INTO {table} (rowid, {columns}) VALUES (?{', ?' * width})",
            [row[: width + 1] for row in tier_rows],
        )
    words = sorted(w for w in vocabulary if len(w) <= MAX_WORD_CHARS and not w.isdigit())
    conn.exec_driver_sql(
        "INSERT INTO search_vocab VALUES (?, ?, ?)",
        [(word_id, word, vocabulary[word]) for word_id, word in enumerate(words, start=1)],
    )
    conn.exec_driver_sql(
        "INSERT INTO search_vocab_delete VALUES (?, ?)",
        [
            (key, word_id)
            for word_id, word in enumerate(words, start=1)
            if delete_depth(word)
            for key in deletes(word, delete_depth(word))
        ],
    )


# ---------------------------------------------------------------- SQL helpers

def _rows(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    return list(conn.exec_driver_sql(sql, tuple(params)).all())


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _category_join(table: str, category: str | None) -> tuple[str, str, list[Any]]:
    if category is None:
        return "", "", []
    return (f" JOIN search_doc ON search_doc.id = {table}.rowid",
            " AND search_doc.category = ?", [category])


def _count(conn: Connection, expression: str, category: str | None) -> int:
    join, where, extra = _category_join("search_full", category)
    sql = f"SELECT count(*) FROM search_full{join} WHERE search_full MATCH ?{where}"  # noqa: S608  (fixed SQL; values bound)
    return int(_rows(conn, sql, [expression, *extra])[0][0])


def _matching(conn: Connection, expression: str, ids: Iterable[int]) -> set[int]:
    """Which of these documents the expression matches (rowid bounds keep FTS5 on its index)."""
    found = set()
    for doc_id in ids:
        sql = ("SELECT 1 FROM search_full WHERE search_full MATCH ? "
               "AND search_full.rowid >= ? AND search_full.rowid <= ?")
        if _rows(conn, sql, [expression, doc_id, doc_id]):
            found.add(doc_id)
    return found


def _ranked(
    conn: Connection, tier: str, expression: str, category: str | None, count: int
) -> list[tuple[int, float]]:
    """The `count` best documents of one bucket, as (id, bm25); lower bm25 is better."""
    table = TIER_TABLES[tier]
    if tier == "title":
        expression = f"{{title}} : ({expression})"
    join, where, extra = _category_join(table, category)
    base = f" FROM {table}{join} WHERE {table} MATCH ?{where}"
    params: list[Any] = [expression, *extra]
    # Past the window, rank the first RANK_WINDOW matches only (see RANK_WINDOW).
    bound = _rows(
        conn, f"SELECT {table}.rowid{base} ORDER BY {table}.rowid LIMIT 1 OFFSET ?",  # noqa: S608
        [*params, RANK_WINDOW[tier]],
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
    for candidate, freq in _rows(conn, sql, keys):
        distance = osa_distance(word, candidate, budget)
        if candidate == word:
            continue
        if distance <= budget:
            found[candidate] = Alternative(candidate, False, distance, int(freq))
        else:
            unmatched.append((candidate, int(freq)))
    if prefix and not found and len(word) >= 5:
        # Still typing: "atenti" -> the prefix "attenti" (of attention).
        for candidate, freq in unmatched:
            corrected, distance = _best_prefix(word, candidate, budget)
            if distance <= budget and corrected != word:
                best = found.get(corrected)
                if best is None or best.freq < freq:
                    found[corrected] = Alternative(corrected, True, distance, freq)
    ranked = sorted(found.values(), key=lambda a: (a.distance, -a.freq, a.token))
    return ranked[:MAX_ALTERNATIVES]


def _at_level(terms: Sequence[Term], options: Sequence[list[Alternative]], level: int
              ) -> list[Term]:
    return [
        Term(term.word, term.prefix, tuple(a for a in alts if a.distance <= level))
        for term, alts in zip(terms, options, strict=True)
    ]


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

Matcher = Callable[[str], bool]


def _matcher(terms: Sequence[Term]) -> Matcher:
    known: dict[str, bool] = {}

    def matches(token: str) -> bool:
        found = known.get(token)
        if found is None:
            found = known[token] = any(term.matches(token) for term in terms)
        return found

    return matches


def _run_matches(run: str, matches: Matcher) -> bool:
    """Whether a run of letters and digits holds a matching word (ASCII runs fold by lower())."""
    if run.isascii():
        return matches(run.lower())
    return any(matches(token) for token in fold(run).split())


def highlight(text: str, matches: Matcher) -> Markup:
    """The text HTML-escaped, with every matching word in <mark>."""
    parts: list[Markup] = []
    last = 0
    for run in WORD_RUN.finditer(text):
        if _run_matches(run.group(), matches):
            parts.append(escape(text[last : run.start()]))
            parts.append(Markup("<mark>%s</mark>") % run.group())
            last = run.end()
    parts.append(escape(text[last:]))
    return Markup("").join(parts)


def excerpt(text: str, matches: Matcher, width: int = SNIPPET_CHARS) -> Markup:
    """A highlighted passage of about `width` characters around the first match."""
    first = next((r for r in WORD_RUN.finditer(text) if _run_matches(r.group(), matches)), None)
    if first is None:
        start = 0
    else:
        start = max(0, first.start() - width // 3)
        space = text.rfind(" ", 0, start)
        start = 0 if space < 0 else space + 1
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    body = highlight(text[start:end].strip(), matches)
    return Markup("").join(
        [Markup("… ") if start > 0 else Markup(""), body,
         Markup(" …") if end < len(text) else Markup("")]
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


def _hit(doc: _Doc, terms: Sequence[Term], score: float, bucket: str,
         exact_name: tuple[str, bool] | None) -> Hit:
    """A result: which field matched follows from the bucket that found it."""
    matches = _matcher(terms)
    if exact_name is not None:
        name, is_title = exact_name
        matched_field, synonym = ("title", None) if is_title else ("synonyms", name)
    elif bucket == "title":
        matched_field, synonym = "title", None
    elif bucket in ("names", "corrected"):
        matched_field, synonym = _matched_name(doc, terms)
    else:
        matched_field, synonym = ("summary" if bucket == "head" else "body"), None
    snippet = (excerpt(doc.body, matches) if matched_field == "body"
               else highlight(doc.summary, matches))
    return Hit(
        slug=doc.slug,
        title=doc.title,
        summary=doc.summary,
        category=doc.category,
        score=round(score, 4),
        matched_field=matched_field,
        matched_synonym=synonym,
        exact=exact_name is not None,
        title_html=str(highlight(doc.title, matches)),
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
    needed = offset + limit
    wanted = " ".join(t.word for t in parsed)
    exact = _exact_names(conn, [wanted], category)
    options: list[list[Alternative]] = [[] for _ in parsed]  # corrections: only when needed
    top_level = 0 if exact else max(typo_budget(t.word) for t in parsed)
    for level in range(top_level + 1):
        if level == 1:
            options = [corrections(conn, t.word, prefix=t.prefix) for t in parsed]
        terms = _at_level(parsed, options, level)
        if level > 0 and terms == _at_level(parsed, options, level - 1):
            continue  # no correction needs this many edits
        expression = match_expression(terms)
        assert expression is not None
        total = _count(conn, expression, category)
        named = exact or (
            _exact_names(conn, _corrected_names(terms), category) if level else []
        )
        if not total and not named:
            continue
        ranked: list[tuple[int, float, str, tuple[str, bool] | None]] = []
        seen: set[int] = set()
        for doc_id, name, is_title in named:
            if doc_id not in seen:
                bucket = "corrected" if level else (
                    "exact_title" if is_title else "exact_synonym")
                ranked.append((doc_id, BUCKET_SCORE[bucket], bucket,
                               None if level else (name, is_title)))
                seen.add(doc_id)
        total += len(seen - _matching(conn, expression, seen))
        for tier in TIER_TABLES:
            if len(ranked) >= needed:
                break
            for doc_id, bm25 in _ranked(conn, tier, expression, category, needed + len(seen)):
                if doc_id not in seen:
                    seen.add(doc_id)
                    ranked.append((doc_id, BUCKET_SCORE[tier] + _squash(bm25), tier, None))
        page = ranked[offset:needed]
        docs = _documents(conn, [doc_id for doc_id, _, _, _ in page])
        results.total = total
        results.hits = [
            _hit(docs[doc_id], terms, score - LEVEL_PENALTY * level, bucket, exact_name)
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
    """(doc id, name) of titles or synonyms starting with the query, shortest first."""
    found: dict[int, str] = {}
    for column, value in (("folded", wanted), ("compact", wanted.replace(" ", ""))):
        sql = (
            f"SELECT doc_id, name FROM search_name WHERE {column} >= ? AND {column} < ? "  # noqa: S608
            f"AND is_title = ? ORDER BY length({column}), id LIMIT ?"
        )
        for doc_id, name in _rows(conn, sql, [value, value + "~", int(is_title), limit]):
            found.setdefault(int(doc_id), name)
    return list(found.items())


def suggest(session: Session, query: str, *, limit: int = 8) -> list[Suggestion]:
    """Autocomplete, one suggestion per term: exact names; titles starting with the query;
    titles holding every word; synonyms starting with the query; titles or synonyms holding
    every word, with typo tolerance when nothing else matched."""
    parsed = parse_query(query)
    wanted = " ".join(t.word for t in parsed)
    if len(wanted.replace(" ", "")) < SUGGEST_MIN_CHARS:
        return []
    conn = session.connection()
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

    for doc_id, name in _name_starts(conn, wanted, True, limit):
        picked.setdefault(doc_id, (name, False))
    if len(picked) < limit:
        add_ranked("title", parsed)
    if len(picked) < limit:
        for doc_id, name in _name_starts(conn, wanted, False, limit):
            picked.setdefault(doc_id, (name, False))
    if len(picked) < limit:
        found = add_ranked("names", parsed)
        options: list[list[Alternative]] = []
        for level in range(1, max(typo_budget(t.word) for t in parsed) + 1):
            if found or picked:
                break
            options = options or [corrections(conn, t.word, prefix=t.prefix) for t in parsed]
            terms = _at_level(parsed, options, level)
            if terms != _at_level(parsed, options, level - 1):
                for doc_id, name, _ in _exact_names(conn, _corrected_names(terms), None):
                    picked.setdefault(doc_id, (name, False))
                found = add_ranked("names", terms)
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
        [expression, RANK_WINDOW["names"]],
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
