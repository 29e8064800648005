"""The search algorithm, the same on every database: query parsing, prefixes, typo levels,
the buckets, scores, suggestions and "did you mean". Every statement goes through a Store
(app.search.store) chosen by the connection's dialect."""

import difflib
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import product

from sqlalchemy import Connection, Engine
from sqlmodel import Session

from app.search.highlight import Highlighter, excerpt, highlight
from app.search.model import (
    BUCKET_SCORE,
    LEVEL_PENALTY,
    MAX_ALTERNATIVES,
    MAX_COMBINATIONS,
    MAX_EXPANSIONS,
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    MAX_TOTAL,
    MAX_WORD_CHARS,
    PREFIX_INDEX_MAX,
    PREFIX_KEYS,
    PREFIX_MIN_CHARS,
    PREFIX_SCAN,
    SUGGEST_MIN_CHARS,
    TIERS,
    Alternative,
    Document,
    Entry,
    Hit,
    IndexRows,
    Results,
    Suggestion,
    Term,
)
from app.search.store import Store, store_class, store_for
from app.search.typos import best_prefix, delete_depth, deletes, osa_distance, typo_budget
from app.text import fold

# ---------------------------------------------------------------- folding and parsing


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


def _store(conn: Connection | Store) -> Store:
    return conn if isinstance(conn, Store) else store_for(conn)


def _completions(store: Store, prefix: str) -> tuple[str, ...] | None:
    """Every indexed word starting with prefix, or None when the prefix is matched as a
    prefix: 2-3 letters (see PREFIX_INDEX_MAX) or more than MAX_EXPANSIONS words."""
    if len(prefix) <= PREFIX_INDEX_MAX:
        return None
    # A joined name whose first word already starts with the prefix adds nothing: the
    # document holds that word too ("adam" need not list "adamoptimizer").
    words = store.words_starting(prefix, MAX_EXPANSIONS + 1)
    return None if len(words) > MAX_EXPANSIONS else tuple(words)


def prepare(conn: Connection | Store, terms: Sequence[Term]) -> list[Term]:
    """Level-0 terms against the index: prefixes get their completions, and every term learns
    whether the index knows it. A word before the last one that the index holds whole stays
    a prefix only when its completions are few ("grad desc" finds gradient descent, but
    "model selu" does not pay for matching every word that starts with "model")."""
    store = _store(conn)
    indexed = store.indexed(list(dict.fromkeys(t.word for t in terms)))
    prepared = []
    for position, term in enumerate(terms):
        prefix = term.prefix
        completions = _completions(store, term.word) if prefix else None
        if prefix and completions is None and position < len(terms) - 1:
            prefix = term.word not in indexed
        known = term.word in indexed or (prefix and completions != ())
        prepared.append(Term(term.word, prefix, term.alternatives, completions, known))
    return prepared


# ---------------------------------------------------------------- typo tolerance


def corrections(conn: Connection | Store, word: str, *, prefix: bool) -> list[Alternative]:
    """Vocabulary words (or, for a prefix, corrected prefixes) within the word's budget,
    fewest edits first, then most frequent."""
    budget = typo_budget(word)
    if budget == 0:
        return []
    store = _store(conn)
    found: dict[str, Alternative] = {}
    unmatched = []
    known = False  # the word itself is in the vocabulary: no need to guess what it starts
    for candidate, freq in store.deletion_candidates(sorted(deletes(word, budget))):
        if candidate == word:
            known = True
            continue
        distance = osa_distance(word, candidate, budget)
        if distance <= budget:
            found[candidate] = Alternative(candidate, False, distance, freq)
        else:
            unmatched.append((candidate, freq))
    if prefix and not found and not known and len(word) >= 5:
        # Still typing: "atenti" -> the prefix "attenti" (of attention).
        for candidate, freq in unmatched:
            corrected, distance = best_prefix(word, candidate, budget)
            if distance <= budget and corrected != word:
                best = found.get(corrected)
                if best is None or best.freq < freq:
                    found[corrected] = Alternative(corrected, True, distance, freq)
        for corrected, alt in list(found.items()):
            found[corrected] = Alternative(
                alt.token, True, alt.distance, alt.freq, _completions(store, corrected)
            )
    ranked = sorted(found.values(), key=lambda a: (a.distance, -a.freq, a.token))
    return ranked[:MAX_ALTERNATIVES]


def stages(conn: Connection | Store, terms: list[Term]) -> Iterator[tuple[int, list[Term]]]:
    """(typo level, terms) to try in order until one matches: as typed; then one edit in the
    words the index does not know; one edit in any word ("lose function"); two edits, again
    unknown words first. A stage that adds nothing, or holds a term that can match nothing,
    is skipped. Corrections are looked up only when a stage needs them."""
    store = _store(conn)
    options: dict[int, list[Alternative]] = {}
    tried: list[list[Term]] = []
    top = max(typo_budget(t.word) for t in terms)
    for level, everyone in [(0, False), *((lv, e) for lv in (1, 2) for e in (False, True))]:
        if level > top:
            break
        staged = []
        for i, term in enumerate(terms):
            if level and (everyone or not term.known) and i not in options:
                options[i] = corrections(store, term.word, prefix=term.prefix)
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


# ---------------------------------------------------------------- building the index


def drop_index(conn: Connection) -> None:
    """Remove the index tables (in the caller's transaction)."""
    store_for(conn).drop()


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


def build_index(conn: Connection, documents: Sequence[Document]) -> None:
    """Create every search table, replacing any there are, and fill them, in the caller's
    transaction: readers keep the previous index until it commits."""
    store_for(conn).build(index_rows(documents))


def after_load(engine: Engine) -> None:
    """Housekeeping once the transaction that ran build_index has committed (PostgreSQL
    vacuums the rows the reload replaced)."""
    store_class(engine.dialect.name).after_load(engine)


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


def _documents(store: Store, ids: Sequence[int]) -> dict[int, _Doc]:
    if not ids:
        return {}
    return {
        int(row[0]): _Doc(int(row[0]), row[1], row[2], json.loads(row[3]), *row[4:])
        for row in store.documents(ids)
    }


def _exact_names(
    store: Store, names: Sequence[str], category: str | None
) -> list[tuple[int, str, bool]]:
    """(doc id, name, is title) for titles/synonyms equal to any of the folded names."""
    folded = list(dict.fromkeys(n for n in names if n))
    if not folded:
        return []
    compacted = list(dict.fromkeys(n.replace(" ", "") for n in folded))
    rows = store.exact_names(folded, compacted, category)
    return [(int(doc_id), name, bool(is_title)) for doc_id, name, is_title in rows]


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


def _squash(relevance: float) -> float:
    """A store's relevance (>= 0, higher is better) to [0, 40): monotone, never crossing a
    bucket."""
    x = max(0.0, relevance)
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
    store = store_for(session.connection())
    parsed = prepare(store, parsed)
    needed = offset + limit
    wanted = " ".join(t.word for t in parsed)
    exact = _exact_names(store, [wanted], category)
    if exact and any(t.dead for t in parsed):  # a name with the spaces taken out
        parsed = [Term(t.word, t.prefix, completions=t.completions) for t in parsed]
    for level, terms in stages(store, parsed):
        if level and exact:
            break  # an exact name is never a typo
        named = exact or (_exact_names(store, _corrected_names(terms), category) if level else [])
        ranked: list[tuple[int, float, str, tuple[str, bool] | None]] = []
        seen: set[int] = set()
        for doc_id, name, is_title in named:
            if doc_id not in seen:
                bucket = "corrected" if level else ("exact_title" if is_title else "exact_synonym")
                ranked.append(
                    (doc_id, BUCKET_SCORE[bucket], bucket, None if level else (name, is_title))
                )
                seen.add(doc_id)
        count, among = store.count(terms, category, sorted(seen))
        if not count and not seen:
            continue
        results.total_exact = count <= MAX_TOTAL
        total = count + len(seen) - among if results.total_exact else MAX_TOTAL
        known_total = total if results.total_exact else None
        for tier in TIERS:
            if len(ranked) >= needed:
                break
            fetched = store.ranked(tier, terms, category, needed + len(seen), known_total)
            for doc_id, relevance in fetched:
                if doc_id not in seen:
                    seen.add(doc_id)
                    ranked.append((doc_id, BUCKET_SCORE[tier] + _squash(relevance), tier, None))
        page = ranked[offset:needed]
        docs = _documents(store, [doc_id for doc_id, _, _, _ in page])
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


def _name_starts(store: Store, wanted: str, is_title: bool, limit: int) -> list[tuple[int, str]]:
    """(doc id, name) of titles or synonyms starting with the query (folded, or with the
    spaces taken out), shortest first."""
    if len(wanted) in PREFIX_KEYS:
        rows = store.names_by_key(wanted, is_title, limit * 4)
    else:
        candidates: list[tuple[int, str, int, int]] = []
        for column, value in (("folded", wanted), ("compact", wanted.replace(" ", ""))):
            candidates += store.names_from(column, value, is_title, PREFIX_SCAN)
        rows = [(doc_id, name) for doc_id, name, *_ in sorted(candidates, key=lambda r: r[2:])]
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
    store = store_for(session.connection())
    parsed = prepare(store, parsed)
    picked: dict[int, tuple[str, bool]] = {}
    for doc_id, name, _ in _exact_names(store, [wanted], None):
        picked.setdefault(doc_id, (name, True))

    def add_ranked(tier: str, terms: list[Term]) -> bool:
        ranked = store.ranked(tier, terms, None, limit + len(picked))
        docs = _documents(store, [doc_id for doc_id, _ in ranked if doc_id not in picked])
        for doc_id, _ in ranked:
            if doc_id in docs:
                field_name, synonym = _matched_name(docs[doc_id], terms)
                name = synonym if field_name == "synonyms" and synonym else docs[doc_id].title
                picked.setdefault(doc_id, (name, False))
        return bool(ranked)

    if len(picked) < limit:
        for doc_id, name in _name_starts(store, wanted, True, limit):
            picked.setdefault(doc_id, (name, False))
    if len(picked) < limit:
        add_ranked("title", parsed)
    if len(picked) < limit:
        for doc_id, name in _name_starts(store, wanted, False, limit):
            picked.setdefault(doc_id, (name, False))
    if len(picked) < limit:
        for level, terms in stages(store, parsed):
            if level:
                if picked:
                    break  # typo tolerance only when nothing else matched
                for doc_id, name, _ in _exact_names(store, _corrected_names(terms), None):
                    picked.setdefault(doc_id, (name, False))
            if add_ranked("names", terms) or picked:
                break
    ids = list(picked)[:limit]
    docs = _documents(store, ids)
    return [
        Suggestion(name=picked[i][0], title=docs[i].title, slug=docs[i].slug, exact=picked[i][1])
        for i in ids
    ]


# ---------------------------------------------------------------- did you mean


def closest(session: Session, text: str, count: int = 5) -> list[Entry]:
    """The terms whose title or synonym is closest to text (no-hit and 404 pages): names
    sharing one of its first 24 trigrams (three letters or spaces in a row), best first by
    difflib's ratio (0.5 at least)."""
    wanted = fold(text[:MAX_QUERY_CHARS])
    if len(wanted) < 3:
        return []
    grams = list(dict.fromkeys(wanted[i : i + 3] for i in range(len(wanted) - 2)))[:24]
    rows = [
        row
        for row in store_for(session.connection()).closest_names(wanted, grams)
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
